"""VAE with a DCGAN decoder and a symmetric conv encoder (paper B.1).

Decoder (the TF DCGAN tutorial's generator, with ReLU per DCGAN):
  Dense -> s x s x 4w, BN, ReLU  (s = H / 4: 7 for 28x28, 8 for 32x32)
  ConvT(2w, 5, stride 1), BN, ReLU
  ConvT(w, 5, stride 2), BN, ReLU   -> 2s x 2s
  ConvT(C, 5, stride 2) -> logits   -> H x W, sigmoid gives the image.
Encoder, its mirror: Conv(w, 5, /2), Conv(2w, 5, /2), Conv(4w, 5, /1) with
BN + LeakyReLU, flatten, Dense. w = `width` (64 in the paper preset).

Reconstruction (`recon`): 'bce' sums the Bernoulli cross-entropy over pixels
(MNIST, Fashion-MNIST); 'mse' sums the squared error (CIFAR-10, a Gaussian
with fixed variance 1/2). `decode` returns the decoder's mean, sigmoid(logits).

The auto-encoder pieces are shared with GLF (tilt_tf/generators/glf.py).
"""

import tensorflow as tf
import tf_keras as keras

from tilt_tf import precision as precision_lib
from tilt_tf import rng
from tilt_tf.generators import base

__all__ = ['VAE', 'make', 'make_encoder', 'make_decoder', 'reconstruction']

_KERNEL = 5


def make_decoder(latent_dim, data_shape, width, *, name='decoder', dtype=None):
  """DCGAN decoder z [B, latent_dim] -> logits [B, H, W, C].

  Args:
    latent_dim: input size.
    data_shape: (H, W, C) with H and W divisible by 4.
    width: base channel count w.
    name: model name.
    dtype: the layers' Keras policy (tilt_tf/precision.py); under a mixed
      policy the logits come out in bfloat16 (callers cast them back).

  Returns:
    A built keras.Sequential.
  """
  h, w, c = data_shape
  if h % 4 or w % 4:
    raise ValueError(f'image size must be divisible by 4, got {data_shape}')
  L = keras.layers
  d = {'dtype': dtype}
  model = keras.Sequential([
      L.Dense(h // 4 * w // 4 * 4 * width, use_bias=False, **d),
      L.BatchNormalization(**d), L.ReLU(**d),
      L.Reshape((h // 4, w // 4, 4 * width), **d),
      L.Conv2DTranspose(2 * width, _KERNEL, 1, 'same', use_bias=False, **d),
      L.BatchNormalization(**d), L.ReLU(**d),
      L.Conv2DTranspose(width, _KERNEL, 2, 'same', use_bias=False, **d),
      L.BatchNormalization(**d), L.ReLU(**d),
      L.Conv2DTranspose(c, _KERNEL, 2, 'same', **d),
  ], name=name)
  model.build((None, latent_dim))
  return model


def make_encoder(out_dim, data_shape, width, name='encoder'):
  """Conv encoder x [B, H, W, C] -> [B, out_dim], the decoder's mirror.

  Args:
    out_dim: output size (2 * latent for a VAE's mean and log-variance).
    data_shape: (H, W, C).
    width: base channel count w.
    name: model name.

  Returns:
    A built keras.Sequential.
  """
  L = keras.layers
  model = keras.Sequential([
      L.Rescaling(2.0, offset=-1.0),  # [0, 1] -> [-1, 1].
      L.Conv2D(width, _KERNEL, 2, 'same'), L.LeakyReLU(0.2),
      L.Conv2D(2 * width, _KERNEL, 2, 'same', use_bias=False),
      L.BatchNormalization(), L.LeakyReLU(0.2),
      L.Conv2D(4 * width, _KERNEL, 1, 'same', use_bias=False),
      L.BatchNormalization(), L.LeakyReLU(0.2),
      L.Flatten(),
      L.Dense(out_dim),
  ], name=name)
  model.build((None,) + tuple(data_shape))
  return model


def reconstruction(x, logits, recon):
  """Per-example reconstruction loss, shape [B].

  Args:
    x: data in [0, 1], [B, H, W, C].
    logits: decoder logits, same shape.
    recon: 'bce' (Bernoulli cross-entropy) or 'mse' (squared error of
      sigmoid(logits)), both summed over pixels.

  Returns:
    [B] float32.
  """
  if recon == 'bce':
    per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=x,
                                                        logits=logits)
  elif recon == 'mse':
    per_pixel = tf.square(x - tf.sigmoid(logits))
  else:
    raise ValueError(f"recon must be 'bce' or 'mse', got {recon!r}")
  return tf.reduce_sum(per_pixel, axis=[1, 2, 3])


class VAE(base.Generator):
  """Gaussian-latent VAE over images in [0, 1]."""

  def __init__(self, data_shape, *, latent_dim=100, width=64, recon='bce',
               precision='float32', name='vae'):
    """Builds encoder and decoder.

    Args:
      data_shape: (H, W, C), H and W divisible by 4.
      latent_dim: size of z (paper: 100).
      width: base channel count (paper preset: 64).
      recon: 'bce' or 'mse', see `reconstruction`.
      precision: the decoder's compute precision, 'float32' or 'bf16'
        (tilt_tf/precision.py).
      name: module name.
    """
    super().__init__(latent_dim, data_shape, name=name)
    self.recon = recon
    self.encoder = make_encoder(2 * self.latent_dim, data_shape, width)
    self.decoder = make_decoder(self.latent_dim, data_shape, width,
                                dtype=precision_lib.policy(precision))

  def logits(self, z, training=False):
    """The decoder's logits, float32 [B, H, W, C]."""
    return precision_lib.to_float32(self.decoder(z, training=training))

  def decode(self, z, training=False):
    """Bernoulli mean sigmoid(logits), [B, H, W, C] in [0, 1]."""
    return tf.sigmoid(self.logits(z, training))

  def encode(self, x, training=False):
    """Returns the posterior's (mean, log_var), each [B, latent_dim]."""
    return tf.split(self.encoder(x, training=training), 2, axis=-1)

  def per_example_loss(self, x, seed, training=True):
    """Negative ELBO per example: recon + KL(q(z|x) || N(0, I)).

    Args:
      x: images [B, H, W, C] in [0, 1].
      seed: stateless seed [2] for the reparameterization noise.
      training: batch-norm mode.

    Returns:
      (loss [B], {'recon': [B], 'kl': [B]}).
    """
    mean, log_var = self.encode(x, training)
    eps = rng.batch_normal(tf.shape(mean), seed)
    z = mean + tf.exp(0.5 * log_var) * eps
    rec = reconstruction(x, self.logits(z, training), self.recon)
    kl = 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mean) - 1. - log_var,
                             axis=-1)
    return rec + kl, {'recon': rec, 'kl': kl}


def make(cfg, data_shape, precision='float32'):
  """VAE from config fields latent_dim, width, recon.

  Args:
    cfg: config.base (learning_rate is read by `make_optimizer`).
    data_shape: (H, W, C).
    precision: the decoder's, see `VAE`.

  Returns:
    A VAE.
  """
  return VAE(data_shape, latent_dim=cfg.latent_dim, width=cfg.width,
             recon=cfg.recon, precision=precision)
