#!/usr/bin/env bash
# MultiWorkerMirroredStrategy on localhost: N worker processes, one TF_CONFIG
# each, then (COMPARE=1, the default) the same run on 1 device, and a check
# that the chief's metrics.json and samples match it (rtol 1e-5, atol 1e-6).
#
#   benchmarks/multiworker.sh [NUM_WORKERS] [train flags...]
#   benchmarks/multiworker.sh 2 --base=mlp_vae --dataset=swissroll --preset=small
#
# Defaults: 2 workers, --base=mlp_vae --dataset=25gaussians --preset=test.
# WORKDIR (default: a new temp folder) gets run/ (the chief's workdir),
# run_worker1/ ... (the other workers' copies), one_device/ and the logs.
# Prints one JSON line: workers, wall seconds, the chief's stage seconds and
# the largest absolute difference to the 1-device run (exit 1 if over).
# On more machines: the same TF_CONFIG with their host:port pairs, and the
# same train command on each (see README, "Multi-worker").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=.venv/bin/python

workers=2
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  workers=$1
  shift
fi
if ((workers < 2)); then
  echo "need at least 2 workers, got $workers" >&2
  exit 2
fi
flags=("$@")
if ((${#flags[@]} == 0)); then
  flags=(--base=mlp_vae --dataset=25gaussians --preset=test)
fi
workdir=${WORKDIR:-$(mktemp -d /tmp/tilt_multiworker.XXXXXX)}
mkdir -p "$workdir"
stages=--stage=base,tilt,sample,eval

# Free ports: bound by the OS, released just before the workers bind them.
ports=$(PYTHONPATH=. "$python" - "$workers" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
  s.bind(('localhost', 0))
print(','.join(f'"localhost:{s.getsockname()[1]}"' for s in socks))
EOF
)

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

start=$(date +%s.%N)
for ((i = 0; i < workers; i++)); do
  TF_CONFIG="{\"cluster\": {\"worker\": [$ports]}, \"task\": {\"type\": \"worker\", \"index\": $i}}" \
    PYTHONPATH=. "$python" -m tilt_tf.train "${flags[@]}" "$stages" \
    --workdir="$workdir/run" >"$workdir/worker$i.log" 2>&1 &
  pids+=($!)
done
status=0
for ((i = 0; i < workers; i++)); do
  if ! wait "${pids[$i]}"; then
    echo "worker $i failed; see $workdir/worker$i.log" >&2
    status=1
  fi
done
pids=()
end=$(date +%s.%N)
((status == 0)) || exit 1

compare=${COMPARE:-1}
if [[ $compare == 1 ]]; then
  PYTHONPATH=. "$python" -m tilt_tf.train "${flags[@]}" "$stages" \
    --workdir="$workdir/one_device" >"$workdir/one_device.log" 2>&1
fi

PYTHONPATH=. "$python" - "$workdir" "$workers" "$start" "$end" "$compare" <<'EOF'
import json, os, sys
import numpy as np
workdir, workers, start, end, compare = sys.argv[1:]
run = os.path.join(workdir, 'run')
with open(os.path.join(run, 'timings.json')) as f:
  timings = json.load(f)
out = {'workers': int(workers), 'wall_s': round(float(end) - float(start), 1),
       'stage_s': {k: v['seconds'] for k, v in timings.items()},
       'workdir': workdir}


def flat(x, prefix=''):
  """metrics.json as {dotted key: value}."""
  if isinstance(x, (dict, list)):
    items = x.items() if isinstance(x, dict) else enumerate(x)
    out = {}
    for k, v in items:
      out.update(flat(v, f'{prefix}{k}.'))
    return out
  return {prefix[:-1]: x}


if compare == '1':
  one = os.path.join(workdir, 'one_device')
  worst = 0.0
  with open(os.path.join(run, 'metrics.json')) as f:
    a = flat(json.load(f))
  with open(os.path.join(one, 'metrics.json')) as f:
    b = flat(json.load(f))
  assert sorted(a) == sorted(b), (sorted(a), sorted(b))
  pairs = [(a[k], b[k]) for k in a if not isinstance(a[k], str)]
  for name in ('samples_base.npz', 'samples_tilted.npz'):
    x, y = np.load(os.path.join(run, name)), np.load(os.path.join(one, name))
    pairs += [(x[k], y[k]) for k in x.files]
  ok = True
  for x, y in pairs:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    worst = max(worst, float(np.max(np.abs(x - y))))
    ok = ok and np.allclose(x, y, rtol=1e-5, atol=1e-6)
  out['max_abs_diff_vs_1_device'] = worst
  out['matches_1_device'] = bool(ok)  # rtol 1e-5, atol 1e-6, as distribute_test.
print(json.dumps(out))
if compare == '1' and not out['matches_1_device']:
  sys.exit(1)
EOF
