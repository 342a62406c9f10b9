"""LatentTilt (tilt_tf/methods/latent_tilt.py) over a fixed function
generator: what `sample` returns, the sampling step size, one training
step, the replay buffer's place in the checkpoint, `check_ready`."""

import numpy as np
import tensorflow as tf

import configs
from tilt_tf.errors import UserError
from tilt_tf.generators import adapters
from tilt_tf.methods import latent_tilt

W = tf.constant([[1.0, 0.5, -0.3], [0.2, -1.0, 0.7]])


def make(fn=lambda z: tf.tanh(z @ W), **ebm):
  cfg = configs.get_config('generator', None, 'test').ebm
  cfg.update(ebm)
  gen = adapters.generator_from_function(fn, 2)
  return latent_tilt.LatentTilt(gen, cfg, (3,), seed=0), gen


class LatentTiltTest(tf.test.TestCase):

  def test_base_and_tilted_start_from_the_same_prior_draws(self):
    method, gen = make(sample_step_size=0.5)
    seed = tf.constant([4, 1000])
    out = method.sample(6, seed, 3)
    seed_init, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    self.assertAllEqual(out['z_base'], gen.prior_sample(6, seed_init))
    self.assertAllClose(out['x_base'], gen.decode(out['z_base']))
    self.assertAllClose(out['x_tilted'], gen.decode(out['z_tilted']))
    self.assertNotAllClose(out['z_tilted'], out['z_base'])  # The chain moved.
    still = method.sample(6, seed, 0)
    self.assertAllEqual(still['z_tilted'], still['z_base'])
    again = method.sample(6, seed, 3)
    self.assertAllEqual(again['z_tilted'], out['z_tilted'])  # Stateless.
    other = method.sample(6, tf.constant([5, 1000]), 3)
    self.assertNotAllClose(other['z_tilted'], out['z_tilted'])

  def test_recorded_trajectory(self):
    method, _ = make()
    out = method.sample(5, tf.constant([0, 1]), 4, record_every=2)
    self.assertEqual(out['trajectory'].shape, (3, 5, 2))  # z_0, z_2, z_4.
    self.assertAllClose(out['trajectory'][-1], out['z_tilted'])
    self.assertNotIn('trajectory', method.sample(5, tf.constant([0, 1]), 4))

  def test_sampling_step_size_falls_back_to_training_chains(self):
    self.assertEqual(make(step_size=0.02, sample_step_size=0.0)[0]
                     .sample_step_size, 0.02)
    self.assertEqual(make(step_size=0.02, sample_step_size=0.3)[0]
                     .sample_step_size, 0.3)

  def test_train_step_moves_the_energy(self):
    method, _ = make(learning_rate=1e-2)
    opt = method.make_optimizer()
    x = tf.constant(np.random.default_rng(0).normal(size=(8, 3)), tf.float32)
    before = [v.numpy() for v in method.energy.trainable_variables]
    metrics = method.train_step(x, tf.constant([0, 0]), opt, 8)
    self.assertContainsSubset(
        {'loss', 'energy_data', 'energy_samples', 'langevin_grad_norm',
         'energy_grad_norm'}, set(metrics))
    self.assertTrue(all(np.isfinite(float(v)) for v in metrics.values()))
    after = [v.numpy() for v in method.energy.trainable_variables]
    self.assertTrue(any(np.any(a != b) for a, b in zip(after, before)))
    self.assertEqual(list(method.checkpoint_items()), ['energy'])

  def test_replay_buffer_is_checkpointed_and_filled(self):
    method, _ = make(replay_buffer=16, reinit_prob=0.0)
    self.assertEqual(sorted(method.checkpoint_items()),
                     ['energy', 'replay_buffer'])
    x = tf.zeros([4, 3])
    method.train_step(x, tf.constant([0, 0]), method.make_optimizer(), 4)
    self.assertEqual(int(method.replay.filled.numpy()), 4)

  def test_check_ready_refuses_a_decoder_that_is_not_finite(self):
    make()[0].check_ready()  # A finite decoder passes.
    method, _ = make(fn=lambda z: tf.math.log(z[:, :1]) + tf.zeros([1, 3]))
    with self.assertRaisesRegex(UserError, r'decodes \d+ of 256 prior latents'
                                ' .* to non-finite samples.*check your model'):
      method.check_ready()


if __name__ == '__main__':
  tf.test.main()
