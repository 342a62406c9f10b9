"""Table 1 baselines: the latent flow's density, fitting, sampling (tiny)."""

import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import configs
from configs import table1 as table1_config
from tests import image_data_testutil
from tilt_tf import baselines
from tilt_tf import data as data_lib
from tilt_tf.errors import UserError
from tilt_tf.generators import registry

tfd = tfp.distributions


def _test_base(name):
  """An untrained image base (test preset) on fake Fashion-MNIST."""
  config = configs.get_config(name, 'fashion_mnist', 'test')
  gen = registry.make_generator(name, config.base, (28, 28, 1))
  gen.build(tf.zeros([2, 28, 28, 1]))
  return gen, config


def _shifted_codes(n=2048, dim=4):
  """Posterior stats whose aggregate is about N(3 + index, 0.5^2) per dim."""
  rng = np.random.default_rng(0)
  mean = (3.0 + np.arange(dim) + 0.4 * rng.standard_normal((n, dim)))
  log_var = np.full((n, dim), np.log(0.3 ** 2))
  return mean.astype(np.float32), log_var.astype(np.float32)


class LatentFlowTest(tf.test.TestCase):

  def test_nll_is_the_transformed_densitys(self):
    flow = baselines.LatentFlow(6, flow_layers=2, flow_hidden=8)
    rng = np.random.default_rng(1)
    for v in flow.trainable_variables:
      v.assign(0.3 * rng.standard_normal(v.shape).astype(np.float32))
    dist = tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(tf.zeros(6), tf.ones(6)), flow.bijector)
    z = tf.constant(rng.standard_normal((5, 6)), tf.float32)
    nll, _ = flow.per_example_loss(z, tf.constant([0, 0]))
    self.assertAllClose(nll, -dist.log_prob(z), atol=1e-4)
    u, x = flow.sample(3, tf.constant([1, 2]))
    self.assertEqual(x.shape, (3, 6))
    self.assertAllClose(flow.bijector.inverse(x), u, atol=1e-4)
    # Every variable is the module's (the bijector does not track them).
    self.assertLen(flow.trainable_variables, 2 * 2 * 2 + 2)


class FitTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters('two_stage_vae', 'flow')
  def test_fit_moves_samples_to_the_codes(self, kind):
    mean, log_var = _shifted_codes()
    cfg = table1_config.get_config('test')
    cfg = cfg.two_stage if kind == 'two_stage_vae' else cfg.flow
    cfg.steps, cfg.batch_size, cfg.log_every = 400, 128, 100
    cfg.learning_rate = 1e-2
    if kind == 'two_stage_vae':
      cfg.hidden, cfg.layers = 32, 2
    model = baselines.make_latent_model(kind, 4, cfg)
    target = np.mean(mean, 0)

    def mean_error():
      _, z = model.sample(2000, tf.constant([3, 4]))
      return np.mean(np.abs(np.mean(z, 0) - target))

    loss_before = float(tf.reduce_mean(model.per_example_loss(
        mean[:256], tf.constant([0, 0]))[0]))
    error_before = mean_error()
    info = baselines.fit_latent_model(model, mean, log_var, cfg, seed=0)
    self.assertEqual(info['steps'], 400)
    self.assertLess(info['final']['loss'], loss_before)
    # Samples of the fitted prior move to where the codes are (a VAE gets
    # there more slowly than a flow).
    self.assertLess(mean_error(), 0.5 * error_before)
    if kind == 'flow':
      self.assertLess(mean_error(), 0.2)

  def test_unknown_kind(self):
    with self.assertRaisesRegex(UserError, 'unknown latent model'):
      baselines.make_latent_model('pixelcnn', 4, None)


class SamplingTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    folder = tempfile.mkdtemp(dir=absltest.get_default_test_tmpdir())
    image_data_testutil.fake_fashion(folder, n_train=64, n_test=32)
    cls.images = data_lib.load_images('fashion_mnist', 'train', folder)

  def test_posterior_stats(self):
    vae, config = _test_base('vae')
    mean, log_var = baselines.posterior_stats(vae, self.images, batch_size=24)
    self.assertEqual(mean.shape, (64, config.base.latent_dim))
    self.assertEqual(log_var.shape, mean.shape)
    self.assertTrue(np.all(np.isfinite(log_var)))
    glf_gen, _ = _test_base('glf')  # Deterministic encoder: zero variance.
    mean, log_var = baselines.posterior_stats(glf_gen, self.images[:8])
    self.assertTrue(np.all(np.exp(log_var) == 0))
    with self.assertRaisesRegex(UserError, 'no encoder'):
      baselines.posterior_stats(baselines.LatentFlow(4), self.images)

  def test_stacked_sampler_images(self):
    vae, _ = _test_base('vae')
    aux = baselines.make_latent_model(
        'two_stage_vae', vae.latent_dim,
        table1_config.get_config('test').two_stage)
    fn = baselines.stacked_sampler(aux, vae)
    images = baselines.draw_images(fn, 10, batch_size=4, seed=5)
    self.assertEqual(images.shape, (10, 28, 28, 1))
    self.assertEqual(images.dtype, np.uint8)
    self.assertAllEqual(images, baselines.draw_images(fn, 10, 4, seed=5))
    self.assertNotAllEqual(images, baselines.draw_images(fn, 10, 4, seed=6))

  def test_temperature_sampler(self):
    gen, _ = _test_base('glf')
    cold = baselines.draw_images(baselines.temperature_sampler(gen, 0.0), 4,
                                 4, seed=0)
    self.assertAllEqual(cold, np.repeat(cold[:1], 4, 0))  # All decode(0).
    warm = baselines.draw_images(baselines.temperature_sampler(gen, 0.7), 4,
                                 4, seed=0)
    self.assertEqual(warm.shape, (4, 28, 28, 1))


class ConfigTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(*configs.PRESETS)
  def test_presets(self, preset):
    c = table1_config.get_config(preset)
    self.assertNotEmpty(c.temperatures)
    self.assertTrue(all(0 < t < 1 for t in c.temperatures))
    for section in ('two_stage', 'flow'):
      self.assertGreater(c[section].steps, 0)


if __name__ == '__main__':
  tf.test.main()
