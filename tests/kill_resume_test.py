"""Kill -9 anywhere: a run killed at four points and resumed ends with the
same metrics.json as a run that went straight through.

The straight run is the train binary in a process of its own, as a user
starts it. The killed runs are the same binary in forks of one process that
imported TensorFlow (forkrun_testutil: ~5 s less each, and this test runs
alone): each one's stderr is read as it is written and the run gets SIGKILL
(its process group) as soon as a line shows it reached a given point (inside
the base, tilt, sample and eval stages). Each kill is followed by a rerun of
the same command, the last of which runs to completion.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

# Bazel ends the whole target at TEST_TIMEOUT seconds (tests/BUILD: size
# "large", 900 s) and this test starts the binary six times: each run gets
# at most _TIMEOUT and never more than what is left of the target's time,
# less a margin (the TensorFlow import before this line, reporting), so a
# slow run fails here with its log instead of a killed target.
_DEADLINE = time.monotonic() + float(os.environ.get('TEST_TIMEOUT', 900)) - 30

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tests import forkrun_testutil  # pylint: disable=g-import-not-at-top

_ARGS = ['--base=mlp_vae', '--dataset=25gaussians', '--preset=test',
         '--seed=0']
_TIMEOUT = 150  # Seconds for one run of the binary, at most.


def _timeout():
  """Seconds the next run of the binary may take (see _DEADLINE)."""
  left = _DEADLINE - time.monotonic()
  if left <= 1:
    raise AssertionError('no time left in the test target for another run')
  return min(_TIMEOUT, left)

# (stage, stderr line that triggers the kill). The `test` preset trains the
# base 40 steps (checkpoint every 20) and the EBM 20 steps (monitor check
# and checkpoint every 10), so each kill lands after some but not all of
# that stage's files were written:
_KILLS = (
    # After the base checkpoint at step 20, before step 40.
    ('base', r'\] base 30/40 '),
    # After the monitor check at EBM step 10 saved the best energy and
    # before (or while) monitor.json and the tilt checkpoint are written.
    ('tilt', r'\] tilt monitor step 10:'),
    # After the first of the two sample batches was kept, before the second.
    ('sample', r'\] sample: batch 1/2 '),
    # While evaluating, before metrics.json is written.
    ('eval', r'\] stage eval$'),
)


def _env():
  return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
              TF_CPP_MIN_LOG_LEVEL='3')


def _flags(workdir):
  return [f'--workdir={workdir}'] + _ARGS


def _command(workdir):
  return [sys.executable, '-m', 'tilt_tf.train'] + _flags(workdir)


def _alive(pid):
  """False once the process has ended (gone, or a zombie not yet reaped)."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except OSError:
    return False


def _run_and_kill(server, workdir, pattern):
  """Runs the binary (a fork of `server`); SIGKILLs it at the first stderr
  line matching pattern, read as it is written (polled every 5 ms).

  Returns the stderr lines read, or raises if the run ended without one.
  """
  timeout = _timeout()
  log = os.path.join(tempfile.mkdtemp(), 'stderr')
  open(log, 'w').close()
  run = server.start('tilt_tf.train', _flags(workdir), os.devnull, log,
                     timeout=timeout)
  lines, partial, matched = [], '', False
  with open(log, encoding='utf-8', errors='replace') as f:
    while not matched:
      chunk = f.read()
      if not chunk:
        if not _alive(run.pid):
          break
        time.sleep(0.005)
        continue
      *complete, partial = (partial + chunk).split('\n')
      for line in complete:
        lines.append(line)
        if re.search(pattern, line):
          os.killpg(run.pid, signal.SIGKILL)
          matched = True
          break
  try:
    code = run.wait()
  except subprocess.TimeoutExpired:
    code = 'timeout'
  if code != -signal.SIGKILL or not matched:
    raise AssertionError(f'the run ended (code {code}, timeout '
                         f'{timeout:.0f} s) before a line matching '
                         f'{pattern!r}:\n' + '\n'.join(lines[-30:]))
  return lines


def _run(server, workdir):
  return server.run('tilt_tf.train', _flags(workdir),
                    timeout=_timeout())


def _load_json(path):
  with open(path) as f:
    return json.load(f)


def _temp_files(workdir):
  """Temporary names left by a killed writer: io_utils' `.tmp-*`,
  TensorFlow's `checkpoint.tmp<uuid>` and `ckpt-N_temp/` (the export's
  `.tmp-N-*/` too)."""
  found = []
  for root, dirs, files in os.walk(workdir):
    for name in dirs + files:
      if '.tmp' in name or name.endswith('_temp'):
        found.append(os.path.relpath(os.path.join(root, name), workdir))
  return found


def _state(workdir):
  """Files and the step of each checkpoint folder's latest checkpoint."""
  steps = {}
  for name in ('base', 'tilt', 'tilt_best'):
    latest = tf.train.latest_checkpoint(
        os.path.join(workdir, 'checkpoints', name))
    steps[name] = int(latest.rsplit('-', 1)[1]) if latest else None
  return {'files': sorted(os.listdir(workdir)), 'checkpoints': steps,
          'temp': _temp_files(workdir)}


class KillResumeTest(tf.test.TestCase):

  def test_killed_four_times_then_resumed_gives_the_same_metrics(self):
    t0 = time.time()
    server = forkrun_testutil.ForkServer(_env())
    self.addCleanup(server.close)
    straight = self.create_tempdir('straight').full_path
    # The straight run shares nothing with the killed one: it runs beside
    # the kills (this target runs alone on the 2 cores: tags exclusive).
    log = os.path.join(self.create_tempdir().full_path, 'straight.log')
    with open(log, 'w') as f:
      straight_proc = subprocess.Popen(_command(straight), stdout=f, stderr=f,
                                       env=_env())
    try:
      self._kill_and_resume(server, straight_proc, log)
    finally:
      if straight_proc.poll() is None:
        straight_proc.kill()
        straight_proc.wait()
    for name in ('samples_base.npz', 'samples_tilted.npz'):
      a, b = (np.load(os.path.join(d, name)) for d in (straight, self.killed))
      for key in a.files:
        self.assertAllEqual(a[key], b[key], msg=f'{name}[{key}]')
    self.assertEqual(_temp_files(self.killed), [])
    self.assertEqual(_temp_files(straight), [])
    self.assertEqual(_load_json(os.path.join(straight, 'metrics.json')),
                     _load_json(os.path.join(self.killed, 'metrics.json')))
    print(f'kill/resume test: {time.time() - t0:.1f}s', flush=True)

  def _kill_and_resume(self, server, straight_proc, straight_log):
    """Kills a run at each of _KILLS, then resumes it to the end (in
    self.killed); waits for `straight_proc` and checks it succeeded."""
    killed = self.killed = self.create_tempdir('killed').full_path
    logs = {}
    for stage, pattern in _KILLS:
      logs[stage] = _run_and_kill(server, killed, pattern)
      landed = _state(killed)
      print(f'killed in {stage}: {landed}', flush=True)
      # Every kill came before the run finished.
      self.assertNotIn('metrics.json', landed['files'])
      if stage == 'base':  # Before any tilt checkpoint.
        self.assertEqual(landed['checkpoints']['tilt'], None)
      elif stage == 'tilt':  # Before the last monitor check was saved.
        # The stage checkpoints its starting point (step 0) first.
        self.assertIn(landed['checkpoints']['tilt'], (0, 10))
        self.assertEqual(landed['checkpoints']['tilt_best'], 10)
      elif stage == 'sample':
        self.assertNotIn('samples_tilted.npz', landed['files'])
        self.assertIn('part-00000.npz',
                      os.listdir(os.path.join(killed, 'sample_parts')))
    # The second run resumed the base from its step-20 checkpoint, the
    # fourth the sample stage at its second batch.
    self.assertFalse([l for l in logs['tilt'] if '] base 10/40 ' in l])
    self.assertFalse([l for l in logs['eval'] if 'sample: batch 1/2' in l])
    self.assertTrue([l for l in logs['eval'] if 'sample: batch 2/2' in l])
    proc = _run(server, killed)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    straight_proc.wait(timeout=_timeout())
    with open(straight_log) as f:
      self.assertEqual(straight_proc.returncode, 0, f.read()[-3000:])


if __name__ == '__main__':
  tf.test.main()
