""""EBM on data" (Table 1): an energy on pixels, Du & Mordatch (2019).

  ./bazelw run //tilt_tf:train -- --base=pixel_ebm --preset=small
  ./bazelw run //tilt_tf:train -- --base=pixel_ebm       # paper: 20k steps

The baseline the paper compares the latent EBM with (paper B.2: short-run
non-persistent chains did not converge on MNIST/Fashion, so it follows Du &
Mordatch's persistent setting). The energy is the project's ResNet energy
(tilt_tf/ebm.py, paper B.2); negatives come from persistent Langevin chains
started in a replay buffer:

  start: a uniform draw from the buffer, or (probability `reinit_prob`,
         5%, and always while the buffer is empty) uniform noise U[0, 1]^D;
  K = 60 steps of  x <- x + N(0, noise^2);  g = clip(dE/dx, +-grad_clip);
                   x <- clip(x - step_size * g, 0, 1)
         with step_size 10, noise 0.005, grad_clip 0.01 (per pixel);
  loss:  alpha (E(x+)^2 + E(x-)^2) + E(x+) - E(x-), alpha = 1;
  push:  the chains' end states go into the buffer (10,000, first in
         first out), Adam 1e-4 with beta_1 = 0.

These are Du & Mordatch's settings as in their code and its PyTorch port
(rosinality/igebm-pytorch), including their clip of the energy's parameter
gradients (`param_clip` k > 0): each entry to +-(k sqrt(v) + 0.1), v the
bias-corrected running mean of its squared (clipped) gradients with Adam's
beta_2, so one outlier batch cannot throw the weights. Samples: chains
started in the buffer (no noise restarts), run `num_steps` more steps.

It is a `Method` (tilt_tf/methods/base.py), not a Generator: it has no
latent (`has_latent = False`) and is its own model, so the pipeline trains
it in the base stage (`stage = 'base'`: weights, optimizer and replay buffer
in checkpoints/base/), has no tilt stage, and samples_base.npz =
samples_tilted.npz = its samples.
"""

import tensorflow as tf
import tf_keras

from tilt_tf import ebm as ebm_lib
from tilt_tf import langevin as langevin_lib
from tilt_tf import replay as replay_lib
from tilt_tf.errors import UserError
from tilt_tf.methods import base

__all__ = ['PixelEBM', 'clip_to_history', 'make', 'replay_langevin']


def replay_langevin(energy, x0, seed, num_steps, *, step_size=10.0, noise=0.005,
                    grad_clip=0.01, record_every=0):
  """Du & Mordatch's Langevin chain on pixels, one compiled while loop.

  Args:
    energy: images [B, H, W, C] -> energies [B].
    x0: start images in [0, 1].
    seed: int32 [2] stateless seed (step i's noise from fold_in(seed, i)).
    num_steps: chain length (int or scalar int32 tensor).
    step_size: multiplies the clipped gradient.
    noise: standard deviation of the Gaussian noise added each step.
    grad_clip: each pixel's gradient is clipped to [-grad_clip, grad_clip].
    record_every: if k > 0, also return states x_0, x_k, x_2k, ...

  Returns:
    dict: 'x' (final states), 'grad_norm' (mean over steps and chains of the
    unclipped |dE/dx|) and, if recording, 'trajectory' [T, B, H, W, C].
  """

  def step(x, step_seed):
    x = x + noise * tf.random.stateless_normal(tf.shape(x), seed=step_seed)
    x = tf.identity(x)
    with tf.GradientTape() as tape:
      tape.watch(x)
      e = energy(x)
    grad = tape.gradient(e, x)
    x = tf.clip_by_value(
        x - step_size * tf.clip_by_value(grad, -grad_clip, grad_clip), 0., 1.)
    return x, grad

  return langevin_lib.run_chain(step, x0, seed, num_steps,
                                record_every=record_every)


_BETA_2 = 0.999  # Adam's, and the parameter clip's running mean's.


def clip_to_history(grads, grad_sq, steps, k, *, floor=0.1):
  """Clips each gradient entry to +-(k sqrt(v) + floor), then updates v.

  Du & Mordatch's rule: v is the bias-corrected running mean (beta_2) of the
  squared clipped gradients; the first step (steps == 0) is not clipped.

  Args:
    grads: list of gradient tensors.
    grad_sq: list of variables (running means of squared gradients).
    steps: the number of earlier updates (the optimizer's `iterations`).
    k: the bound's multiple of the gradients' root mean square.
    floor: added to every bound.

  Returns:
    The clipped gradients (grad_sq updated).
  """
  steps = tf.cast(steps, tf.float32)
  correction = 1. - tf.pow(_BETA_2, steps)
  out = []
  for g, v in zip(grads, grad_sq):
    bound = tf.where(steps > 0,
                     k * tf.sqrt(v / tf.maximum(correction, 1e-12)) + floor,
                     float('inf'))
    g = tf.clip_by_value(g, -bound, bound)
    v.assign(_BETA_2 * v + (1. - _BETA_2) * tf.square(g))
    out.append(g)
  return out


class PixelEBM(base.Method):
  """ResNet energy on pixels + persistent replay buffer (see module doc)."""

  stage = 'base'  # Its own model: trained where a base would be.
  has_latent = False
  single_device = True  # The replay buffer is not mirrored.

  @classmethod
  def from_config(cls, cfg, data_shape):
    return make(cfg, data_shape)

  def __init__(self, data_shape, *, channels=(64, 128), blocks=3, stem_stride=1,
               buffer_size=10_000, reinit_prob=0.05, langevin_steps=60,
               step_size=10.0, noise=0.005, grad_clip=0.01, alpha=1.0,
               beta_1=0.0, learning_rate=1e-4, param_clip=0.0,
               name='pixel_ebm'):
    """Builds the energy and an empty replay buffer.

    Args:
      data_shape: (H, W, C).
      channels, blocks, stem_stride: the ResNet energy (tilt_tf/ebm.py).
      buffer_size: replay buffer capacity (images).
      reinit_prob: probability that a training chain starts from noise.
      langevin_steps: chain length per training step.
      step_size, noise, grad_clip: the chain, see `replay_langevin`.
      alpha: energy regularization weight.
      beta_1: Adam's first-moment decay (Du & Mordatch: 0).
      learning_rate: Adam's learning rate.
      param_clip: k of the parameter-gradient clip (module doc); 0: none.
      name: module name.
    """
    super().__init__(name=name)
    self.data_shape = tuple(data_shape)
    self._energy = ebm_lib.ResNetEnergy(channels=tuple(channels),
                                        blocks=blocks, stem_stride=stem_stride)
    self._energy(tf.zeros((1,) + tuple(data_shape)))
    self.learning_rate = float(learning_rate)
    self.buffer_size = int(buffer_size)
    self.reinit_prob = float(reinit_prob)
    self.langevin_steps = int(langevin_steps)
    self.step_size = float(step_size)
    self.sample_step_size = self.step_size  # Sampling runs the same chain.
    self.noise = float(noise)
    self.grad_clip = float(grad_clip)
    self.alpha = float(alpha)
    self.beta_1 = float(beta_1)
    self.param_clip = float(param_clip)
    if self.param_clip > 0:  # Checkpointed with the model.
      self.grad_sq = [tf.Variable(tf.zeros_like(v), trainable=False)
                      for v in self._energy.trainable_variables]
    self.replay = replay_lib.ReplayBuffer(self.buffer_size, data_shape,
                                          owner='--base=pixel_ebm')
    # The checkpoint keys of runs from before the buffer was its own module.
    self.buffer = self.replay.states
    self.buffer_filled = self.replay.filled
    self.buffer_next = self.replay.next

  # ------------------------------------------------------------ buffer

  def _noise(self, n, seed):
    return tf.random.stateless_uniform(
        tf.concat([[n], tf.constant(self.data_shape, tf.int32)], 0), seed=seed)

  def draw_starts(self, n, seed, reinit_prob):
    """n chain starts: buffer entries, or U[0, 1] noise w.p. reinit_prob."""
    return self.replay.draw(n, seed, self._noise, reinit_prob)

  def push(self, x):
    """Writes x [n, H, W, C] over the oldest buffer entries."""
    self.replay.push(x)

  def chain(self, x0, seed, num_steps, record_every=0):
    return replay_langevin(self._energy, x0, seed, num_steps,
                           step_size=self.step_size, noise=self.noise,
                           grad_clip=self.grad_clip,
                           record_every=record_every)

  # ----------------------------------------------------- Method interface

  @property
  def energy(self):
    return self._energy

  def checkpoint_items(self):
    return {'model': self}

  def sample_chains(self, n, seed, num_steps, record_every=0):
    """Samples: chains started in the buffer, run num_steps more steps.

    Returns:
      dict with 'start', 'x' [n, H, W, C], 'grad_norm' and, if recording,
      'trajectory'.
    """
    s_start, s_chain = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    start = self.draw_starts(n, s_start, reinit_prob=0.0)
    out = self.chain(start, s_chain, num_steps, record_every)
    out['start'] = start
    return out

  def sample(self, n, seed, num_steps, record_every=0):
    """Its samples as both 'x_base' and 'x_tilted'; 'z_*': chain starts."""
    out = self.sample_chains(n, seed, num_steps, record_every)
    result = {'z_base': out['start'], 'x_base': out['x'],
              'z_tilted': out['start'], 'x_tilted': out['x'],
              'grad_norm': out['grad_norm']}
    if record_every:
      result['trajectory'] = out['trajectory']
    return result

  def make_optimizer(self):
    opt = tf_keras.optimizers.Adam(self.learning_rate, beta_1=self.beta_1,
                                   beta_2=_BETA_2)
    opt.build(self._energy.trainable_variables)
    return opt

  def after_train_step(self, run_dir, step, grid=64):
    """Its replay buffer as a picture (TensorBoard base/replay_buffer)."""
    from tilt_tf import figures  # pylint: disable=g-import-not-at-top
    latest = self.replay.latest(grid)
    if latest.shape[0]:
      png = figures.grid_png([latest])
      with run_dir.writer.as_default(step=step):
        tf.summary.image('base/replay_buffer', tf.io.decode_png(png)[None])

  def _loss_terms(self, x, x_neg):
    e_data = self._energy(x, training=True)
    e_neg = self._energy(x_neg, training=True)
    return (ebm_lib.contrastive_loss(e_data, e_neg, self.alpha),
            {'energy_data': e_data, 'energy_samples': e_neg})

  def negatives(self, n, seed):
    """Training negatives: chains from `draw_starts` (buffer or noise)."""
    s_start, s_chain = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    start = self.draw_starts(n, s_start, self.reinit_prob)
    return self.chain(start, s_chain, self.langevin_steps)

  def per_example_loss(self, x, seed, training=True):
    """alpha (E(x)^2 + E(x-)^2) + E(x) - E(x-) with fresh negatives x-.

    Returns:
      (loss [B], {'energy_data': [B], 'energy_samples': [B]}).
    """
    del training
    x_neg = tf.stop_gradient(self.negatives(tf.shape(x)[0], seed)['x'])
    return self._loss_terms(x, x_neg)

  def train_step(self, x, seed, optimizer, global_batch_size):
    """Chains (outside the parameter tape), energy update, buffer push."""
    chain = self.negatives(tf.shape(x)[0], seed)
    x_neg = tf.stop_gradient(chain['x'])
    variables = self._energy.trainable_variables
    with tf.GradientTape() as tape:
      loss, metrics = self._loss_terms(x, x_neg)
      scaled = tf.nn.compute_average_loss(loss,
                                          global_batch_size=global_batch_size)
    grads = tape.gradient(scaled, variables)
    out = {'loss': scaled, 'langevin_grad_norm': chain['grad_norm'],
           'grad_norm': tf.linalg.global_norm(grads)}  # Before any clip.
    if self.param_clip > 0:
      grads = clip_to_history(grads, self.grad_sq, optimizer.iterations,
                              self.param_clip)
      out['grad_norm_clipped'] = tf.linalg.global_norm(grads)
    optimizer.apply_gradients(zip(grads, variables))
    self.push(x_neg)
    for k, v in metrics.items():
      out[k] = tf.nn.compute_average_loss(v,
                                          global_batch_size=global_batch_size)
    return out


def make(cfg, data_shape):
  """PixelEBM from config.base (see configs/pixel_ebm.py)."""
  if cfg.buffer_size < cfg.batch_size:
    raise UserError(f'pixel_ebm: buffer_size ({cfg.buffer_size}) must be at '
                    f'least the batch size ({cfg.batch_size})')
  return PixelEBM(data_shape, channels=cfg.channels, blocks=cfg.blocks,
                  stem_stride=cfg.stem_stride, buffer_size=cfg.buffer_size,
                  reinit_prob=cfg.reinit_prob,
                  langevin_steps=cfg.langevin_steps, step_size=cfg.step_size,
                  noise=cfg.noise, grad_clip=cfg.grad_clip, alpha=cfg.alpha,
                  beta_1=cfg.beta_1, learning_rate=cfg.learning_rate,
                  param_clip=cfg.get('param_clip', 0.0))
