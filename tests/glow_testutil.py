"""Helpers for the GLOW generator's tests (tests/glow_test.py)."""

import numpy as np
import tensorflow as tf


def perturb_one_by_one_convs(convs, seed):
  """Moves each 1x1 convolution's LU weights away from their orthogonal init.

  Adds Gaussian noise (0.1 standard deviation) off the diagonal of each
  conv's packed `lower_upper` variable, drawn in order from one `seed`.
  """
  rng = np.random.default_rng(seed)
  for conv in convs:
    lu = conv._bijector.lower_upper  # pylint: disable=protected-access
    off_diag = 1. - np.eye(lu.shape[0], dtype=np.float32)
    lu.assign(lu + 0.1 * off_diag * rng.standard_normal(
        lu.shape).astype(np.float32))


def decode_outputs(gen, z, cotangent, n_encoded):
  """The decode direction of `gen` at latents z, and gradients through it.

  The first `n_encoded` latents are encoded images, the rest prior draws.
  Gradients (with output gradients `cotangent`) through the flow's output y
  for all latents, and through the images for the prior draws (the encoded
  ones sit on the [0, 1] clip, where the gradient jumps under any
  round-off).

  Returns:
    (images, y, gradients): gradients concatenates the ones through y and
    the ones through the prior draws' images.
  """
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(z)
    y = gen.flow.forward(tf.identity(z))
    images_out = gen.decode(z)
    prior_images = images_out[n_encoded:]
  grad_y = tape.gradient(y, z, output_gradients=cotangent)
  grad_x = tape.gradient(prior_images, z,
                         output_gradients=cotangent[n_encoded:])[n_encoded:]
  return images_out, y, tf.concat([grad_y, grad_x], 0)
