"""A Gaussian mixture q(z) with one shared (tied) covariance: the distill
stage's model of the tilted latents (tilt_tf/distill.py), in two forms.

q(z) = sum_k pi_k N(z; mu_k, L L^T). `distill.fit_mixture` sets it either as
a kernel density (the default: one component per tilted latent, mu_k the
latents, L L^T = bandwidth^2 x their covariance) or as k components fitted
by EM (scikit-learn's `GaussianMixture(covariance_type='tied')`). On GLF and
VAE `small` both keep more of the tilt's gain than a RealNVP flow, which on
~9,000 latents learns little beyond their mean and covariance, and the
kernel density all of it (docs/distill.md). Same interface as
`distill.LatentFlow`: `log_prob(z)`, `sample(n, seed)` (stateless). The
shared covariance keeps both cheap for any k: log_prob whitens once and
takes one logsumexp over k (what TFP's `MixtureSameFamily` gives, without
its [k, d, d] scale), sampling gathers a mean and adds L eps.
"""

import numpy as np
import tensorflow as tf

__all__ = ['LatentMixture']


class LatentMixture(tf.Module):
  """q(z): Gaussians sharing one covariance.

  Args:
    latent_dim: size of z.
    components: mixture components (k) until `assign` sets another number
      (a kernel density has one per latent).
  Starts as N(0, I) in every component (equal weights) until `assign`.
  """

  def __init__(self, latent_dim, components=10, *, name='latent_mixture'):
    super().__init__(name=name)
    d = self.latent_dim = int(latent_dim)
    k = int(components)
    # k is free ([None]): `assign` and a checkpoint may bring any number.
    self.logits = tf.Variable(tf.zeros([k]), shape=[None], name='logits')
    self.means = tf.Variable(tf.zeros([k, d]), shape=[None, d], name='means')
    self.scale_tril = tf.Variable(tf.eye(d), name='scale_tril')

  @property
  def components(self):
    """k, as last assigned or restored."""
    return int(tf.shape(self.logits)[0])

  def log_prob(self, z):
    """log q(z) [n], without a [k, d, d] covariance: both z and the means
    are whitened by the shared scale once, then one logsumexp over k."""
    z = tf.convert_to_tensor(z, tf.float32)
    y = tf.linalg.triangular_solve(self.scale_tril, tf.transpose(z))
    m = tf.linalg.triangular_solve(self.scale_tril, tf.transpose(self.means))
    sq = (tf.reduce_sum(tf.square(y), 0)[:, None] +
          tf.reduce_sum(tf.square(m), 0)[None] -
          2. * tf.matmul(y, m, transpose_a=True))
    log_k = tf.nn.log_softmax(self.logits)[None] - 0.5 * tf.maximum(sq, 0.)
    log_det = tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(
        self.scale_tril))))
    return (tf.reduce_logsumexp(log_k, 1) - log_det -
            0.5 * self.latent_dim * np.log(2. * np.pi).astype(np.float32))

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
    covariance [d, d] (e.g. a fitted GaussianMixture's); k may differ from
    the current one."""
    weights = np.maximum(np.asarray(weights, np.float64), 1e-12)
    self.logits.assign(np.log(weights / weights.sum()).astype(np.float32))
    self.means.assign(np.asarray(means, np.float32))
    self.scale_tril.assign(
        np.linalg.cholesky(np.asarray(covariance, np.float64)).astype(
            np.float32))
