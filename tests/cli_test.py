"""cli: path checks before any work, and the one error boundary per binary."""

import errno
import os
import re
import subprocess
import sys
import textwrap
from unittest import mock

import tensorflow as tf

from tests import forkrun_testutil
from tests import privileges_testutil
from tilt_tf import cli
from tilt_tf.errors import UserError

# A binary whose main fails the way `body` does (run in a subprocess).
_BINARY = """
import errno, os, sys
import tensorflow as tf
from tilt_tf import cli
from tilt_tf.errors import UserError

def main(argv):
  workdir = cli.check_output_dir(os.environ['WORKDIR'], '--workdir')
{body}

cli.run_main(main)
"""

# What TensorFlow's summary writer raises when the disk fills up on flush.
_SUMMARY_DISK_FULL = (
    '{{function_node __wrapped__FlushSummaryWriter_device_/job:localhost/'
    'replica:0/task:0/device:CPU:0}} {path}; No space left on device\n'
    '\tFailed to flush 3 events to {path}\n'
    '\tCould not flush events file. [Op:FlushSummaryWriter]')


_SERVER = None  # setUpModule: the binaries' runs fork from it.


def _env():
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
             TF_CPP_MIN_LOG_LEVEL='3')
  env.pop('TILT_TF_TRACEBACK', None)
  return env


def setUpModule():
  # Each run of a binary below is a fork of one process that imported
  # TensorFlow (forkrun_testutil: ~5 s of CPU less each); a bug's traceback
  # is checked in a plain process, where the interpreter itself prints it.
  global _SERVER  # pylint: disable=global-statement
  _SERVER = forkrun_testutil.ForkServer(_env())


def tearDownModule():
  _SERVER.close()


class PathChecksTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.tmp = self.create_tempdir().full_path
    self.file = os.path.join(self.tmp, 'notes.txt')
    with open(self.file, 'w') as f:
      f.write('keep me')

  def test_output_dir_accepted_and_nothing_written(self):
    for path in (self.tmp, os.path.join(self.tmp, 'a', 'b')):
      self.assertEqual(cli.check_output_dir(path, '--workdir'), path)
    self.assertEqual(os.listdir(self.tmp), ['notes.txt'])

  def test_output_dir_refusals(self):
    cases = [
        (self.file, f'^--workdir {self.file} is a file, not a folder; choose '
                    'another --workdir'),
        (os.path.join(self.file, 'run'),
         f'^--workdir {self.file}/run: {self.file} is a file, not a folder; '
         'choose another --workdir$'),
        (os.path.join(self.file, 'a', 'b'), f': {self.file} is a file'),
        # Cannot be written by anyone, root included.
        ('/proc/tilt_tf_test/run', r'^--workdir /proc/tilt_tf_test/run: '
                                   r'/proc is not writable \(.*\); '),
    ]
    for path, pattern in cases:
      with self.subTest(path=path):
        with self.assertRaisesRegex(UserError, pattern):
          cli.check_output_dir(path, '--workdir')
    self.assertEqual(os.listdir(self.tmp), ['notes.txt'])

  def test_unwritable_output_dir(self):
    # A real refusal by the kernel, for every user: see _unprivileged.
    folder = os.path.join(self.tmp, 'ro')
    os.mkdir(folder, 0o555)
    self.addCleanup(os.chmod, folder, 0o755)
    script = textwrap.dedent("""
        import sys
        from tilt_tf import cli
        from tilt_tf.errors import UserError
        try:
          cli.check_output_dir(sys.argv[1], '--export_dir')
        except UserError as e:
          print(e)
          sys.exit(3)
        """)
    proc = subprocess.run(
        privileges_testutil.unprivileged(folder) +
        [sys.executable, '-c', script, os.path.join(folder, 'v')],
        capture_output=True, text=True, timeout=60, check=False,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    self.assertEqual(proc.returncode, 3, proc.stderr[-2000:])
    self.assertRegex(
        proc.stdout.strip(),
        rf'^--export_dir {folder}/v: {folder} is not writable \(Permission '
        r'denied\); make it writable or choose another --export_dir$')
    self.assertEqual(os.listdir(folder), [])

  def test_unreachable(self):
    # What a user without search permission on `locked` sees (root passes
    # every permission check, so os.stat is made to refuse as for others).
    locked = os.path.join(self.tmp, 'locked')
    os.mkdir(locked)
    real_stat = os.stat

    def stat(path, *args, **kwargs):
      if os.fspath(path).startswith(locked + os.sep):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
      return real_stat(path, *args, **kwargs)

    with mock.patch.object(os, 'stat', stat):
      for check, flag, path in (
          (cli.check_output_dir, '--workdir', f'{locked}/a/run'),
          (cli.check_output_file, '--output', f'{locked}/a/s.json'),
          (cli.check_input_dir, '--data_dir', f'{locked}/data')):
        with self.assertRaisesRegex(
            UserError, f'^{flag} {path} cannot be reached: {locked} is not '
            rf'accessible \(Permission denied\); choose another {flag}$'):
          check(path, flag)

  def test_output_file(self):
    out = os.path.join(self.tmp, 'sub', 'scores.json')
    self.assertEqual(cli.check_output_file(out, '--output'), out)
    cases = [
        (self.tmp, f'^--output {self.tmp} is a folder; give a file name$'),
        (os.path.join(self.file, 'x.json'),
         f'^--output {self.file}/x.json: {self.file} is a file, not a '
         'folder; choose another --output$'),
        ('/proc/x.json', r'^--output /proc/x.json: /proc is not writable'),
    ]
    for path, pattern in cases:
      with self.subTest(path=path):
        with self.assertRaisesRegex(UserError, pattern):
          cli.check_output_file(path, '--output')
    self.assertEqual(os.listdir(self.tmp), ['notes.txt'])

  def test_input_dir(self):
    self.assertEqual(cli.check_input_dir(self.tmp, '--data_dir'), self.tmp)
    cases = [
        ('/no/such/dir', '^--data_dir /no/such/dir does not exist; give an '
                         'existing folder$'),
        (self.file, f'^--data_dir {self.file} is a file, not a folder; give '
                    'an existing folder$'),
        (os.path.join(self.file, 'x'), r'does not exist \(a part of that '
                                       'path is a file\)'),
    ]
    for path, pattern in cases:
      with self.subTest(path=path):
        with self.assertRaisesRegex(UserError, pattern):
          cli.check_input_dir(path, '--data_dir')


class ErrorBoundaryTest(tf.test.TestCase):

  def _run(self, body, args=(), env_extra=None, fork=True):
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    env = dict(env_extra or {}, WORKDIR=workdir)
    code = _BINARY.format(body=textwrap.indent(textwrap.dedent(body), '  '))
    if fork:
      return _SERVER.run(None, args, env_extra=env, code=code), workdir
    proc = subprocess.run([sys.executable, '-c', code, *args],
                          capture_output=True, text=True,
                          env=dict(_env(), **env), timeout=300, check=False)
    return proc, workdir

  def _one_line(self, proc, pattern):
    self.assertEqual(proc.returncode, 2, proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
    self.assertLen(errors, 1, proc.stderr[-3000:])
    self.assertEqual(proc.stderr.strip().splitlines()[-1], errors[0])
    self.assertRegex(errors[0], '^error: ' + pattern)
    return errors[0]

  def test_multi_line_disk_full_from_the_summary_writer(self):
    proc, workdir = self._run(f"""
        path = os.path.join(workdir, 'tensorboard', 'events.out.tfevents.1')
        raise tf.errors.ResourceExhaustedError(
            None, None, {_SUMMARY_DISK_FULL!r}.replace('{{path}}', path))
        """)
    line = self._one_line(
        proc, os.path.join(workdir, 'tensorboard', 'events.out.tfevents.1') +
        '; No space left on device; free some space')
    self.assertNotIn('function_node', line)
    self.assertNotIn('Failed to flush', line)

  def test_damaged_checkpoint(self):
    # A real DataLossError: a checkpoint with a flipped byte.
    proc, workdir = self._run("""
        v = tf.Variable(tf.zeros([1000]))
        path = tf.train.Checkpoint(v=v).write(os.path.join(workdir, 'ckpt'))
        data = path + '.data-00000-of-00001'
        with open(data, 'rb') as f:
          raw = bytearray(f.read())
        raw[100] ^= 0xFF
        with open(data, 'wb') as f:
          f.write(bytes(raw))
        tf.train.Checkpoint(v=v).restore(path)
        """)
    self._one_line(proc, 'DataLossError: .*Checksum does not match.*; a file '
                   f'in {re.escape(workdir)} is damaged .*move it away .*and '
                   'rerun; a run resumes from its previous checkpoint$')

  def test_other_os_errors(self):
    proc, _ = self._run("""
        raise OSError(errno.EIO, os.strerror(errno.EIO), '/x/run.json')
        """)
    self._one_line(proc, r'Input/output error \(/x/run.json\); the disk '
                   'reported an I/O error')
    proc, _ = self._run("""
        raise tf.errors.NotFoundError(None, None, '/x/y; No such file or '
                                      'directory\\nmore')
        """)
    self._one_line(proc, r'NotFoundError: /x/y; No such file or directory; '
                   'rerun with --traceback for details$')

  def test_traceback_on_request(self):
    body = """
        raise tf.errors.DataLossError(None, None, 'bad\\nrecord')
        """
    for args, env in ((['--traceback'], {}), ([], {'TILT_TF_TRACEBACK': '1'})):
      with self.subTest(args=args, env=env):
        proc, _ = self._run(body, args, env)
        self.assertEqual(proc.returncode, 2)
        self.assertIn('Traceback', proc.stderr)
        self.assertRegex(proc.stderr.strip().splitlines()[-1],
                         '^error: DataLossError: bad')

  def test_bugs_keep_their_traceback(self):
    proc, _ = self._run("""
        raise ZeroDivisionError('a bug')
        """, fork=False)
    self.assertEqual(proc.returncode, 1)
    self.assertIn('Traceback', proc.stderr)
    self.assertNotIn('error: ', proc.stderr)

  def test_file_system_error_keeps_one_line(self):
    e = tf.errors.ResourceExhaustedError(
        None, None, _SUMMARY_DISK_FULL.replace('{path}', '/w/events'))
    self.assertEqual(cli._file_system_error(e),  # pylint: disable=protected-access
                     '/w/events; No space left on device; ' +
                     cli._FS_ERRORS[errno.ENOSPC][1])  # pylint: disable=protected-access


class SummaryTableTest(tf.test.TestCase):

  def test_columns_and_the_monitor_line(self):
    metrics = {
        'base': {'fd_learned': 12.5, 'recall': 0.25},
        'tilted': {'fd_learned': 8.25, 'recall': 0.3},
        'distilled': {'fd_learned': 9.75, 'recall': 0.5},
        'tilt': {'monitor': [
            {'step': 50, 'score': 9.0, 'base_score': 12.0},
            {'step': 100, 'score': 7.5, 'base_score': 12.0},
            {'step': 150, 'score': 8.0, 'base_score': 12.0}]}}
    table = cli.summary_table(metrics).splitlines()
    self.assertEqual(table[0].split(), ['metric', 'base', 'tilted',
                                        'distilled'])
    self.assertEqual(table[1].split(),
                     ['fd_learned', '12.5000', '8.2500', '9.7500'])
    self.assertEqual(table[-1], 'monitor, held-out data: base 12 -> tilted '
                     '7.5 (kept step 100; lower is better)')

  def test_no_monitor_no_line(self):
    table = cli.summary_table({'base': {'fid': 1.0}, 'tilted': {'fid': 0.5},
                               'tilt': {'monitor': []}})
    self.assertNotIn('monitor', table)


class BinariesCheckPathsTest(tf.test.TestCase):
  """export and evaluate refuse bad paths before any work, in one line."""

  def test_bad_paths(self):
    tmp = self.create_tempdir().full_path
    notes = os.path.join(tmp, 'notes.txt')
    with open(notes, 'w') as f:
      f.write('keep me')
    cases = [
        ('export', ['--workdir=/no/such/run', f'--export_dir={tmp}/e'],
         '--workdir /no/such/run does not exist; give the folder of a '
         'training run'),
        ('export', [f'--workdir={tmp}', f'--export_dir={notes}/e'],
         f'--export_dir {notes}/e: {notes} is a file, not a folder'),
        ('evaluate', [f'--samples={notes}', f'--output={notes}/s.json'],
         f'--output {notes}/s.json: {notes} is a file, not a folder'),
        ('evaluate', [f'--samples={notes}', f'--data_dir={notes}'],
         f'--data_dir {notes} is a file, not a folder'),
    ]
    for binary, args, message in cases:
      with self.subTest(args=args):
        proc = _SERVER.run(f'tilt_tf.{binary}', args, cwd=tmp)
        self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
        self.assertNotIn('Traceback', proc.stderr)
        self.assertStartsWith(proc.stderr.strip().splitlines()[-1],
                              f'error: {message}')
    self.assertEqual(os.listdir(tmp), ['notes.txt'])


if __name__ == '__main__':
  tf.test.main()
