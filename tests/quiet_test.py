"""tilt_tf/quiet.py: the binaries hide TensorFlow's C++ start-up lines."""

import os
import subprocess
import sys

import tensorflow as tf

from tilt_tf import quiet

# What `import tensorflow` prints on a CPU machine (TF 2.21).
STARTUP = ('absl::InitializeLog', 'oneDNN custom operations',
           'Could not find cuda drivers', 'cpu_feature_guard',
           'To enable the following instructions')

_INFO = ('I0000 00:00:1796284684.242211    6173 port.cc:153] oneDNN custom '
         'operations are on.\n')
_ERROR = ('E0000 00:00:1796284896.385600    7726 cuda_platform.cc:52] failed '
          'call to cuInit\n')


class QuietTest(tf.test.TestCase):

  def test_level(self):
    self.assertEqual(quiet.level_for(['prog'], {}), '2')
    self.assertEqual(quiet.level_for(['prog'], {quiet.ENV: '0'}), '0')
    self.assertEqual(quiet.level_for(['prog', '--verbosity=1'], {}), '0')
    self.assertEqual(quiet.level_for(['prog', '-v', '2'], {}), '0')
    self.assertEqual(quiet.level_for(['prog', '--verbosity=0'], {}), '2')
    self.assertEqual(quiet.level_for(['prog', '--verbosity=x'], {}), '2')

  def test_keep_line(self):
    self.assertFalse(quiet.keep_line(_INFO, '2'))
    self.assertFalse(quiet.keep_line(_INFO, '1'))
    self.assertTrue(quiet.keep_line(_INFO, '0'))
    self.assertTrue(quiet.keep_line(_ERROR, '2'))
    self.assertFalse(quiet.keep_line(_ERROR, '3'))
    self.assertFalse(quiet.keep_line(
        'WARNING: All log messages before absl::InitializeLog() is called '
        'are written to STDERR\n', '2'))
    self.assertFalse(quiet.keep_line(
        'To enable the following instructions: AVX2 FMA, in other ...\n', '2',
        previous_dropped=True))
    for line in ('Traceback (most recent call last):\n',
                 'error: --base: unknown base\n',
                 'I1203 08:01:36.387278 140376755125120 train.py:107] run\n'):
      self.assertTrue(quiet.keep_line(line, '2'), line)

  def test_train_help_has_no_startup_lines(self):
    env = dict(os.environ)
    env.pop(quiet.ENV, None)  # .bazelrc's --test_env sets it for tests.
    proc = subprocess.run([sys.executable, '-m', 'tilt_tf.train', '--help'],
                          env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    self.assertIn('Trains a base model', proc.stdout)
    self.assertIn('--preset', proc.stdout)
    for text in STARTUP:
      self.assertNotIn(text, proc.stderr)

  def test_errors_still_show(self):
    env = dict(os.environ)
    env.pop(quiet.ENV, None)
    proc = subprocess.run([sys.executable, '-m', 'tilt_tf.train',
                           '--base=nope'], env=env, capture_output=True,
                          text=True, timeout=240, check=False)
    self.assertEqual(proc.returncode, 2, proc.stderr)
    self.assertIn("error: unknown base 'nope'", proc.stderr)
    for text in STARTUP:
      self.assertNotIn(text, proc.stderr)


if __name__ == '__main__':
  tf.test.main()
