"""Energy networks E_theta(x) and the latent EBM that tilts a Generator.

p(z) ∝ p0(z) exp(-E(G(z))); U(z) = E(G(z)) + 0.5 ||z||^2.
Loss per batch (ML gradient, paper eq. 5/7, with energy regularization):
  L = mean E(x_data) - mean E(G(sg(z_K))) + alpha (mean E(x_data)^2 + mean E(G(z_K))^2)
The generator is frozen; only the energy's variables are trained.
"""

import json

import tensorflow as tf
import tf_keras as keras

from tilt_tf import langevin as langevin_lib
from tilt_tf import precision as precision_lib
from tilt_tf import rng

__all__ = ['MLPEnergy', 'ResNetEnergy', 'make_energy', 'contrastive_loss',
           'LatentEBM']


class MLPEnergy(keras.Model):
  """Energy for toy points: D -> hidden x layers -> 1 (the DOT discriminator).

  With `fourier_features` = F > 0 the points first go through a fixed random
  Fourier embedding x -> [sin(xB), cos(xB)], B ~ N(0, fourier_scale^2) of
  shape [D, F] (Tancik et al. 2020). A plain ReLU MLP on 2-D inputs learns
  the fine structure of 25-Gaussians (modes 0.71 apart, std 0.018) far too
  slowly to tilt anything: with fixed base samples as negatives and Adam
  1e-3, its energy on the between-mode samples rose 0.2 above the data's in
  600 steps; with the embedding (F = 256, scale 5) it reached the loss's
  optimum gap (about 6) within 200 steps. B is a non-trainable variable drawn
  from a stateless seed, so it is in the checkpoint and a seed reproduces it.
  """

  def __init__(self, hidden=512, layers=3, *, input_dim=2, fourier_features=0,
               fourier_scale=1.0, seed=0, name='mlp_energy'):
    super().__init__(name=name)
    self.fourier = None
    if fourier_features:
      self.fourier = tf.Variable(
          fourier_scale * tf.random.stateless_normal(
              [input_dim, fourier_features],
              seed=rng.stream(seed, rng.FOURIER_FEATURES)),
          trainable=False, name='fourier_frequencies')
    self.hidden = [keras.layers.Dense(hidden, activation=tf.nn.leaky_relu)
                   for _ in range(layers)]
    self.out = keras.layers.Dense(1)

  def call(self, x, training=False):
    h = x
    if self.fourier is not None:
      proj = tf.matmul(x, self.fourier)
      h = tf.concat([tf.sin(proj), tf.cos(proj)], axis=-1)
    for layer in self.hidden:
      h = layer(h)
    return tf.squeeze(self.out(h), -1)


class _ResBlock(keras.layers.Layer):
  """Pre-activation residual block: x + conv(swish(conv(swish(x))))."""

  def __init__(self, channels, **kwargs):
    super().__init__(**kwargs)
    self.channels = channels

  def build(self, input_shape):
    conv = lambda k: keras.layers.Conv2D(self.channels, k, padding='same',
                                         dtype=self.dtype_policy)
    self.conv1 = conv(3)
    self.conv2 = conv(3)
    self.skip = conv(1) if input_shape[-1] != self.channels else None

  def call(self, x):
    h = self.conv1(tf.nn.swish(x))
    h = self.conv2(tf.nn.swish(h))
    return (self.skip(x) if self.skip is not None else x) + h


class ResNetEnergy(keras.Model):
  """The paper's image energy (B.2): 3 res blocks x 64 ch, 3 x 128 ch,
  global sum pooling, dense -> scalar.

  `stem_stride` sets the resolution of the first stage (1: full, 2: half)
  and `stem_pool` > 1 average-pools the stem's output by that factor on top
  (28x28 with stride 2 and pool 2: stages at 7x7 and 4x4); the second stage
  always runs at half the first one's resolution. On a CPU this is the
  biggest lever on cost (docs/performance.md).

  `dtype`: the Keras policy of the convolutions (tilt_tf/precision.py); the
  pooled features and the output layer are float32 whatever it is.
  """

  def __init__(self, channels=(64, 128), blocks=3, *, stem_stride=1,
               stem_pool=1, dtype=None, name='resnet_energy'):
    super().__init__(name=name)
    # get_config's answer, as JSON (a string is not tracked: nothing joins
    # the checkpoint); the policy by its name.
    self._config_json = json.dumps({
        'channels': list(channels), 'blocks': blocks,
        'stem_stride': stem_stride, 'stem_pool': stem_pool,
        'dtype': getattr(dtype, 'name', dtype), 'name': name})
    self.stem = keras.layers.Conv2D(channels[0], 3, strides=stem_stride,
                                    padding='same', dtype=dtype)
    self.stages = []
    if stem_pool > 1:
      self.stages.append(keras.layers.AveragePooling2D(
          stem_pool, padding='same', dtype=dtype))
    for s, ch in enumerate(channels):
      stage = [_ResBlock(ch, dtype=dtype) for _ in range(blocks)]
      self.stages.append(stage)
      if s + 1 < len(channels):
        self.stages.append(keras.layers.AveragePooling2D(2, padding='same',
                                                         dtype=dtype))
    self.out = keras.layers.Dense(1, dtype='float32')

  def call(self, x, training=False):
    h = self.stem(2.0 * x - 1.0)  # [0, 1] images -> [-1, 1].
    for stage in self.stages:
      if isinstance(stage, list):
        for block in stage:
          h = block(h)
      else:
        h = stage(h)
    h = tf.nn.swish(precision_lib.to_float32(h))
    h = tf.reduce_sum(h, axis=[1, 2])  # Global sum pooling.
    return tf.squeeze(self.out(h), -1)

  def get_config(self):
    """The constructor's arguments (Keras asks when a SavedModel holds the
    energy; its default cannot serialize a mixed-precision policy)."""
    return json.loads(self._config_json)


def make_energy(cfg, data_shape, seed=0, precision='float32'):
  """Energy network from config.ebm and the data shape; built.

  `precision` ('float32' or 'bf16', tilt_tf/precision.py) applies to the
  image ResNet; the toy MLP always computes in float32.
  """
  if len(data_shape) == 1:
    net = MLPEnergy(hidden=cfg.hidden, layers=cfg.layers,
                    input_dim=data_shape[0],
                    fourier_features=cfg.fourier_features,
                    fourier_scale=cfg.fourier_scale, seed=seed)
  else:
    net = ResNetEnergy(channels=tuple(cfg.channels), blocks=cfg.blocks,
                       stem_stride=cfg.stem_stride,
                       stem_pool=cfg.get('stem_pool', 1),
                       dtype=precision_lib.policy(precision))
  net(tf.zeros((1,) + tuple(data_shape)))
  return net


def contrastive_loss(e_data, e_neg, alpha):
  """The one EBM loss, per example: E(x+) - E(x-) + alpha (E(x+)^2 + E(x-)^2)
  (paper eq. 5/7 with energy regularization; the pixel EBM uses it too)."""
  return e_data - e_neg + alpha * (tf.square(e_data) + tf.square(e_neg))


class LatentEBM(tf.Module):
  """E_theta over G's outputs, sampled by Langevin in G's latent space."""

  def __init__(self, generator, energy, alpha=0.1, name='latent_ebm'):
    super().__init__(name=name)
    self.generator = generator
    self.energy = energy
    self.alpha = float(alpha)
    # beta of p0(z) exp(-beta E(G(z))) for sampling (1: the trained model;
    # tilt_tf/runtime/energy_scale.py chooses it on held-out data).
    self.sampling_scale = tf.Variable(1.0, trainable=False,
                                      name='sampling_energy_scale')

  def potential(self, z, energy_scale=None):
    """U(z) = beta E(G(z)) - log p0(z) (+ const), shape [B]; beta =
    `energy_scale`, None: 1 (training chains)."""
    e = self.energy(self.generator.decode(z))
    if energy_scale is not None:
      e = tf.cast(energy_scale, e.dtype) * e
    return e + self.generator.neg_log_prior(z)

  def sample_latents(self, n, seed, step_size, num_steps, *, temperature=1.0,
                     record_every=0, z0=None, energy_scale=None):
    """Langevin chain from z0, by default fresh prior draws z0 ~ p0
    (short-run, non-persistent), on `potential(z, energy_scale)`. Returns
    the `langevin` dict."""
    seed_init, seed_chain = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    if z0 is None:
      z0 = self.generator.prior_sample(n, seed_init, temperature)
    potential = self.potential
    if energy_scale is not None:
      potential = lambda z: self.potential(z, energy_scale)
    return langevin_lib.langevin(potential, z0, seed_chain,
                                 step_size=step_size, num_steps=num_steps,
                                 record_every=record_every)

  def per_example_loss(self, x_data, z_neg):
    """Per-example terms whose batch mean is the loss L above."""
    # G is frozen and the samples are constants of the loss: no backprop
    # through the decoder is needed for the energy's update.
    x_neg = tf.stop_gradient(self.generator.decode(z_neg))
    e_data = self.energy(x_data, training=True)
    e_neg = self.energy(x_neg, training=True)
    return (contrastive_loss(e_data, e_neg, self.alpha),
            {'energy_data': e_data, 'energy_samples': e_neg})
