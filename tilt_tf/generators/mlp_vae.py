"""A small MLP VAE for 2-D toy data (the DOT setting of the paper's §5.1).

Encoder and decoder are MLPs with 3 hidden layers of 256 units. The decoder
is Gaussian with a learned per-dimension scale; samples are its mean, so the
points the prior puts between modes show up as off-manifold samples, which is
what tilting removes (paper Fig. 5.1).
"""

import math

import tensorflow as tf
import tf_keras as keras

from tilt_tf import rng
from tilt_tf.generators import base

__all__ = ['MLPVAE']


def _mlp(out_dim, hidden, layers, name):
  return keras.Sequential(
      [keras.layers.Dense(hidden, activation='relu') for _ in range(layers)] +
      [keras.layers.Dense(out_dim)], name=name)


class MLPVAE(base.Generator):
  """VAE with MLP encoder/decoder over float32 [B, D] points."""

  def __init__(self, data_shape=(2,), *, latent_dim=2, hidden=256, layers=3,
               beta=1.0, name='mlp_vae'):
    super().__init__(latent_dim, data_shape, name=name)
    self.data_dim = int(data_shape[-1])
    self.beta = float(beta)
    self.encoder = _mlp(2 * latent_dim, hidden, layers, 'encoder')
    self.decoder = _mlp(self.data_dim, hidden, layers, 'decoder')
    self.log_scale = tf.Variable(tf.fill([self.data_dim], -2.0),
                                 name='log_scale')
    self.encoder.build((None, self.data_dim))
    self.decoder.build((None, latent_dim))

  def decode(self, z, training=False):
    return self.decoder(z, training=training)

  def encode(self, x, training=False):
    stats = self.encoder(x, training=training)
    return tf.split(stats, 2, axis=-1)

  def per_example_loss(self, x, seed, training=True):
    mean, log_var = self.encode(x, training)
    eps = rng.batch_normal(tf.shape(mean), seed)
    z = mean + tf.exp(0.5 * log_var) * eps
    x_mean = self.decoder(z, training=training)
    log_scale = self.log_scale
    nll = tf.reduce_sum(
        0.5 * tf.square((x - x_mean) * tf.exp(-log_scale)) + log_scale +
        0.5 * math.log(2 * math.pi), axis=-1)
    kl = 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mean) - 1 - log_var,
                             axis=-1)
    loss = nll + self.beta * kl
    return loss, {'nll': nll, 'kl': kl}
