"""Generator adapters and user data, on tiny shapes: priors, shapes, ranges,
and the one-line refusals."""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tilt_tf import user_data
from tilt_tf.errors import UserError
from tilt_tf.generators import adapters

tfb, tfd = tfp.bijectors, tfp.distributions


def _decoder(module=keras, latent=3):
  return module.Sequential([
      module.Input((latent,)), module.layers.Dense(16, activation='sigmoid'),
      module.layers.Reshape((4, 4, 1))])


class AdaptersTest(tf.test.TestCase):

  def test_keras3_and_tf_keras_decoders(self):
    for module in (keras, tf_keras):
      with self.subTest(module.__name__):
        dec = _decoder(module)
        gen = adapters.generator_from_keras(dec)
        self.assertEqual(gen.latent_dim, 3)
        self.assertEqual(gen.data_shape, (4, 4, 1))
        # Its variables are tracked (Keras 3 ones too) but never trained.
        self.assertLen(gen.variables, 2)
        self.assertEmpty(gen.trainable_variables)
        z = tf.random.stateless_normal([5, 3], [0, 1])
        with tf.GradientTape() as tape:
          tape.watch(z)
          x = gen.decode(z)
        self.assertEqual(tape.gradient(x, z).shape, (5, 3))
        adapters.check_outputs(gen, (4, 4, 1))

  def test_default_and_custom_priors(self):
    gen = adapters.generator_from_function(lambda z: tf.tanh(z), 2)
    z = gen.prior_sample(4, tf.constant([1, 2]))
    self.assertAllClose(gen.neg_log_prior(z), 0.5 * tf.reduce_sum(z**2, -1))
    prior = tfd.MultivariateNormalDiag(tf.ones(2), 2 * tf.ones(2))
    gen = adapters.generator_from_function(lambda z: tf.tanh(z), 2,
                                           prior=prior)
    z = gen.prior_sample(2000, tf.constant([1, 2]))
    self.assertAllClose(tf.reduce_mean(z, 0), [1., 1.], atol=0.15)
    self.assertAllClose(gen.neg_log_prior(z), -prior.log_prob(z))
    self.assertAllEqual(z, gen.prior_sample(2000, tf.constant([1, 2])))
    with self.assertRaisesRegex(UserError, 'event shape'):
      adapters.generator_from_function(tf.tanh, 3, prior=prior)

  def test_bijector_flow(self):
    flow = tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2)),
        tfb.Shift(tf.Variable([1., -1.])))
    gen = adapters.generator_from_bijector(flow)
    self.assertEqual(gen.latent_dim, 2)
    self.assertLen(gen.variables, 1)
    self.assertAllClose(gen.decode(tf.zeros([1, 2])), [[1., -1.]])
    with self.assertRaisesRegex(UserError, 'TransformedDistribution'):
      adapters.generator_from_bijector('not a flow')

  def test_refusals(self):
    dec = _decoder()
    with self.assertRaisesRegex(UserError, 'does not fit the model'):
      adapters.generator_from_keras(dec, latent_dim=4)
    gen = adapters.generator_from_keras(dec)
    with self.assertRaisesRegex(UserError, 'data has shape'):
      adapters.check_outputs(gen, (8, 8, 1))
    wide = adapters.generator_from_function(lambda z: 3.0 * dec(z), 3)
    with self.assertRaisesRegex(UserError, r'must be in \[0, 1\]'):
      adapters.check_outputs(wide)
    nan = adapters.generator_from_function(lambda z: dec(z) * np.nan, 3)
    with self.assertRaisesRegex(UserError, 'non-finite'):
      adapters.check_outputs(nan)


class UserDataTest(tf.test.TestCase):

  def test_arrays_and_files(self):
    images = np.random.default_rng(0).integers(0, 256, (20, 4, 4),
                                               dtype=np.uint8)
    self.assertEqual(user_data.check_array(images).shape, (20, 4, 4, 1))
    path = self.create_tempfile('x.npz').full_path
    np.savez(path, images=images)
    self.assertEqual(user_data.load_array(path).shape, (20, 4, 4, 1))
    bad = self.create_tempfile('bad.npz', content='not a zip').full_path
    with self.assertRaisesRegex(UserError, 'not a readable .npz'):
      user_data.load_array(bad)
    with self.assertRaisesRegex(UserError, r'must be in \[0, 1\]'):
      user_data.check_array(np.full((20, 4, 4, 1), 2.0))
    with self.assertRaisesRegex(UserError, 'shape'):
      user_data.check_array(np.zeros((20, 2, 2, 2, 2)))
    with self.assertRaisesRegex(UserError, 'not a file'):
      user_data.load_array(path + '.missing')


if __name__ == '__main__':
  tf.test.main()
