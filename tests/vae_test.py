"""VAE generator: shapes, range, gradients, overfitting, checkpoints, tf.distribute."""

from absl.testing import parameterized
import ml_collections
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tests import generator_testutil
from tests import replicas_testutil
from tilt_tf.generators import registry
from tilt_tf.generators import vae

SHAPES = (('mnist', (28, 28, 1), 'bce'), ('cifar', (32, 32, 3), 'mse'))


def make_vae(shape, recon, width=8, latent_dim=16):
  cfg = ml_collections.ConfigDict(dict(latent_dim=latent_dim, width=width,
                                       recon=recon, learning_rate=3e-3))
  return registry.make_generator('vae', cfg, shape), cfg


class VAETest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*SHAPES)
  def test_decode_shape_and_range(self, shape, recon):
    gen, _ = make_vae(shape, recon)
    self.assertIsInstance(gen, vae.VAE)
    z, x = gen.sample(4, tf.constant([1, 2]))
    self.assertEqual(z.shape, (4, 16))
    self.assertEqual(x.shape, (4,) + shape)
    self.assertAllInRange(x, 0.0, 1.0)

  @parameterized.named_parameters(*SHAPES)
  def test_loss_shape_and_gradients(self, shape, recon):
    gen, _ = make_vae(shape, recon)
    x = generator_testutil.blobs(4, shape)
    with tf.GradientTape() as tape:
      loss, metrics = gen.per_example_loss(x, tf.constant([3, 4]))
      mean = tf.reduce_mean(loss)
    self.assertEqual(loss.shape, (4,))
    self.assertAllEqual(np.isfinite(loss), [True] * 4)
    self.assertEqual(set(metrics), {'recon', 'kl'})
    self.assertAllClose(loss, metrics['recon'] + metrics['kl'])
    grads = tape.gradient(mean, gen.trainable_variables)
    self.assertNotEmpty(grads)
    for v, g in zip(gen.trainable_variables, grads):
      self.assertIsNotNone(g, v.name)

  def test_same_seed_same_loss(self):
    gen, _ = make_vae((28, 28, 1), 'bce')
    x = generator_testutil.blobs(4, (28, 28, 1))
    a, _ = gen.per_example_loss(x, tf.constant([5, 6]))
    b, _ = gen.per_example_loss(x, tf.constant([5, 6]))
    self.assertAllEqual(a, b)

  def test_bad_recon_raises(self):
    gen, _ = make_vae((28, 28, 1), 'l1')
    with self.assertRaisesRegex(ValueError, 'recon'):
      gen.per_example_loss(generator_testutil.blobs(2, (28, 28, 1)), tf.constant([0, 0]))

  def test_decode_differentiable_in_z(self):
    gen, _ = make_vae((28, 28, 1), 'bce')
    g, g_eager = generator_testutil.decode_gradients(gen, 4)
    self.assertEqual(g.shape, (4, 16))
    self.assertGreater(float(tf.reduce_sum(tf.abs(g))), 0.0)
    self.assertAllClose(g_eager, g, rtol=1e-4, atol=1e-5)

  @parameterized.named_parameters(*SHAPES)
  def test_overfits_tiny_batch(self, shape, recon):
    gen, cfg = make_vae(shape, recon)
    opt = gen.make_optimizer(cfg)
    x = generator_testutil.blobs(4, shape)
    step = tf.function(lambda s: gen.train_step(x, s, opt, 4))
    losses = [float(step(tf.constant([0, i]))['loss']) for i in range(300)]
    self.assertLess(np.mean(losses[-20:]), 0.5 * losses[0])

  def test_checkpoint_round_trip(self):
    shape = (28, 28, 1)
    gen, cfg = make_vae(shape, 'bce')
    opt = gen.make_optimizer(cfg)
    for i in range(3):  # Move weights and batch-norm statistics.
      gen.train_step(generator_testutil.blobs(4, shape), tf.constant([0, i]), opt, 4)
    path = tf.train.Checkpoint(generator=gen).save(
        self.create_tempdir().full_path + '/ckpt')
    other, _ = make_vae(shape, 'bce')
    z = gen.prior_sample(4, tf.constant([7, 7]))
    self.assertNotAllClose(gen.decode(z), other.decode(z))
    tf.train.Checkpoint(generator=other).restore(path).assert_consumed()
    self.assertAllClose(gen.decode(z), other.decode(z), atol=0, rtol=0)

  def test_mirrored_train_step(self):
    # 2 replicas: the one-device losses, metrics and updated weights for the
    # same global batch and seeds (batch norm synchronized: see
    # generator_testutil.sync_batch_norm).
    shape = (28, 28, 1)
    generator_testutil.assert_mirrored_matches_one_device(
        self, lambda: make_vae(shape, 'bce'), shape)


if __name__ == '__main__':
  replicas_testutil.two_replicas()
  keras.utils.set_random_seed(0)
  tf.test.main()
