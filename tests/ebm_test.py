"""Energy networks and the latent-EBM loss."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tilt_tf import ebm
from tilt_tf import precision as precision_lib
from tilt_tf.generators import mlp_vae


class EnergyTest(tf.test.TestCase, parameterized.TestCase):

  def test_mlp_energy_is_scalar_per_point(self):
    e = ebm.MLPEnergy(hidden=16, layers=3)
    self.assertEqual(e(tf.zeros([5, 2])).shape, (5,))
    self.assertLen(e.trainable_variables, 8)

  def test_fourier_features_are_fixed_seeded_and_checkpointed(self):
    e = ebm.MLPEnergy(hidden=16, fourier_features=8, fourier_scale=3., seed=5)
    self.assertEqual(e(tf.zeros([5, 2])).shape, (5,))
    self.assertLen(e.trainable_variables, 8)  # The frequencies are not trained.
    self.assertEqual(e.fourier.shape, (2, 8))
    again = ebm.MLPEnergy(hidden=16, fourier_features=8, fourier_scale=3., seed=5)
    self.assertAllEqual(e.fourier, again.fourier)
    other = ebm.MLPEnergy(hidden=16, fourier_features=8, fourier_scale=3., seed=6)
    self.assertNotAllEqual(e.fourier, other.fourier)
    path = tf.train.Checkpoint(energy=e).save(
        self.create_tempdir().full_path + '/ckpt')
    names = [n for n, _ in tf.train.list_variables(path)]
    self.assertTrue(any('fourier' in n for n in names), names)

  def test_fourier_energy_learns_fine_modes(self):
    """Data on tight modes 0.7 apart, negatives between them (the shape of
    25-Gaussians vs a VAE's bridges): the Fourier energy separates them by
    several nats within 300 Adam steps of the EBM loss."""
    tf.keras.utils.set_random_seed(0)
    grid = np.stack(np.meshgrid(np.arange(3.), np.arange(3.)), -1)
    modes = 0.7 * grid.reshape(-1, 2) - 0.7
    rng = np.random.default_rng(0)
    data = (modes[rng.integers(0, 9, 2048)] +
            0.018 * rng.normal(size=(2048, 2))).astype(np.float32)
    mids = (modes[:-1] + np.array([0.35, 0.], np.float32))
    neg = np.concatenate([data[:1024], np.repeat(mids, 128, 0)]).astype(np.float32)
    e = ebm.MLPEnergy(hidden=64, fourier_features=64, fourier_scale=2.)
    opt = tf.keras.optimizers.Adam(1e-3)

    @tf.function
    def step(xd, xn):
      with tf.GradientTape() as tape:
        ed, en = e(xd), e(xn)
        loss = tf.reduce_mean(ed - en + 0.1 * (ed**2 + en**2))
      opt.apply_gradients(zip(tape.gradient(loss, e.trainable_variables),
                              e.trainable_variables))

    for _ in range(300):
      step(data[rng.integers(0, 2048, 128)], neg[rng.integers(0, len(neg), 128)])
    gap = float(tf.reduce_mean(e(mids)) - tf.reduce_mean(e(modes)))
    self.assertGreater(gap, 2.0)

  @parameterized.parameters(((28, 28, 1), 1), ((32, 32, 3), 1), ((28, 28, 1), 2))
  def test_resnet_energy_shapes(self, shape, stride):
    e = ebm.ResNetEnergy(channels=(8, 16), blocks=3, stem_stride=stride)
    x = tf.random.stateless_uniform((4,) + shape, seed=[0, 1])
    out = e(x)
    self.assertEqual(out.shape, (4,))
    self.assertTrue(np.all(np.isfinite(out)))
    # 2 stages x 3 blocks x 2 convs (+1 skip conv at the width change).
    convs = [v for v in e.trainable_variables if len(v.shape) == 4]
    self.assertLen(convs, 1 + 2 * 3 * 2 + 1)

  def test_config_names_the_precision_policy(self):
    # What Keras stores when a SavedModel (the export) holds the energy:
    # its default config cannot serialize a policy (a warning, and {}).
    energy = ebm.ResNetEnergy((8, 16), 1, stem_stride=2,
                              dtype=precision_lib.policy('bf16'))
    config = energy.get_config()
    self.assertEqual(config['dtype'], 'mixed_bfloat16')
    again = ebm.ResNetEnergy(**config)
    self.assertEqual(again.get_config(), config)
    self.assertEqual(again.stem.strides, (2, 2))
    self.assertEqual(again.stem.dtype_policy.name, 'mixed_bfloat16')

  def test_stem_pool_lowers_the_first_stages_resolution(self):
    e = ebm.ResNetEnergy(channels=(8, 16), blocks=1, stem_stride=2, stem_pool=2)
    x = tf.random.stateless_uniform((3, 28, 28, 1), seed=[0, 2])
    self.assertEqual(e(x).shape, (3,))
    pooled = e.stages[0](e.stem(x))  # What the first stage's blocks see.
    self.assertEqual(pooled.shape[1:3], (7, 7))


class LatentEBMTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    tf.keras.utils.set_random_seed(0)
    self.gen = mlp_vae.MLPVAE(latent_dim=2, hidden=8)
    self.energy = ebm.MLPEnergy(hidden=8)
    self.energy(tf.zeros([1, 2]))
    self.model = ebm.LatentEBM(self.gen, self.energy, alpha=0.1)

  def test_potential_is_energy_plus_half_square_norm(self):
    z = tf.constant([[1.0, 2.0], [0.0, -1.0]])
    expected = self.energy(self.gen.decode(z)) + 0.5 * tf.reduce_sum(z * z, -1)
    self.assertAllClose(self.model.potential(z), expected)

  def test_loss_formula(self):
    x = tf.random.stateless_normal([6, 2], seed=[1, 1])
    z = tf.random.stateless_normal([6, 2], seed=[2, 2])
    loss, m = self.model.per_example_loss(x, z)
    e_d = self.energy(x)
    e_s = self.energy(self.gen.decode(z))
    want = (tf.reduce_mean(e_d) - tf.reduce_mean(e_s) + 0.1 *
            (tf.reduce_mean(e_d**2) + tf.reduce_mean(e_s**2)))
    self.assertAllClose(tf.reduce_mean(loss), want, atol=1e-6)
    self.assertAllClose(m['energy_data'], e_d)

  def test_gradient_reaches_only_the_energy(self):
    x = tf.zeros([4, 2])
    z = tf.ones([4, 2])
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(self.model.per_example_loss(x, z)[0])
    grads = tape.gradient(loss, list(self.gen.trainable_variables) +
                          list(self.energy.trainable_variables))
    n_gen = len(self.gen.trainable_variables)
    self.assertTrue(all(g is None for g in grads[:n_gen]))
    self.assertTrue(all(g is not None for g in grads[n_gen:]))

  def test_sample_latents_reproducible(self):
    a = self.model.sample_latents(5, tf.constant([1, 2]), 0.01, 4)['z']
    b = self.model.sample_latents(5, tf.constant([1, 2]), 0.01, 4)['z']
    self.assertAllEqual(a, b)
    self.assertEqual(a.shape, (5, 2))


if __name__ == '__main__':
  tf.test.main()
