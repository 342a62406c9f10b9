"""Shared checks for the image generators' tests (VAE, GLF, GLOW)."""

import numpy as np
import tensorflow as tf

__all__ = ['blobs', 'decode_gradients', 'mirrored_train_losses']


def blobs(n, shape):
  """n smooth images in [0, 1]: one Gaussian blob each, per-channel tint."""
  h, w, c = shape
  yy, xx = np.mgrid[0:h, 0:w] / h
  out = []
  for i in range(n):
    cy, cx = 0.25 + 0.5 * (i % 2), 0.25 + 0.5 * (i // 2 % 2)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
    tint = np.linspace(1.0, 0.5, c) if i % 3 else np.linspace(0.5, 1.0, c)
    out.append(blob[..., None] * tint)
  return tf.constant(np.stack(out), tf.float32)


def mirrored_train_losses(make_generator, shape, steps=3):
  """Losses of `steps` train steps of `make_generator()` -> (generator,
  config) under MirroredStrategy over the first 2 logical CPU devices."""
  devices = [d.name for d in tf.config.list_logical_devices('CPU')][:2]
  strategy = tf.distribute.MirroredStrategy(devices)
  with strategy.scope():
    gen, cfg = make_generator()
    opt = gen.make_optimizer(cfg)
    opt.build(gen.trainable_variables)
  data = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(blobs(4, shape)).repeat())

  @tf.function
  def step(x):
    out = strategy.run(gen.train_step, args=(x, tf.constant([0, 1]), opt, 4))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, out['loss'], None)

  it = iter(data)
  return [float(step(next(it))) for _ in range(steps)]


def decode_gradients(gen, n):
  """d sum(decode(z)^2) / dz for n prior draws, compiled and eager.

  Langevin needs this gradient; the eager one also shows that no bijector
  cache cuts it. Returns (compiled, eager), each [n, latent_dim].
  """

  def grad(z):
    with tf.GradientTape() as tape:
      tape.watch(z)
      e = tf.reduce_sum(tf.square(gen.decode(z)))
    return tape.gradient(e, z)

  z = gen.prior_sample(n, tf.constant([0, 1]))
  return tf.function(grad)(z), grad(z)
