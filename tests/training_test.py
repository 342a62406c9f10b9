"""MethodTrainer and TrainingStage (tilt_tf/runtime/training.py) on a
one-variable method: what the stage checkpoint holds, resuming, the
monitor's early stop surviving a restart, the best weights restored."""

import os

import numpy as np
import tensorflow as tf

from tests import fake_method_testutil as fakes
from tilt_tf.errors import UserError
from tilt_tf.runtime import loop as loop_lib
from tilt_tf.runtime import monitor as monitor_lib
from tilt_tf.runtime import run_dir as run_dir_lib
from tilt_tf.runtime import training

LOOP = loop_lib.LoopSettings(steps_per_loop=5, checkpoint_every=10,
                             log_every=10)
# Training pulls w towards 2; resuming must see the same batches.
DATA = np.random.default_rng(0).normal(2.0, 1.0, (16, 2)).astype(np.float32)


class MethodTrainerTest(tf.test.TestCase):

  def make(self, run, steps=20, scores=None, patience=0):
    method = fakes.OneVariableMethod()
    score_fn = None
    if scores is not None:
      score_fn = fakes.scripted_scorer(
          [v for s in scores for v in (s, 9.0)])  # Tilted, then base.
    trainer = training.MethodTrainer(
        run, tf.distribute.get_strategy(), method, steps, score_fn=score_fn,
        monitor=monitor_lib.MonitorSettings(every=10, num_samples=4,
                                            num_steps=2, patience=patience),
        seed=0)
    return trainer, method

  def fit(self, trainer):
    return trainer.fit(DATA, 4, data_seed=1, loop_seed=2, settings=LOOP)

  def train(self, workdir, steps):
    """Trains (or resumes) to `steps`; returns (fit's result, w, trainer)."""
    with run_dir_lib.RunDir(workdir, {}) as run:
      trainer, method = self.make(run, steps=steps)
      return self.fit(trainer), float(method.w.numpy()), trainer

  def test_trains_checkpoints_and_resumes_as_straight(self):
    straight = self.train(self.create_tempdir().full_path, 20)[1]
    workdir = self.create_tempdir().full_path
    _, w10, _ = self.train(workdir, 10)  # "Killed" at step 10.
    self.assertGreater(w10, 0.5)
    with self.assertLogs('absl', level='INFO') as logs:
      (_, steps), resumed, trainer = self.train(workdir, 20)
    self.assertIn('tilt: restored step 10 from ', '\n'.join(logs.output))
    self.assertEqual((steps, trainer.step), (20, 20))
    self.assertEqual(resumed, straight)  # Same batches, same steps.
    self.assertNotEqual(resumed, w10)
    done, again, _ = self.train(workdir, 20)
    self.assertIsNone(done)  # Finished: reuses the checkpoint.
    self.assertEqual(again, resumed)
    names = [n for n, _ in tf.train.list_variables(
        os.path.join(workdir, 'checkpoints', 'tilt'))]
    for key in ('energy', 'step', 'seconds', 'optimizer'):
      self.assertTrue(any(n.startswith(key + '/') for n in names), key)

  def test_monitor_state_in_the_stage_checkpoint_and_stop_survives(self):
    workdir = self.create_tempdir().full_path
    with run_dir_lib.RunDir(workdir, {}) as run:
      trainer, _ = self.make(run, steps=50, scores=[1.0, 2.0], patience=1)
      self.assertEqual(self.fit(trainer)[1], 20)  # Stopped at the 2nd check.
    names = [n for n, _ in tf.train.list_variables(
        os.path.join(workdir, 'checkpoints', 'tilt'))]
    for key in ('best_score', 'best_step', 'checks_since_best'):
      self.assertIn(f'{key}/.ATTRIBUTES/VARIABLE_VALUE', names)
    with run_dir_lib.RunDir(workdir, {}) as run:
      again, method = self.make(run, steps=50, scores=[], patience=1)
      self.assertIsNone(self.fit(again))  # Stopped: no more training.
      self.assertTrue(again.done())
      self.assertEqual(int(again.monitor.best_step.numpy()), 10)
      path = again.restore_best()
    self.assertRegex(path, r'tilt_best/ckpt-10$')
    reader = tf.train.load_checkpoint(path)
    self.assertEqual(float(method.w.numpy()),
                     reader.get_tensor('energy/.ATTRIBUTES/VARIABLE_VALUE'))

  def test_restore_best_without_a_run_is_one_error(self):
    with run_dir_lib.RunDir(self.create_tempdir().full_path, {}) as run:
      trainer, _ = self.make(run)
      with self.assertRaisesRegex(UserError, 'no tilt checkpoint'):
        trainer.restore_best()

  def test_batch_that_does_not_split_over_replicas_is_refused(self):
    with run_dir_lib.RunDir(self.create_tempdir().full_path, {}) as run:
      trainer, _ = self.make(run)
      trainer.strategy = FakeStrategy(3)
      with self.assertRaisesRegex(UserError, 'batch size 4 does not split '
                                  'evenly over 3 replicas'):
        self.fit(trainer)


class FakeStrategy:

  def __init__(self, replicas):
    self.num_replicas_in_sync = replicas


if __name__ == '__main__':
  tf.test.main()
