"""A NaN while training: rolled back to the last checkpoint with a lower
learning rate, given up with one clear error, or refused before tilting.
(Split from train_lib_test, on the same `test` preset toy pipeline.)"""

import os
from unittest import mock

import numpy as np
import tensorflow as tf

import configs
from tilt_tf import train_lib
from tilt_tf.errors import UserError
from tilt_tf.runtime import loop as loop_lib


def _config(**overrides):
  c = configs.get_config('mlp_vae', '25gaussians', 'test')
  c.update_from_flattened_dict(overrides)
  return c


class DivergenceTest(tf.test.TestCase):
  """A NaN in training rolls back to the last checkpoint with a lower rate.

  The poison multiplies the loss by NaN, so the gradients and then the
  weights themselves become NaN: without a rollback they stay NaN."""

  def _poisoned(self, pipeline, at_step, transient, halvings=1):
    stage = pipeline.base_stage
    lr0 = float(stage.optimizer.learning_rate.numpy())
    clean = pipeline.generator.per_example_loss

    def poisoned(x, seed, training=True):
      loss, metrics = clean(x, seed, training)
      bad = tf.equal(stage.step, at_step)
      if transient:  # Goes away once the rate has been halved `halvings` times.
        bad = tf.logical_and(bad, stage.optimizer.learning_rate >
                             0.9 * lr0 * 0.5**(halvings - 1))
      return loss * tf.where(bad, np.nan, 1.0), metrics

    pipeline.generator.per_example_loss = poisoned
    return lr0

  def _config(self):
    return _config(**{'base.steps': 40, 'checkpoint_every': 20,
                      'steps_per_loop': 5, 'log_every': 5})

  def _weights(self, pipeline):
    return [v.numpy() for v in pipeline.generator.trainable_variables]

  def test_transient_nan_is_rolled_back_to_the_checkpoints_weights(self):
    workdir = self.create_tempdir().full_path
    with train_lib.open_pipeline(self._config(), workdir) as pipeline:
      lr0 = self._poisoned(pipeline, 25, transient=True)
      seen = {}
      real_roll_back = loop_lib.Controller._roll_back

      def roll_back(controller, state, *args):
        real_roll_back(controller, state, *args)
        seen['after'] = self._weights(pipeline)  # Right after the restore.

      with mock.patch.object(loop_lib.Controller,
                             '_roll_back', roll_back):
        with self.assertLogs(level='WARNING') as logs:
          pipeline.train_base()
      self.assertIn('non-finite metrics', '\n'.join(logs.output))
      self.assertEqual(int(pipeline.base_stage.step.numpy()), 40)
      self.assertAllClose(pipeline.base_stage.optimizer.learning_rate.numpy(),
                          lr0 / 2)
      for v in pipeline.generator.trainable_variables:
        self.assertTrue(np.all(np.isfinite(v.numpy())))
    # The weights right after the rollback are step 20's checkpoint's.
    with train_lib.open_pipeline(self._config(), workdir) as fresh:
      tf.train.Checkpoint(generator=fresh.generator).read(
          os.path.join(workdir, 'checkpoints', 'base', 'ckpt-20')
      ).expect_partial()
      for got, want in zip(seen['after'], self._weights(fresh)):
        self.assertAllEqual(got, want)

  def test_divergence_before_the_first_checkpoint_restores_the_start(self):
    workdir = self.create_tempdir().full_path
    with train_lib.open_pipeline(self._config(), workdir) as pipeline:
      start = self._weights(pipeline)
      self._poisoned(pipeline, 2, transient=True)
      seen = {}
      real_roll_back = loop_lib.Controller._roll_back

      def roll_back(controller, state, *args):
        seen['poisoned'] = self._weights(pipeline)
        real_roll_back(controller, state, *args)
        seen['after'] = self._weights(pipeline)

      with mock.patch.object(loop_lib.Controller,
                             '_roll_back', roll_back):
        pipeline.train_base()
      self.assertFalse(all(np.isfinite(w).all() for w in seen['poisoned']))
      for got, want in zip(seen['after'], start):
        self.assertAllEqual(got, want)
      self.assertEqual(int(pipeline.base_stage.step.numpy()), 40)

  def test_each_retry_halves_the_learning_rate_again(self):
    # Restoring the checkpoint restores its learning rate too; each retry
    # must still go lower than the last, or it repeats the same steps.
    workdir = self.create_tempdir().full_path
    with train_lib.open_pipeline(self._config(), workdir) as pipeline:
      lr0 = self._poisoned(pipeline, 25, transient=True, halvings=3)
      with self.assertLogs(level='WARNING') as logs:
        pipeline.train_base()
      self.assertLen([l for l in logs.output if 'non-finite metrics' in l], 3)
      self.assertEqual(int(pipeline.base_stage.step.numpy()), 40)
      self.assertAllClose(pipeline.base_stage.optimizer.learning_rate.numpy(),
                          lr0 / 8)

  def test_tilt_stage_divergence_is_rolled_back(self):
    workdir = self.create_tempdir().full_path
    config = _config(**{'checkpoint_every': 10, 'steps_per_loop': 5})
    train_lib.run(config, workdir, stages=('base',))
    with train_lib.open_pipeline(config, workdir) as pipeline:
      trainer = pipeline.trainer
      real = pipeline.method.latent_ebm.per_example_loss

      def poisoned(x, z):
        loss, metrics = real(x, z)
        bad = tf.logical_and(tf.equal(trainer.stage.step, 12),
                             trainer.stage.optimizer.learning_rate >
                             0.9 * config.ebm.learning_rate)
        return loss * tf.where(bad, np.nan, 1.0), metrics

      pipeline.method.latent_ebm.per_example_loss = poisoned
      with self.assertLogs(level='WARNING') as logs:
        pipeline.train_tilt()
      self.assertIn('tilt: non-finite metrics', '\n'.join(logs.output))
      self.assertEqual(trainer.step, config.ebm.steps)
      for v in pipeline.method.energy.trainable_variables:
        self.assertTrue(np.all(np.isfinite(v.numpy())))

  def test_base_decoding_nan_is_refused_before_tilting(self):
    workdir = self.create_tempdir().full_path
    config = _config()
    train_lib.run(config, workdir, stages=('base',))
    with train_lib.open_pipeline(config, workdir) as pipeline:
      clean = pipeline.generator.decode

      def overflowing(z, training=False):  # An undertrained flow's forward.
        x = clean(z, training)
        return tf.where(tf.abs(z[:, :1]) > 2.5, np.inf, x)

      pipeline.generator.decode = overflowing
      with self.assertRaisesRegex(
          UserError, r'the generator decodes \d+ of 256 prior latents .* to '
          'non-finite samples.*--base_steps'):
        pipeline.train_tilt()
    self.assertIsNone(tf.train.latest_checkpoint(
        os.path.join(workdir, 'checkpoints', 'tilt')))

  def test_persistent_nan_gives_up_with_a_clear_error(self):
    workdir = self.create_tempdir().full_path
    with train_lib.open_pipeline(self._config(), workdir) as pipeline:
      self._poisoned(pipeline, 25, transient=False)
      with self.assertRaisesRegex(UserError, 'base training diverged'):
        pipeline.train_base()


if __name__ == '__main__':
  tf.test.main()
