#!/usr/bin/env bash
# Makes sure <workspace>/.venv exists and holds requirements.txt's pins: the one
# implementation behind ./bazelw, Bazel's Python toolchain (tools/python/python3.sh
# and the @tilt_venv repository rule, tools/python/venv.bzl) and plain use:
#
#   tools/ensure_venv.sh           # quiet when nothing is missing
#
# Fresh when .venv/bin/python runs and either stamp matches:
#   .venv/.requirements.sha256       sha256 of requirements.txt (as bazelw always wrote)
#   .venv/.requirements.pins.sha256  sha256 of its pin lines only (comments ignored)
# Otherwise, under a lock (flock on this file, so concurrent test processes and
# Bazel invocations build it once): if the installed distributions already match
# every pin, only the pins stamp is written; else the venv is created (or updated)
# with requirements.txt's pins (install_requirements: uv where it can be had, else pip).
# Where an NVIDIA driver is present (nvidia-smi on PATH or /proc/driver/nvidia),
# .venv also gets TensorFlow's CUDA libraries: pip install
# 'tensorflow[and-cuda]==<the pinned version>' -c requirements.txt (no pin moves),
# stamped in .venv/.and-cuda (the TF version; written after one failed attempt
# too, with a warning: delete it to retry). Nothing changes without a driver.
# Environment: PYTHON (interpreter for a new venv, default python3);
# TILT_TF_NO_UV=1 installs with pip only.
# Sourced (by bazelw), it only defines the functions below.

ev_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd -P)"
ev_self="$ev_root/tools/ensure_venv.sh"
ev_prefix="${EV_PREFIX:-ensure_venv}"

say() { echo "$ev_prefix: $*" >&2; }

# Runs a command quietly; on failure shows the end of its output and keeps the log.
logged() {
  local log
  log="$(mktemp "${TMPDIR:-/tmp}/$ev_prefix.XXXXXX")"
  if "$@" >"$log" 2>&1; then rm -f "$log"; return 0; fi
  tail -n 30 "$log" >&2
  say "(full log: $log)"
  return 1
}

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || { say "no apt-get: install $* yourself"; return 1; }
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { say "need root (or sudo) to install $*"; return 1; }
    if [[ -t 0 ]]; then sudo=(sudo); else sudo=(sudo -n); fi
  fi
  if [[ $apt_updated == 0 ]]; then
    logged "${sudo[@]}" apt-get update -q || return 1
    apt_updated=1
  fi
  logged "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "$@"
}

# The two stamps' wanted values.
venv_hashes() {
  local req="$ev_root/requirements.txt"
  ev_full="$(sha256sum "$req" | cut -d' ' -f1)"
  ev_pins="$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$req" | sha256sum | cut -d' ' -f1)"
}

# True when this machine has an NVIDIA driver (tilt_tf/runtime/strategy.py's
# nvidia_driver() makes the same check).
nvidia_driver() {
  command -v nvidia-smi >/dev/null 2>&1 || [[ -e /proc/driver/nvidia ]]
}

# requirements.txt's TensorFlow version.
tf_pin() {
  sed -n 's/^tensorflow==\([^[:space:]#]*\).*/\1/p' "$ev_root/requirements.txt" | head -n 1
}

# True when .venv needs no CUDA libraries added: no driver, a .venv shared from
# another checkout (a symlink: that checkout's ensure_venv adds them), or the
# stamp names the pinned TensorFlow.
cuda_fresh() {
  nvidia_driver || return 0
  [[ -L $ev_root/.venv ]] && return 0
  [[ $(cat "$ev_root/.venv/.and-cuda" 2>/dev/null) == "$(tf_pin)" ]]
}

# Adds tensorflow[and-cuda] at the pinned version to .venv where a driver is
# present (call it under the lock). A failure warns and stamps: CPU still works.
ensure_cuda() {
  local venv="$ev_root/.venv" version
  cuda_fresh && return 0
  version="$(tf_pin)"
  [[ -n $version ]] || return 0
  # Read-only here (a test sandbox): leave it to ./bazelw or the @tilt_venv rule.
  touch "$venv/.and-cuda.probe" 2>/dev/null || return 0
  rm -f "$venv/.and-cuda.probe"
  say "NVIDIA driver found: adding TensorFlow's CUDA libraries to .venv" \
      "(tensorflow[and-cuda]==$version, a few GB)"
  if ! logged "$venv/bin/python" -m pip install --disable-pip-version-check -q \
       "tensorflow[and-cuda]==$version" -c "$ev_root/requirements.txt"; then
    say "warning: could not install tensorflow[and-cuda]==$version: TensorFlow" \
        "will use the CPU. By hand: $venv/bin/pip install" \
        "'tensorflow[and-cuda]==$version' (or delete $venv/.and-cuda to retry)"
  fi
  echo "$version" >"$venv/.and-cuda"
}

# True when .venv is usable and stamped for the current requirements.txt (and,
# with an NVIDIA driver, has had its CUDA libraries added).
venv_fresh() {
  local venv="$ev_root/.venv"
  [[ -x $venv/bin/python ]] || return 1
  venv_hashes
  cuda_fresh || return 1
  [[ $(cat "$venv/.requirements.sha256" 2>/dev/null) == "$ev_full" ]] && return 0
  [[ $(cat "$venv/.requirements.pins.sha256" 2>/dev/null) == "$ev_pins" ]] && return 0
  return 1
}

# True when every pin of requirements.txt is installed in .venv (no network).
venv_satisfies_pins() {
  "$ev_root/.venv/bin/python" - "$ev_root/requirements.txt" <<'EOF' 2>/dev/null
import re, sys
from importlib import metadata
for line in open(sys.argv[1]):
    line = line.split('#', 1)[0].strip()
    if not line:
        continue
    m = re.fullmatch(r'([A-Za-z0-9_.\-]+)==(\S+)', line)
    if not m:
        sys.exit(1)
    try:
        if metadata.version(m.group(1)) != m.group(2):
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
EOF
}

# requirements.txt into .venv: through uv (pinned, installed into .venv by pip)
# where it can be had, ~3x faster than pip here (18 s against 58 s for this
# list, nothing cached: docs/performance.md); else, or when uv fails (it reads
# no pip.conf: a pip-only mirror), with pip itself. Same pins either way.
ev_uv=uv==0.13.9
install_requirements() {
  local venv=$1 req=$2
  if [[ -z ${TILT_TF_NO_UV:-} ]] &&
     logged "$venv/bin/python" -m pip install --disable-pip-version-check -q "$ev_uv"; then
    # --compile-bytecode: as pip does; without .pyc files every test process
    # (PYTHONDONTWRITEBYTECODE=1) compiles TensorFlow again: 12 core-s an import, not 5.
    logged "$venv/bin/uv" pip install -q --compile-bytecode --python "$venv/bin/python" \
      -r "$req" && return 0
    say "uv could not install requirements.txt: trying pip"
  fi
  logged "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
}

ensure_venv() {
  local venv="$ev_root/.venv" req="$ev_root/requirements.txt"
  [[ -f $req ]] || { say "error: missing $req"; return 1; }
  venv_hashes
  venv_fresh && return 0
  # One builder at a time; the others wait, then find it fresh.
  exec 8<"$ev_self"
  if command -v flock >/dev/null; then flock 8; fi
  if venv_fresh; then exec 8<&-; return 0; fi
  if [[ -x $venv/bin/python ]] && "$venv/bin/python" -c '' 2>/dev/null &&
     venv_satisfies_pins; then
    # Installed as pinned (only comments changed): stamp it, if writable and
    # ours (a symlinked .venv is shared with another checkout: left as it is).
    if [[ ! -L $venv ]]; then
      echo "$ev_pins" >"$venv/.requirements.pins.sha256" 2>/dev/null || true
    fi
    ensure_cuda
    exec 8<&-
    return 0
  fi
  if ! touch "$ev_root/.venv.probe" 2>/dev/null; then
    say "error: $venv is missing or out of date and $ev_root is read-only here" \
        "(a Bazel sandbox?); run $ev_self once, or ./bazelw"
    exec 8<&-
    return 1
  fi
  rm -f "$ev_root/.venv.probe"
  local py="${PYTHON:-python3}"
  if ! command -v "$py" >/dev/null; then
    say "error: no $py: install Python 3.11 (e.g. apt-get install python3 python3-venv)"
    exec 8<&-
    return 1
  fi
  if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c '' 2>/dev/null; then
    say "creating .venv from requirements.txt (first run: a few minutes)"
    rm -rf "$venv"
    if ! "$py" -m venv "$venv" >/dev/null 2>&1; then
      # Debian's python3 creates venvs only with python3-venv installed.
      rm -rf "$venv"
      if ! apt_install python3-venv; then
        say "error: $py cannot create a venv: install python3-venv"
        exec 8<&-
        return 1
      fi
      logged "$py" -m venv "$venv" || { say "error: $py -m venv failed"; exec 8<&-; return 1; }
    fi
  else
    say "updating .venv to requirements.txt"
  fi
  rm -f "$venv/.requirements.sha256" "$venv/.requirements.pins.sha256"
  if ! install_requirements "$venv" "$req"; then
    say "error: pip install -r requirements.txt failed"
    exec 8<&-
    return 1
  fi
  echo "$ev_full" >"$venv/.requirements.sha256"
  echo "$ev_pins" >"$venv/.requirements.pins.sha256"
  ensure_cuda
  exec 8<&-
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  ensure_venv
fi
