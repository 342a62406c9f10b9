"""GLF generator: shapes, flow consistency, gradients, overfitting, checkpoints."""

from absl.testing import parameterized
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tilt_tf.generators import glf
from tests import generator_testutil
from tests import replicas_testutil
from tilt_tf.generators import registry

tfd = tfp.distributions

SHAPES = (('mnist', (28, 28, 1), 'bce'), ('cifar', (32, 32, 3), 'mse'))
LATENT = 8


def make_glf(shape, recon, width=8, flow_layers=4, flow_hidden=32):
  cfg = ml_collections.ConfigDict(dict(
      latent_dim=LATENT, width=width, recon=recon, flow_layers=flow_layers,
      flow_hidden=flow_hidden, learning_rate=3e-3))
  return registry.make_generator('glf', cfg, shape), cfg


def randomize_flow(gen, seed=0):
  """Non-trivial flow weights (the output layers start at zero)."""
  rng = np.random.default_rng(seed)
  for net in gen.coupling_nets:
    for v in net.trainable_variables:
      v.assign(0.3 * rng.standard_normal(v.shape).astype(np.float32))
  gen.latent_loc.assign(rng.standard_normal(LATENT).astype(np.float32))
  gen.latent_log_scale.assign(
      0.5 * rng.standard_normal(LATENT).astype(np.float32))


class GLFTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*SHAPES)
  def test_decode_shape_and_range(self, shape, recon):
    gen, _ = make_glf(shape, recon)
    self.assertIsInstance(gen, glf.GLF)
    randomize_flow(gen)
    u, x = gen.sample(4, tf.constant([1, 2]))
    self.assertEqual(u.shape, (4, LATENT))
    self.assertEqual(x.shape, (4,) + shape)
    self.assertAllInRange(x, 0.0, 1.0)

  def test_flow_variables_are_tracked(self):
    gen, _ = make_glf((28, 28, 1), 'bce', flow_layers=4)
    names = {v.ref() for v in gen.trainable_variables}
    flow_vars = [v for net in gen.coupling_nets for v in net.trainable_variables]
    self.assertLen(flow_vars, 4 * 4)  # 2 dense layers x (kernel, bias) each.
    for v in flow_vars + [gen.latent_loc, gen.latent_log_scale]:
      self.assertIn(v.ref(), names)
    ae = len(gen.encoder.trainable_variables) + len(
        gen.decoder.trainable_variables)
    self.assertLen(gen.trainable_variables, ae + 16 + 2)

  def test_flow_inverse_and_log_det(self):
    gen, _ = make_glf((28, 28, 1), 'bce')
    randomize_flow(gen)
    u = tf.random.stateless_normal([5, LATENT], seed=[0, 3])
    z = gen.flow_forward(u)
    self.assertNotAllClose(u, z)
    self.assertAllClose(gen.flow_inverse(z), u, atol=1e-4)
    # log|det dz/du| from the bijector vs the autodiff Jacobian.
    with tf.GradientTape() as tape:
      tape.watch(u)
      z = gen.flow_forward(u)
    _, logdet = tf.linalg.slogdet(tape.batch_jacobian(z, u))
    fldj = gen.flow.forward_log_det_jacobian(tf.identity(u), event_ndims=1)
    self.assertAllClose(fldj, logdet, atol=1e-4)
    # NLL = -log of the pushed-forward N(0, I), and finite.
    nll = gen.flow_nll(z)
    self.assertAllEqual(np.isfinite(nll), [True] * 5)
    dist = tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(tf.zeros(LATENT), tf.ones(LATENT)),
        gen.flow)
    self.assertAllClose(nll, -dist.log_prob(tf.identity(z)), atol=1e-4)

  @parameterized.named_parameters(*SHAPES)
  def test_loss_shape_and_gradients(self, shape, recon):
    gen, _ = make_glf(shape, recon)
    x = generator_testutil.blobs(4, shape)
    with tf.GradientTape(persistent=True) as tape:
      loss, metrics = gen.per_example_loss(x, tf.constant([3, 4]))
      mean = tf.reduce_mean(loss)
      nll = tf.reduce_mean(metrics['nll'])
    self.assertEqual(loss.shape, (4,))
    self.assertAllEqual(np.isfinite(loss), [True] * 4)
    self.assertEqual(set(metrics), {'recon', 'nll'})
    self.assertAllClose(loss, metrics['recon'] + metrics['nll'])
    grads = tape.gradient(mean, gen.trainable_variables)
    for v, g in zip(gen.trainable_variables, grads):
      self.assertIsNotNone(g, v.name)
    # Stopped gradient: the NLL does not reach the encoder.
    for g in tape.gradient(nll, gen.encoder.trainable_variables):
      self.assertIsNone(g)

  def test_decode_differentiable_in_u(self):
    gen, _ = make_glf((28, 28, 1), 'bce')
    randomize_flow(gen)
    g, g_eager = generator_testutil.decode_gradients(gen, 4)
    self.assertEqual(g.shape, (4, LATENT))
    self.assertGreater(float(tf.reduce_sum(tf.abs(g))), 0.0)
    self.assertAllClose(g_eager, g, rtol=1e-4, atol=1e-5)

  @parameterized.named_parameters(*SHAPES)
  def test_overfits_tiny_batch(self, shape, recon):
    gen, cfg = make_glf(shape, recon)
    opt = gen.make_optimizer(cfg)
    x = generator_testutil.blobs(4, shape)
    step = tf.function(lambda s: gen.train_step(x, s, opt, 4))
    out = [step(tf.constant([0, i])) for i in range(300)]
    recon_loss = [float(o['recon']) for o in out]
    self.assertLess(np.mean(recon_loss[-20:]), 0.5 * recon_loss[0])
    # The flow fits the (moving) latents: better than the untrained flow,
    # which is the identity, i.e. N(0, I) over z.
    z = gen.encode(x, training=True)
    identity_nll = gen.neg_log_prior(z) + 0.5 * LATENT * np.log(2 * np.pi)
    self.assertLess(float(tf.reduce_mean(gen.flow_nll(z))),
                    float(tf.reduce_mean(identity_nll)))

  def test_checkpoint_round_trip(self):
    shape = (28, 28, 1)
    gen, cfg = make_glf(shape, 'bce')
    opt = gen.make_optimizer(cfg)
    for i in range(3):  # Move weights and batch-norm statistics.
      gen.train_step(generator_testutil.blobs(4, shape), tf.constant([0, i]), opt, 4)
    path = tf.train.Checkpoint(generator=gen).save(
        self.create_tempdir().full_path + '/ckpt')
    other, _ = make_glf(shape, 'bce')
    u = gen.prior_sample(4, tf.constant([7, 7]))
    self.assertNotAllClose(gen.decode(u), other.decode(u))
    tf.train.Checkpoint(generator=other).restore(path).assert_consumed()
    self.assertAllClose(gen.decode(u), other.decode(u), atol=0, rtol=0)
    self.assertAllClose(gen.flow_forward(u), other.flow_forward(u), atol=0,
                        rtol=0)

  def test_mirrored_train_step(self):
    # 2 replicas: the one-device losses, metrics and updated weights for the
    # same global batch and seeds (batch norm synchronized: see
    # generator_testutil.sync_batch_norm).
    shape = (28, 28, 1)
    generator_testutil.assert_mirrored_matches_one_device(
        self, lambda: make_glf(shape, 'bce'), shape)


if __name__ == '__main__':
  replicas_testutil.two_replicas()
  keras.utils.set_random_seed(0)
  tf.test.main()
