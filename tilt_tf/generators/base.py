"""The one Generator interface every base model implements.

A Generator maps a latent z ~ prior (a TFP distribution, N(0, I) for every
base here) to data x = decode(z). The tilting code needs nothing else:
`latent_dim`, `prior`, `decode`, `sample`. Training the base model goes
through `per_example_loss`, which `train_step` turns into an optimizer update
(scaled by the global batch, so it runs unchanged under tf.distribute).

Data convention: images are float32 in [0, 1], [B, H, W, C]; toy points are
float32 [B, D]. `decode` returns data in the same convention.
"""

import abc

import tensorflow as tf
import tensorflow_probability as tfp

from tilt_tf import rng

tfd = tfp.distributions

__all__ = ['Generator', 'apply_summed_gradients']


class Generator(tf.Module, metaclass=abc.ABCMeta):
  """Base class: a frozen-after-training decoder with a Gaussian prior.

  Subclasses build their Keras models in `__init__` (or lazily in `build`)
  and implement `decode` and `per_example_loss`.
  """

  def __init__(self, latent_dim, data_shape, name=None):
    super().__init__(name=name)
    self.latent_dim = int(latent_dim)
    self.data_shape = tuple(data_shape)

  @property
  def prior(self):
    """p0(z) = N(0, I) over [latent_dim], as a TFP distribution."""
    return tfd.MultivariateNormalDiag(
        loc=tf.zeros([self.latent_dim]), scale_diag=tf.ones([self.latent_dim]))

  def prior_sample(self, n, seed, temperature=1.0):
    """z ~ N(0, T^2 I), stateless: the same seed gives the same z.

    Inside a replica, these are the replica's rows of the global batch's
    draw (`rng.batch_normal`).
    """
    return temperature * rng.batch_normal([n, self.latent_dim], seed)

  def neg_log_prior(self, z):
    """-log p0(z) up to a constant: 0.5 ||z||^2, shape [B]."""
    return 0.5 * tf.reduce_sum(tf.square(z), axis=-1)

  @abc.abstractmethod
  def decode(self, z, training=False):
    """x = G(z), differentiable in z."""

  def sample(self, n, seed, temperature=1.0):
    """Base-model samples: returns (z, x)."""
    z = self.prior_sample(n, seed, temperature)
    return z, self.decode(z)

  def build(self, x):
    """Creates variables (and runs any data-dependent init) from a batch."""
    self.per_example_loss(x, tf.constant([0, 0], tf.int32))

  @abc.abstractmethod
  def per_example_loss(self, x, seed, training=True):
    """Returns (loss [B], metrics: dict name -> [B]) for a data batch."""

  def make_optimizer(self, config):
    """The base model's optimizer (Adam at config.learning_rate)."""
    import tf_keras  # pylint: disable=g-import-not-at-top
    return tf_keras.optimizers.Adam(config.learning_rate)

  def train_step(self, x, seed, optimizer, global_batch_size):
    """One update of the base model; safe inside `strategy.run`.

    Returns a dict of scalar metrics (per-replica sums / global batch, so a
    SUM reduction over replicas gives the global mean; `grad_norm` is the
    norm of the global batch's gradient on any number of replicas).
    """
    with tf.GradientTape() as tape:
      loss, metrics = self.per_example_loss(x, seed, training=True)
      scaled = tf.nn.compute_average_loss(loss,
                                          global_batch_size=global_batch_size)
    grads = apply_summed_gradients(optimizer, tape, scaled,
                                   self.trainable_variables)
    out = {'loss': scaled}
    for k, v in metrics.items():
      out[k] = tf.nn.compute_average_loss(v, global_batch_size=global_batch_size)
    out['grad_norm'] = tf.linalg.global_norm(grads) / tf.cast(
        tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
    return out


def apply_summed_gradients(optimizer, tape, loss, variables):
  """Sums the gradients over replicas, applies them; returns the sums.

  The optimizer's own all-reduce, done here instead so the caller sees the
  global batch's gradient (the same on every replica, and on 1 device).
  """
  grads = tape.gradient(loss, variables)
  pairs = optimizer.aggregate_gradients(zip(grads, variables))
  optimizer.apply_gradients(pairs, skip_gradients_aggregation=True)
  return [g for g, _ in pairs]
