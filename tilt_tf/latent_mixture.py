"""A Gaussian mixture q(z) with one shared (tied) covariance: the distill
stage's default model of the tilted latents (tilt_tf/distill.py).

q(z) = sum_k pi_k N(z; mu_k, L L^T), a TFP `MixtureSameFamily`; fitted by
EM (scikit-learn's `GaussianMixture(covariance_type='tied')`) in
`distill.fit_mixture`. On GLF and VAE `small` it keeps more of the tilt's
gain than a RealNVP flow, which on ~9,000 latents learns little beyond their
mean and covariance (docs/distill.md). Same interface as
`distill.LatentFlow`: `log_prob(z)`, `sample(n, seed)` (stateless).
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ['LatentMixture']


class LatentMixture(tf.Module):
  """q(z): `components` Gaussians sharing one covariance.

  Args:
    latent_dim: size of z.
    components: mixture components (k).
  Starts as N(0, I) in every component (equal weights) until `assign`.
  """

  def __init__(self, latent_dim, components=10, *, name='latent_mixture'):
    super().__init__(name=name)
    d = self.latent_dim = int(latent_dim)
    k = self.components = int(components)
    self.logits = tf.Variable(tf.zeros([k]), name='logits')
    self.means = tf.Variable(tf.zeros([k, d]), name='means')
    self.scale_tril = tf.Variable(tf.eye(d), name='scale_tril')

  @property
  def distribution(self):
    scale = tf.broadcast_to(self.scale_tril, [self.components,
                                              self.latent_dim,
                                              self.latent_dim])
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=self.logits),
        tfd.MultivariateNormalTriL(self.means, scale))

  def log_prob(self, z):
    return self.distribution.log_prob(tf.convert_to_tensor(z, tf.float32))

  def sample(self, n, seed):
    """z ~ q, stateless: the same seed gives the same latents."""
    seeds = tf.random.experimental.stateless_split(
        tf.cast(seed, tf.int64), num=2)
    which = tf.random.stateless_categorical(self.logits[None], n,
                                            seeds[0])[0]
    eps = tf.random.stateless_normal([n, self.latent_dim], seeds[1])
    return tf.gather(self.means, which) + tf.linalg.matvec(self.scale_tril,
                                                           eps)

  def assign(self, weights, means, covariance):
    """Sets q from mixture weights [k], means [k, d] and the shared
    covariance [d, d] (e.g. a fitted GaussianMixture's)."""
    weights = np.maximum(np.asarray(weights, np.float64), 1e-12)
    self.logits.assign(np.log(weights / weights.sum()).astype(np.float32))
    self.means.assign(np.asarray(means, np.float32))
    self.scale_tril.assign(
        np.linalg.cholesky(np.asarray(covariance, np.float64)).astype(
            np.float32))
