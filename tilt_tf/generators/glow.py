"""GLOW (Kingma & Dhariwal 2018) on `tfp.bijectors.Glow`, paper B.1.

The flow maps a latent vector z [H*W*C] ~ N(0, I) to an image in flow space
y [H, W, C]; x = post(y) is the image in [0, 1]. Architecture (paper B.1,
after Nalisnick et al. 2019): for 28x28x1, 2 blocks x 16 steps (ActNorm ->
invertible 1x1 conv -> affine coupling) with a squeeze between them and
half the channels leaving after the first block; for CIFAR-10, 3 blocks x 32
steps, multi-scale. Each coupling's net is TFP's `GlowDefaultNetwork`
(conv 3x3 -> conv 1x1 -> zero-initialized conv 3x3, `width` channels: the
public Glow's 3-layer net, not the paper's highway net); each exit is
`GlowDefaultExitNetwork`. Both are passed explicitly, so the architecture
does not follow TFP's defaults (docs/performance.md, "Library choices").

Latent: the flow's FULL latent, all multi-scale factors (784 dims for
28x28x1), with prior N(0, I): the latent EBM tilts it unchanged, and
decode(z) = post(flow.forward(z)).

Pre-processing (`preprocess`), for data x = k / 255, k in 0..255:
  * dequantization: x_deq = (k + u) / 256, u ~ U[0, 1) (uniform noise),
  * 'logit' (RealNVP): y = logit(a + (1 - 2a) x_deq), a = `logit_alpha`,
  * 'affine' (Glow): y = x_deq - 1/2.
decode inverts both and maps bin centres back to k / 255, clipped to [0, 1].

Loss: the negative log-likelihood of the discrete 8-bit image in nats,
-log p(x_deq) + D log 256 (a bound on -log P(k) by Jensen), where
log p(x_deq) = log N(z; 0, I) + log|det dz/dy| + log|dy/dx_deq|. Its
per-dimension value in bits, `bits_per_dim`, is reported as a metric and
evaluated on the test split (`test_metrics`).

ActNorm uses TFP's data-dependent initialization: its first call in the
inverse direction (x -> z) sets the shift and log-scale from that batch;
`build(x)` does that on a data batch before anything else touches the flow.
Checkpoints hold the initialized flag, so a restored flow is not
re-initialized.

Decoding inverts each invertible 1x1 convolution with one matmul by W^-1
(`MatmulInverseOneByOneConv`) instead of TFP's per-pixel LU solve: the same
map up to float32 round-off, ~2x faster decodes and 1.2-1.5x faster
Langevin steps at batch 64 and 500 (benchmarks/glow_step.py;
docs/performance.md, "GLOW: where a Langevin step's time goes").
"""

import functools

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tilt_tf import rng
from tilt_tf.generators import base

tfb = tfp.bijectors

__all__ = ['Glow', 'make', 'PREPROCESS', 'MatmulInverseOneByOneConv',
           'use_matmul_inverse']

PREPROCESS = ('logit', 'affine')
_LEVELS = 256  # 8-bit data.


def _int32_reshapes(flow):
  """Makes every Reshape's event shapes int32, in place.

  tfb.Glow builds its squeezes (`Expand`) from numpy int64 shapes, and
  `Reshape` then concatenates a dynamic batch shape (int32) with an int64
  event shape: any call whose batch size is unknown while tracing (a
  `tf.function` with `reduce_retracing`, a sampler fed `num_samples`)
  fails with "ConcatV2 ... [int32, int64]". Static batch sizes never
  reach that concat. The shapes are constants, so casting them is exact.
  """
  for module in flow.submodules:
    if isinstance(module, tfb.Reshape):
      for attr in ('_event_shape_in', '_event_shape_out'):
        value = getattr(module, attr)
        if tf.is_tensor(value) and value.dtype == tf.int64:
          setattr(module, attr, tf.cast(value, tf.int32))


class MatmulInverseOneByOneConv(tfb.glow.OneByOneConv):
  """TFP's invertible 1x1 convolution, inverted with one matmul by W^-1.

  W = P L U is stored LU-factored (`lower_upper`, `permutation`). TFP maps
  latent -> image (decode) through `OneByOneConv.inverse`, i.e.
  `tfp.math.lu_solve` with the image as a batch of [C, 1] right-hand
  sides: two `MatrixTriangularSolve`s broadcast over every pixel of the
  batch plus a per-pixel gather of the permutation, whose gradients
  (StridedSliceGrad, ScatterNd, two more solves) are as costly again. Here
  W^-1 is formed once per call from the same factors
  (`tfp.math.lu_matrix_inverse`, one [C, C] solve) and applied to all
  pixels as one [B*H*W, C] x [C, C] matmul: the same map up to float32
  round-off. The data -> latent direction (`forward`: training, encode,
  log-dets) is TFP's, untouched.

  Instances are TFP's own objects with this class swapped in
  (`use_matmul_inverse`), so the variables, their checkpoint paths and
  `isinstance(m, tfb.glow.OneByOneConv)` are unchanged.
  """

  def inverse(self, y):
    lu = self._bijector.lower_upper
    if lu.shape.rank != 2:  # A batch of matrices: TFP's general solve.
      return super().inverse(y)
    with tf.name_scope('matmul_inverse_1x1'):
      w_inv = tfp.math.lu_matrix_inverse(lu, self._bijector.permutation)
      c = lu.shape[-1]
      out = tf.matmul(tf.reshape(y, [-1, c]), w_inv, transpose_b=True)
      return tf.reshape(out, tf.shape(y))


def use_matmul_inverse(flow, enabled=True):
  """Swaps the 1x1 convolutions of a tfb.Glow to (or back from, enabled=
  False) `MatmulInverseOneByOneConv`, in place; returns how many."""
  cls = MatmulInverseOneByOneConv if enabled else tfb.glow.OneByOneConv
  convs = [m for m in flow.submodules
           if isinstance(m, tfb.glow.OneByOneConv)]
  for conv in convs:
    conv.__class__ = cls
  return len(convs)


class ClampedCouplingNetwork(tf_keras.Sequential):
  """TFP's GlowDefaultNetwork with the scale logits soft-clamped.

  tfb.Glow turns the net's output h (2c channels) into the coupling
  y = x * sigmoid(h[:c] + 2) + h[c:] in the data -> latent direction, so
  decoding (latent -> data) divides by sigmoid(h[:c] + 2): for latents
  away from the training codes h[:c] can be very negative and the division
  explodes from coupling to coupling (an undertrained `small` GLOW decoded
  a quarter of N(0, I) draws to inf/NaN). With h[:c] -> clamp * tanh(h[:c] /
  clamp) the scale stays in (sigmoid(2 - clamp), sigmoid(2 + clamp)), so a
  coupling amplifies a decode by at most 1 / sigmoid(2 - clamp) (8.4x for
  clamp = 4). At initialization (zero last conv) it equals TFP's network.
  """

  def __init__(self, input_shape, num_hidden=400, kernel_shape=3, clamp=4.0):
    c = input_shape[-1]
    clamp = float(clamp)

    def soft_clamp(h):
      return tf.concat([clamp * tf.tanh(h[..., :c] / clamp), h[..., c:]],
                       axis=-1)

    zeros = tf_keras.initializers.zeros()
    super().__init__([
        tf_keras.layers.Input(shape=input_shape),
        tf_keras.layers.Conv2D(
            num_hidden, kernel_shape, padding='same', activation='relu',
            kernel_initializer=tf_keras.initializers.he_normal()),
        tf_keras.layers.Conv2D(
            num_hidden, 1, padding='same', activation='relu',
            kernel_initializer=tf_keras.initializers.he_normal()),
        tf_keras.layers.Conv2D(2 * c, kernel_shape, padding='same',
                               kernel_initializer=zeros,
                               bias_initializer=zeros),
        tf_keras.layers.Lambda(soft_clamp),
    ])


class Glow(base.Generator):
  """GLOW flow x = post(flow(z)) over images in [0, 1], z ~ N(0, I)."""

  def __init__(self, data_shape, *, num_blocks=2, steps_per_block=16, width=64,
               preprocess='logit', logit_alpha=0.05, seed=0, coupling_clamp=0.0,
               name='glow'):
    """Builds the flow (variables exist; ActNorm waits for `build`).

    Args:
      data_shape: (H, W, C), H and W divisible by 2**num_blocks.
      num_blocks: GLOW blocks (levels); a squeeze before each, half the
        remaining channels leave after each but the last.
      steps_per_block: ActNorm / 1x1 conv / affine coupling steps per block.
      width: hidden channels of each coupling net.
      preprocess: 'logit' or 'affine', see the module doc.
      logit_alpha: a of the logit pre-processing.
      seed: int seed of the 1x1 convolutions' random orthogonal init.
      coupling_clamp: > 0: soft-clamp the couplings' scale logits to
        (-clamp, clamp) (`ClampedCouplingNetwork`); 0: TFP's network.
      name: module name.
    """
    h, w, c = data_shape
    super().__init__(h * w * c, data_shape, name=name)
    if preprocess not in PREPROCESS:
      raise ValueError(f'preprocess must be one of {PREPROCESS}, got '
                       f'{preprocess!r}')
    if h % 2**num_blocks or w % 2**num_blocks:
      raise ValueError(f'image size {data_shape} must be divisible by '
                       f'2**num_blocks = {2**num_blocks}')
    self.preprocess = preprocess
    self.logit_alpha = float(logit_alpha)
    self.num_dims = h * w * c
    self.flow = tfb.Glow(
        output_shape=tuple(data_shape), num_glow_blocks=num_blocks,
        num_steps_per_block=steps_per_block,
        coupling_bijector_fn=(
            functools.partial(ClampedCouplingNetwork, num_hidden=width,
                              clamp=coupling_clamp) if coupling_clamp > 0
            else functools.partial(tfb.GlowDefaultNetwork,
                                   num_hidden=width)),
        exit_bijector_fn=tfb.GlowDefaultExitNetwork,
        seed=seed, name='glow_flow')
    _int32_reshapes(self.flow)
    use_matmul_inverse(self.flow)

  # ------------------------------------------------------ pre-processing

  def dequantize(self, x, seed):
    """x = k/255 in [0, 1] -> x_deq = (k + u)/256, u ~ U[0, 1) (stateless)."""
    u = tf.random.stateless_uniform(tf.shape(x), seed=seed)
    return (tf.round(x * (_LEVELS - 1)) + u) / _LEVELS

  def _to_flow_space(self, x_deq):
    """(y, log|dy/dx_deq| [B]) for x_deq in [0, 1]."""
    if self.preprocess == 'affine':
      return x_deq - 0.5, tf.zeros(tf.shape(x_deq)[:1])
    a = self.logit_alpha
    p = a + (1. - 2. * a) * x_deq
    y = tf.math.log(p) - tf.math.log1p(-p)
    logdet = tf.reduce_sum(np.log(1. - 2. * a) - tf.math.log(p) -
                           tf.math.log1p(-p), axis=[1, 2, 3])
    return y, logdet

  def _from_flow_space(self, y):
    """Inverse of `_to_flow_space`, then bin centres -> k/255, clipped."""
    if self.preprocess == 'affine':
      x_deq = y + 0.5
    else:
      a = self.logit_alpha
      x_deq = (tf.sigmoid(y) - a) / (1. - 2. * a)
    x = (x_deq * _LEVELS - 0.5) / (_LEVELS - 1)
    return tf.clip_by_value(x, 0., 1.)

  # ------------------------------------------------------------ the flow

  def decode(self, z, training=False):
    """Images in [0, 1] from latents z [B, latent_dim] (differentiable)."""
    del training
    # tf.identity: a fresh tensor, so the bijector cache cannot cut the
    # gradient to z (docs/performance.md, "Library choices").
    return self._from_flow_space(self.flow.forward(tf.identity(z)))

  def encode(self, x):
    """z = flow^-1(pre(x)) at the bin centres (no noise), [B, latent_dim]."""
    x_deq = (tf.round(x * (_LEVELS - 1)) + 0.5) / _LEVELS
    y, _ = self._to_flow_space(x_deq)
    return self.flow.inverse(tf.identity(y))

  def log_prob_flow_space(self, y):
    """log p(y) [B] of flow-space images y [B, H, W, C]."""
    y = tf.identity(y)
    z = self.flow.inverse(y)
    ildj = self.flow.inverse_log_det_jacobian(y, event_ndims=3)
    log_pz = -0.5 * tf.reduce_sum(tf.square(z), axis=-1) - (
        0.5 * self.num_dims * np.log(2. * np.pi))
    return log_pz + ildj

  def nll(self, x, seed):
    """Discrete NLL bound in nats [B] of images x [B, H, W, C] in [0, 1]."""
    y, pre_logdet = self._to_flow_space(self.dequantize(x, seed))
    log_px = self.log_prob_flow_space(y) + pre_logdet
    return -log_px + self.num_dims * np.log(_LEVELS)

  def bits_per_dim(self, nll):
    """NLL in nats per image -> bits per dimension."""
    return nll / (self.num_dims * np.log(2.))

  def per_example_loss(self, x, seed, training=True):
    """NLL (nats per image) with fresh dequantization noise.

    Args:
      x: images [B, H, W, C] in [0, 1] (multiples of 1/255).
      seed: stateless seed [2] for the dequantization noise.
      training: unused (no batch norm).

    Returns:
      (loss [B], {'bits_per_dim': [B]}).
    """
    del training
    nll = self.nll(x, seed)
    return nll, {'bits_per_dim': self.bits_per_dim(nll)}

  def build(self, x):
    """Data-dependent ActNorm init from the batch x (inverse direction)."""
    self.per_example_loss(x, tf.constant([0, 0], tf.int32))

  def make_optimizer(self, config):
    return tf_keras.optimizers.Adam(config.learning_rate)

  def test_metrics(self, images, batch_size=500, seed=0):
    """{'test_bits_per_dim': mean over `images`} (uint8 or [0, 1] floats).

    One fixed dequantization draw per batch (seed, batch index), so the
    figure is reproducible.
    """
    nll_fn = tf.function(self.nll, reduce_retracing=True)
    total, n = 0.0, len(images)
    for i, start in enumerate(range(0, n, batch_size)):
      batch = images[start:start + batch_size]
      if batch.dtype == np.uint8:
        batch = batch.astype(np.float32) / 255.
      seed_i = tf.constant(rng.stream(seed, rng.NLL_BATCH, i), tf.int32)
      total += float(tf.reduce_sum(nll_fn(tf.constant(batch, tf.float32),
                                          seed_i)))
    return {'test_bits_per_dim': float(self.bits_per_dim(total / max(n, 1)))}


def make(cfg, data_shape):
  """Glow from config fields num_blocks, steps_per_block, width, preprocess.

  Args:
    cfg: config.base (learning_rate is read by `make_optimizer`).
    data_shape: (H, W, C).

  Returns:
    A Glow.
  """
  return Glow(data_shape, num_blocks=cfg.num_blocks,
              steps_per_block=cfg.steps_per_block, width=cfg.width,
              preprocess=cfg.get('preprocess', 'logit'),
              logit_alpha=cfg.get('logit_alpha', 0.05),
              seed=cfg.get('flow_seed', 0),
              coupling_clamp=cfg.get('coupling_clamp', 0.0))
