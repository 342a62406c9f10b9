"""The train binary: a dry run, and one clear line for each kind of bad input."""

import errno
import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from tests import privileges_testutil
from tests.folder_testutil import snapshot
from tests.forkrun_testutil import ForkServer
from tilt_tf import cli

_TOY = ['--base=mlp_vae', '--dataset=25gaussians', '--preset=test']

# Code run in the binary's process before it starts: a full disk, as ext4
# reports it (at write() or fsync()) to every Python file write.
_DISK_FULL = """
import errno, os
def _fsync(fd):
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
os.fsync = _fsync
"""


def _env():
  return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
              TF_CPP_MIN_LOG_LEVEL='3')


def _run(args, cwd=None, env_extra=None, prefix=()):
  """Runs the train binary in a new process; `prefix`: a command that runs
  it (setpriv)."""
  env = _env()
  env.update(env_extra or {})
  command = [sys.executable, '-m', 'tilt_tf.train']
  return subprocess.run(list(prefix) + command + args, capture_output=True,
                        text=True, cwd=cwd, env=env, timeout=300, check=False)


def _write_idx(path, array):
  header = struct.pack('>HBB', 0, 0x08, array.ndim)
  header += struct.pack('>' + 'I' * array.ndim, *array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


class TrainCLITest(tf.test.TestCase):

  _trained = None  # A workdir whose base stage is done (made once).

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Most runs fork from one process that imported TensorFlow
    # (forkrun_testutil): ~5 s of CPU less each, a full disk included (its
    # fault is injected in the fork). The dry run and the read-only folder
    # (run as another user) stay plain processes, as a user starts them.
    cls.server = ForkServer(_env())

  @classmethod
  def tearDownClass(cls):
    cls.server.close()
    if cls._trained:
      shutil.rmtree(os.path.dirname(cls._trained), ignore_errors=True)
    super().tearDownClass()

  def _forked(self, args, cwd=None, inject=None):
    """The train binary with `args`, in a fork of the warm server;
    `inject`: Python code the fork runs first (fault injection)."""
    return self.server.run('tilt_tf.train', args, cwd=cwd, inject=inject)

  def _trained_workdir(self):
    """A fresh copy of a workdir holding a finished toy base stage."""
    cls = type(self)
    if cls._trained is None:
      workdir = os.path.join(
          tempfile.mkdtemp(dir=os.environ.get('TEST_TMPDIR')), 'run')
      proc = self._forked(_TOY + ['--stage=base', f'--workdir={workdir}'])
      self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
      cls._trained = workdir
    copy = os.path.join(self.create_tempdir().full_path, 'run')
    shutil.copytree(cls._trained, copy)
    return copy

  def _assert_user_error(self, proc, pattern):
    self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
    self.assertNotIn('Traceback', proc.stderr)
    last = proc.stderr.strip().splitlines()[-1]
    self.assertRegex(last, '^error: ' + pattern)
    self.assertLen([l for l in proc.stderr.splitlines()
                    if l.startswith('error:')], 1)

  def test_dry_run_resolves_workdir_against_invocation_dir(self):
    here = self.create_tempdir().full_path
    proc = _run(['--base=mlp_vae', '--dataset=25gaussians', '--preset=test',
                 '--workdir=rel/run'], cwd=self.create_tempdir().full_path,
                env_extra={'BUILD_WORKING_DIRECTORY': here})
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(here, 'rel/run/metrics.json')) as f:
      metrics = json.load(f)
    self.assertIn('tilted', metrics)
    self.assertIn('high_quality_fraction', proc.stdout)
    self.assertRegex(proc.stderr, r'tilt \d+/20 .*steps/s ETA')

  def test_bad_inputs(self):
    cases = [
        (['--base=gan'], "unknown base 'gan'"),
        (['--base=mlp_vae', '--dataset=imagenet'], "unknown dataset 'imagenet'"),
        (['--base=mlp_vae', '--preset=huge'], "unknown preset 'huge'"),
        (['--base=mlp_vae', '--langevin_steps=-5'], '--langevin_steps=-5 is out of range'),
        (['--base=mlp_vae', '--num_samples=0'], '--num_samples=0 is out of range'),
        (['--base=mlp_vae', '--stage=fly'], "unknown --stage 'fly'"),
        (['--base=mlp_vae', 'extra'], 'unexpected arguments'),
        (['--base=mlp_vae', '--set=ebm.stepsize=1'],
         "--set 'ebm.stepsize=1': ebm has no field 'stepsize'; it has "),
        (['--base=mlp_vae', '--set=ebm.steps=ten'],
         "--set 'ebm.steps=ten': the field is int"),
        (['--base=mlp_vae', '--config.ebm.steps=-3'],
         '--config.ebm.steps=-3 is out of range; it must be >= 0'),
        (['--base=pixel_ebm', '--tilt_steps=5'],
         '--tilt_steps does not apply to --base=pixel_ebm'),
        (['--base=pixel_ebm', '--num_cpu_devices=2'],
         '--base=pixel_ebm runs on one device'),
        (['--base=mlp_vae', '--dataset=mnist', '--data_dir=/no/such/dir'],
         '--data_dir /no/such/dir does not exist'),
    ]
    for args, pattern in cases:
      with self.subTest(args=args):
        cwd = self.create_tempdir().full_path
        self._assert_user_error(self._forked(args, cwd=cwd), pattern)
        self.assertEqual(os.listdir(cwd), [])  # Nothing written.

  def test_bad_values_and_paths(self):
    # Refused before any work: nothing is written anywhere. (configs_test
    # covers every bound.)
    tmp = self.create_tempdir().full_path
    notes = os.path.join(tmp, 'notes.txt')
    with open(notes, 'w') as f:
      f.write('keep me')
    cases = [
        (['--set=ebm.step_size=nan'],
         "--set 'ebm.step_size=nan': ebm.step_size must be a finite number"),
        (['--set=base.batch_size=0'],
         '--set base.batch_size=0 is out of range; it must be >= 1'),
        (['--langevin_steps=600000'], re.escape(
            '--langevin_steps=600000 is out of range; it must be <= 10_000 '
            '(the bound is a guard against typos')),
        (['--seed=4294967296'], re.escape(
            '--seed=4294967296 is out of range; it must be <= 4294967295')),
        ([f'--workdir={notes}'], re.escape(
            f'--workdir {notes} is a file, not a folder')),
        (['--workdir=/proc/tilt_tf_test/run'],
         '--workdir /proc/tilt_tf_test/run: /proc is not writable'),
        ([f'--data_dir={notes}'], re.escape(
            f'--data_dir {notes} is a file, not a folder')),
        ([f'--export_dir={notes}/export'], re.escape(
            f'--export_dir {notes}/export: {notes} is a file, not a folder')),
    ]
    for args, pattern in cases:
      with self.subTest(args=args):
        cwd = self.create_tempdir().full_path
        self._assert_user_error(self._forked(_TOY + args, cwd=cwd), pattern)
        self.assertEqual(os.listdir(cwd), [])
    self.assertEqual(os.listdir(tmp), ['notes.txt'])

  def test_workdir_under_a_file(self):
    # Cannot be created (as any user, root included): mkdir says ENOTDIR.
    tmp = self.create_tempdir().full_path
    notes = os.path.join(tmp, 'notes.txt')
    with open(notes, 'w') as f:
      f.write('keep me')
    proc = self._forked(_TOY + [f'--workdir={notes}/run'], cwd=tmp)
    self._assert_user_error(proc, re.escape(
        f'--workdir {notes}/run: {notes} is a file, not a folder; choose '
        'another --workdir'))
    self.assertEqual(snapshot(tmp), {'notes.txt': hashlib.sha256(
        b'keep me').hexdigest()})

  def test_read_only_workdir(self):
    workdir = self.create_tempdir().full_path
    os.chmod(workdir, 0o555)
    self.addCleanup(os.chmod, workdir, 0o755)
    # A real refusal by the kernel, for every user: see _unprivileged.
    proc = _run(_TOY + [f'--workdir={workdir}'],
                prefix=privileges_testutil.unprivileged(workdir))
    self._assert_user_error(proc, re.escape(
        f'--workdir {workdir} is not writable (Permission denied); make it '
        'writable or choose another --workdir'))
    self.assertEqual(os.listdir(workdir), [])

  def test_disk_full(self):
    # The base stage is done; the disk fills up during the tilt stage, at
    # the first Python write (monitor.json after EBM step 10).
    workdir = self._trained_workdir()
    before = snapshot(workdir)
    proc = self._forked(_TOY + ['--stage=tilt', f'--workdir={workdir}'],
                        inject=_DISK_FULL)
    self._assert_user_error(proc, re.escape(
        os.path.join(workdir, 'monitor.json') + ': No space left on device; '
        'free some space'))
    after = snapshot(workdir)
    for name, digest in before.items():  # What was there is intact.
      self.assertEqual(after.get(name), digest, name)
    self.assertFalse([n for n in os.listdir(workdir) if n.startswith('.tmp')])
    self.assertNotIn('monitor.json', after)

  def test_corrupt_data_file(self):
    # data_test covers each kind of damage; here the binary's one line for a
    # .gz cut short (an interrupted download).
    data_dir = self.create_tempdir().full_path
    rng = np.random.default_rng(0)
    for prefix, m in (('train', 20), ('t10k', 10)):
      _write_idx(os.path.join(data_dir, f'{prefix}-images-idx3-ubyte.gz'),
                 rng.integers(0, 256, (m, 28, 28)))
      _write_idx(os.path.join(data_dir, f'{prefix}-labels-idx1-ubyte.gz'),
                 rng.integers(0, 10, (m,)))
    path = os.path.join(data_dir, 'train-images-idx3-ubyte.gz')
    with open(path, 'rb') as f:
      raw = f.read()
    with open(path, 'wb') as f:
      f.write(raw[:len(raw) // 2])
    before = snapshot(data_dir)
    tmp = self.create_tempdir().full_path
    proc = self._forked(['--base=vae', '--dataset=mnist', '--preset=test',
                         f'--data_dir={data_dir}', '--workdir=run'], cwd=tmp)
    self._assert_user_error(proc, 'corrupt data file ' + re.escape(path) +
                            r' \(.*\); re-download it')
    self.assertEqual(os.listdir(tmp), [])
    self.assertEqual(snapshot(data_dir), before)

  def test_damaged_run_json(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    os.makedirs(workdir)
    with open(os.path.join(workdir, 'run.json'), 'w') as f:
      f.write('{"identity": ')  # Cut short.
    proc = self._forked(_TOY + [f'--workdir={workdir}'])
    self._assert_user_error(proc, re.escape(
        os.path.join(workdir, 'run.json') + ' is damaged (not valid JSON); '
        'move it away and rerun'))
    with open(os.path.join(workdir, 'run.json')) as f:
      self.assertEqual(f.read(), '{"identity": ')

  def test_damaged_base_checkpoint(self):
    # Flipped bytes in every base checkpoint: they are kept aside and one
    # line says which stage to redo.
    workdir = self._trained_workdir()
    base = os.path.join(workdir, 'checkpoints', 'base')
    for name in os.listdir(base):
      if '.data-' in name:
        with open(os.path.join(base, name), 'rb') as f:
          raw = bytearray(f.read())
        raw[len(raw) // 2] ^= 0xFF
        with open(os.path.join(base, name), 'wb') as f:
          f.write(bytes(raw))
    proc = self._forked(_TOY + ['--stage=tilt', f'--workdir={workdir}'])
    self._assert_user_error(proc, 'every base checkpoint in .* is damaged '
                            r'\(moved to .*damaged\); the base stage must be '
                            'redone: rerun with --stage=base')
    self.assertTrue(os.listdir(os.path.join(base, 'damaged')))

  def test_truncated_latest_tilt_checkpoint_falls_back(self):
    # The newest tilt checkpoint cut short (a write that died): the run
    # resumes from the one before it, with a warning, and finishes.
    workdir = self._trained_workdir()
    proc = self._forked(_TOY + ['--stage=tilt', f'--workdir={workdir}'])
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    tilt = os.path.join(workdir, 'checkpoints', 'tilt')
    latest = tf.train.latest_checkpoint(tilt)
    data = [n for n in os.listdir(tilt)
            if n.startswith(os.path.basename(latest) + '.data-')]
    with open(os.path.join(tilt, data[0]), 'r+b') as f:
      f.truncate(10)
    older = sorted(n for n in os.listdir(tilt) if n.endswith('.index'))
    self.assertLen(older, 2)  # keep_checkpoints = 2: one to fall back to.
    proc = self._forked(_TOY + ['--stage=tilt,sample,eval',
                                f'--workdir={workdir}'])
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertRegex(proc.stderr, r'tilt checkpoint .*' +
                     re.escape(os.path.basename(latest)) + ' is damaged')
    self.assertTrue(os.path.exists(os.path.join(tilt, 'damaged', data[0])))
    self.assertTrue(os.path.exists(os.path.join(workdir, 'metrics.json')))

  def test_workdir_of_another_base(self):
    workdir = self._trained_workdir()
    before = snapshot(workdir)
    proc = self._forked(['--base=vae', '--dataset=fashion_mnist',
                         '--preset=test', f'--workdir={workdir}'])
    self._assert_user_error(proc, re.escape(
        f'--workdir {workdir} holds a run of base=mlp_vae '
        'dataset=25gaussians that differs in ') + '.*another --workdir')
    self.assertEqual(snapshot(workdir), before)

  def test_file_system_error_messages(self):
    """TensorFlow's and Python's errors for the same conditions."""
    folder = self.create_tempdir().full_path
    a_file = os.path.join(folder, 'f')
    with open(a_file, 'w') as f:
      f.write('x')
    try:
      tf.io.gfile.makedirs(os.path.join(a_file, 'run'))
    except tf.errors.OpError as e:
      self.assertRegex(cli._file_system_error(e),  # pylint: disable=protected-access
                       f'^{re.escape(a_file)} is not a directory; a part of '
                       'that path is a file, not a folder; choose another')
    else:
      self.fail('makedirs under a file worked')
    if os.path.exists('/dev/full'):  # A device that is always full.
      with self.assertRaises(tf.errors.ResourceExhaustedError) as caught:
        tf.io.write_file('/dev/full', 'x' * 100_000)
      self.assertRegex(cli._file_system_error(caught.exception),  # pylint: disable=protected-access
                       '^/dev/full; No space left on device; free some space')
    for code, fix in ((errno.EROFS, 'choose a path on a writable disk'),
                      (errno.EACCES, 'make it writable'),
                      (errno.EDQUOT, 'free some space')):
      e = OSError(code, os.strerror(code), '/x/run.json')
      self.assertEqual(cli._file_system_error(e),  # pylint: disable=protected-access
                       f'/x/run.json: {os.strerror(code)}; ' +
                       cli._FS_ERRORS[code][1])  # pylint: disable=protected-access
      self.assertStartsWith(cli._FS_ERRORS[code][1], fix)  # pylint: disable=protected-access
    # Not the user's to fix: left to the traceback.
    self.assertIsNone(cli._file_system_error(OSError(errno.EIO, 'I/O')))  # pylint: disable=protected-access
    self.assertIsNone(cli._file_system_error(ValueError('Permission denied')))  # pylint: disable=protected-access
    self.assertIsNone(cli._file_system_error(  # pylint: disable=protected-access
        tf.errors.ResourceExhaustedError(None, None, 'OOM when allocating')))


if __name__ == '__main__':
  tf.test.main()
