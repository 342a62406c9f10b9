"""Langevin sampler: recovers a known Gaussian, reproducible from its seed."""

import numpy as np
import tensorflow as tf

from tilt_tf import langevin


class LangevinTest(tf.test.TestCase):

  def _gaussian(self, mu, sigma):
    mu = tf.constant(mu, tf.float32)
    return lambda z: 0.5 * tf.reduce_sum(tf.square((z - mu) / sigma), -1)

  def test_recovers_gaussian_mean_and_std(self):
    mu, sigma = [1.0, -2.0], 0.7
    run = tf.function(lambda z0: langevin.langevin(
        self._gaussian(mu, sigma), z0, seed=[3, 4], step_size=0.01,
        num_steps=1500))
    out = run(tf.zeros([4000, 2]))
    z = out['z'].numpy()
    self.assertAllClose(z.mean(0), mu, atol=0.05)
    # Discretized Langevin on a Gaussian inflates the variance by
    # 1 / (1 - eps / (4 sigma^2)) ~ 0.5% here: well inside the tolerance.
    self.assertAllClose(z.std(0), [sigma, sigma], atol=0.04)

  def test_same_seed_same_chain_other_seed_other_chain(self):
    u = self._gaussian([0.0, 0.0], 1.0)
    z0 = tf.zeros([8, 2])
    a = langevin.langevin(u, z0, seed=[1, 2], num_steps=10)['z']
    b = langevin.langevin(u, z0, seed=[1, 2], num_steps=10)['z']
    c = langevin.langevin(u, z0, seed=[1, 3], num_steps=10)['z']
    self.assertAllEqual(a, b)
    self.assertNotAllClose(a, c)

  def test_compiled_matches_eager(self):
    u = self._gaussian([0.5, 0.0], 1.0)
    z0 = tf.random.stateless_normal([16, 2], seed=[0, 1])
    eager = langevin.langevin(u, z0, seed=[5, 6], num_steps=20)['z']
    compiled = tf.function(lambda z: langevin.langevin(
        u, z, seed=[5, 6], num_steps=20))(z0)['z']
    self.assertAllClose(eager, compiled, atol=1e-5)

  def test_records_every_kth_state(self):
    u = self._gaussian([0.0, 0.0], 1.0)
    z0 = tf.ones([3, 2])
    out = tf.function(lambda: langevin.langevin(
        u, z0, seed=[0, 0], num_steps=20, record_every=5))()
    traj = out['trajectory'].numpy()
    self.assertEqual(traj.shape, (5, 3, 2))
    self.assertAllEqual(traj[0], z0)
    self.assertAllEqual(traj[-1], out['z'])

  def test_zero_noise_is_gradient_descent(self):
    u = self._gaussian([2.0, 2.0], 1.0)
    out = langevin.langevin(u, tf.zeros([1, 2]), seed=[0, 0], step_size=0.1,
                            num_steps=1, noise_scale=0.0)
    # z1 = z0 - eps/2 * (z0 - mu) = 0.05 * mu.
    self.assertAllClose(out['z'], [[0.1, 0.1]])
    self.assertAllClose(out['grad_norm'], np.sqrt(8.0), atol=1e-5)


class RunChainTest(tf.test.TestCase):
  """The one chain runner that latent and pixel chains share."""

  def test_steps_seeds_trajectory_and_grad_norm(self):
    seeds = []

    def step(x, seed):
      seeds.append(seed)
      return x + 1.0, tf.fill(tf.shape(x), 2.0)  # |g| = 2 sqrt(D) per chain.

    out = langevin.run_chain(step, tf.zeros([3, 4]), tf.constant([5, 6]), 6,
                             record_every=2)
    self.assertAllClose(out['x'], tf.fill([3, 4], 6.0))
    self.assertAllClose(out['grad_norm'], 4.0)
    self.assertEqual(out['trajectory'].shape, (4, 3, 4))
    self.assertAllClose(out['trajectory'][:, 0, 0], [0., 2., 4., 6.])


if __name__ == '__main__':
  tf.test.main()
