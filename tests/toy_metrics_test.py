"""Toy quality figures: perfect samples score perfectly, bad ones do not."""

import numpy as np
import tensorflow as tf

from tilt_tf import data
from tilt_tf import toy_metrics


class ToyMetricsTest(tf.test.TestCase):

  def test_data_is_high_quality_and_covers_all_modes(self):
    m = toy_metrics.toy_metrics('25gaussians',
                                data.toy_samples('25gaussians', 5000, 1))
    self.assertGreater(m['high_quality_fraction'], 0.99)
    self.assertEqual(m['modes_covered'], 25)
    self.assertLess(m['mode_kl_from_uniform'], 0.02)
    self.assertLess(m['energy_distance'], 0.01)

  def test_points_between_modes_are_low_quality(self):
    modes = data.gaussian_modes()
    between = modes[:-1] + 0.5 * (modes[1:] - modes[:-1])
    m = toy_metrics.gaussians_quality(np.repeat(between, 10, 0))
    self.assertEqual(m['high_quality_fraction'], 0.0)
    self.assertEqual(m['modes_covered'], 0)

  def test_dropped_modes_are_counted(self):
    x = data.toy_samples('25gaussians', 5000, 2)
    modes = data.gaussian_modes()
    keep = np.linalg.norm(x[:, None] - modes[None], axis=-1).argmin(1) < 20
    m = toy_metrics.gaussians_quality(x[keep])
    self.assertEqual(m['modes_covered'], 20)
    self.assertGreater(m['mode_kl_from_uniform'], 0.2)

  def test_energy_distance_orders_noise(self):
    x = data.toy_samples('swissroll', 2000, 0)
    rng = np.random.default_rng(0)
    d = [toy_metrics.toy_metrics('swissroll', x + s * rng.standard_normal(x.shape))
         ['energy_distance'] for s in (0.0, 0.1, 0.3)]
    self.assertLess(d[0], d[1])
    self.assertLess(d[1], d[2])


class _Identity:
  """A 2-D 'generator' G(z) = z with the standard normal prior."""
  latent_dim = 2

  def decode(self, z):
    return tf.convert_to_tensor(z)

  def neg_log_prior(self, z):
    return 0.5 * tf.reduce_sum(tf.square(z), -1)


class ExactTiltedSamplesTest(tf.test.TestCase):

  def test_linear_energy_shifts_the_gaussian(self):
    # p0(z) exp(c.z) ∝ N(c, I): the exact sampler must recover mean c, std 1.
    c = tf.constant([1.0, -0.5])
    energy = lambda x: -tf.reduce_sum(x * c, -1)
    x = toy_metrics.exact_tilted_samples(_Identity(), energy, 20000, seed=3)
    self.assertEqual(x.shape, (20000, 2))
    self.assertAllClose(x.mean(0), c, atol=0.04)
    self.assertAllClose(x.std(0), [1.0, 1.0], atol=0.04)
    again = toy_metrics.exact_tilted_samples(_Identity(), energy, 20000,
                                             seed=3)
    self.assertAllEqual(x, again)

  def test_needs_a_2d_latent(self):
    gen = _Identity()
    gen.latent_dim = 3
    with self.assertRaisesRegex(ValueError, 'needs a 2-D latent'):
      toy_metrics.exact_tilted_samples(gen, lambda x: x[:, 0], 10)


if __name__ == '__main__':
  tf.test.main()
