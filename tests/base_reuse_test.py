"""--base_from: a finished base copied into a new workdir, or one line."""

import os
import shutil
import subprocess
import sys

import tensorflow as tf

import configs
from tests.folder_testutil import snapshot
from tilt_tf import train_lib
from tilt_tf.errors import UserError
from tilt_tf.runtime import base_reuse
from tilt_tf.runtime import build

_TOY = ['--base=mlp_vae', '--dataset=25gaussians', '--preset=test']


def _config(**overrides):
  c = configs.get_config('mlp_vae', '25gaussians', 'test')
  c.update_from_flattened_dict(overrides)
  return c


def _identity(config):
  return build.identity(config, build.data_shape_of(config))


class BaseReuseTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.source = os.path.join(
        os.environ.get('TEST_TMPDIR', '/tmp'), f'base_reuse_{os.getpid()}')
    train_lib.run(_config(), cls.source, ('base',))  # Seconds.

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.source, ignore_errors=True)
    super().tearDownClass()

  def setUp(self):
    super().setUp()
    self.before = snapshot(self.source)

  def tearDown(self):
    self.assertEqual(snapshot(self.source), self.before)  # A unchanged.
    super().tearDown()

  def _base(self, workdir):
    return snapshot(os.path.join(workdir, 'checkpoints', 'base'))

  def test_copies_the_base_then_the_tilt_runs_on_it(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'b')
    config = _config(seed=7)  # Another seed: the energy's, allowed.
    steps = config.base.steps
    self.assertTrue(base_reuse.copy_base(self.source, workdir,
                                         _identity(config), steps))
    self.assertEqual(self._base(workdir), self._base(self.source))
    self.assertEqual(os.listdir(os.path.join(workdir, 'checkpoints')),
                     ['base'])  # No temporary folder left.
    with self.assertLogs(level='INFO') as logs:
      train_lib.run(config, workdir, ('base', 'tilt'))
    self.assertTrue(any('base: done (%d steps), reusing the checkpoint'
                        % steps in line for line in logs.output), logs.output)
    self.assertTrue(tf.train.latest_checkpoint(
        os.path.join(workdir, 'checkpoints', 'tilt')))
    # Again: it keeps this workdir's base, one log line, nothing copied.
    before = snapshot(workdir)
    with self.assertLogs(level='INFO') as logs:
      self.assertFalse(base_reuse.copy_base(self.source, workdir,
                                            _identity(config), steps))
    self.assertRegex(logs.output[0], 'already holds a base checkpoint')
    self.assertEqual(snapshot(workdir), before)

  def test_refusals_are_one_line_and_write_nothing(self):
    root = self.create_tempdir().full_path
    empty = self.create_tempdir().full_path
    config = _config()
    cases = [
        (os.path.join(root, 'missing'), config,
         r'--base_from \S+ does not exist'),
        (empty, config, r'--base_from \S+ holds no run \(no run.json\)'),
        (self.source, _config(**{'base.steps': config.base.steps + 5}),
         r'its base stopped at step \d+ of this run\'s \d+; finish it there'),
        (self.source, _config(**{'base.learning_rate': 0.5}),
         r'holds a base of other settings: base.learning_rate \(\S+ there, '
         r'0.5 here\)'),
        (self.source, configs.get_config('mlp_vae', 'swissroll', 'test'),
         r"other settings: dataset \('25gaussians' there, 'swissroll' here\)"),
    ]
    for source, cfg, pattern in cases:
      workdir = os.path.join(root, 'b')
      with self.assertRaisesRegex(UserError, pattern) as e:
        base_reuse.copy_base(source, workdir, _identity(cfg), cfg.base.steps)
      self.assertNotIn('\n', str(e.exception))
      self.assertFalse(os.path.exists(workdir), pattern)

  def test_a_source_without_a_base_checkpoint_is_refused(self):
    source = os.path.join(self.create_tempdir().full_path, 'a')
    os.makedirs(source)
    with open(os.path.join(self.source, 'run.json')) as f:
      run_json = f.read()
    with open(os.path.join(source, 'run.json'), 'w') as f:
      f.write(run_json)
    workdir = os.path.join(self.create_tempdir().full_path, 'b')
    config = _config()
    with self.assertRaisesRegex(UserError, 'has no base checkpoint; run its '
                                'base stage first'):
      base_reuse.copy_base(source, workdir, _identity(config),
                           config.base.steps)
    self.assertFalse(os.path.exists(workdir))

  def test_the_flag(self):
    workdir = os.path.join(self.create_tempdir().full_path, 'b')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
               TF_CPP_MIN_LOG_LEVEL='3')

    def train(*args):
      return subprocess.run(
          [sys.executable, '-m', 'tilt_tf.train', *_TOY, *args,
           f'--workdir={workdir}'], capture_output=True, text=True, env=env,
          timeout=300, check=False)

    proc = train('--base_from=' + os.path.join(workdir, 'nowhere'))
    self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
    self.assertRegex(proc.stderr.strip().splitlines()[-1],
                     r'^error: --base_from \S+nowhere does not exist')
    self.assertFalse(os.path.exists(workdir))
    proc = train('--stage=base,tilt', f'--base_from={self.source}')
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertIn('--base_from: copied the base of', proc.stderr)
    self.assertRegex(proc.stderr, r'base: done \(\d+ steps\), reusing the '
                     'checkpoint')
    self.assertEqual(self._base(workdir), self._base(self.source))


if __name__ == '__main__':
  tf.test.main()
