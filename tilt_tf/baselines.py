"""Table 1's baselines, built on a trained base Generator (issue #7).

The ways to fix a VAE's prior the paper compares tilting with (§4, Table 1),
each an auxiliary model fitted to the first VAE's aggregate posterior
q(z) = E_x q(z|x) over the train split and then used as the VAE's prior:

  * Two-stage VAE (Dai & Wipf 2019): a second VAE over the latent codes,
    u -> z; an MLP VAE (tilt_tf/generators/mlp_vae.py) with a learned
    per-dimension output scale (their gamma), latent size = z's size.
  * VAE + flow: GLF's latent flow (tilt_tf/generators/glf.py: affine
    couplings, TFP RealNVP) fitted by maximum likelihood to the codes.

Sampling: u ~ N(0, I), z = aux.decode(u), x = vae.decode(z). Both auxiliary
models are `Generator`s over vectors, so they share one training loop
(`fit_latent_model`). Low-temperature sampling (z ~ N(0, T^2 I) through any
base) needs no fitting: `temperature_sampler`.

  mean, log_var = baselines.posterior_stats(vae, train_images)
  aux = baselines.make_latent_model('two_stage_vae', vae.latent_dim, cfg)
  info = baselines.fit_latent_model(aux, mean, log_var, cfg, seed=0)
  images = baselines.draw_images(baselines.stacked_sampler(aux, vae), 10000,
                                 batch_size=500, seed=0)
"""

import math
import time

from absl import logging
import numpy as np
import tensorflow as tf

from tilt_tf import data as data_lib
from tilt_tf import figures
from tilt_tf import rng
from tilt_tf.errors import UserError
from tilt_tf.generators import base
from tilt_tf.generators import glf
from tilt_tf.generators import mlp_vae

__all__ = ['LATENT_MODELS', 'LatentFlow', 'make_latent_model',
           'posterior_stats', 'fit_latent_model', 'stacked_sampler',
           'temperature_sampler', 'draw_images']

LATENT_MODELS = ('two_stage_vae', 'flow')


class LatentFlow(base.Generator):
  """A density over vectors: z = flow(u), u ~ N(0, I) (GLF's latent flow).

  As a Generator: `decode(u)` is the flow's forward map, `per_example_loss`
  the negative log-likelihood of a batch of vectors.
  """

  def __init__(self, dim, flow_layers=4, flow_hidden=256, name='latent_flow'):
    super().__init__(dim, (dim,), name=name)
    if dim < 2:
      raise ValueError(f'a coupling flow needs dim >= 2, got {dim}')
    parts = glf.make_latent_flow(dim, flow_layers, flow_hidden)
    self.coupling_nets = parts.coupling_nets  # Tracked here, see glf.py.
    self.loc = parts.loc
    self.log_scale = parts.log_scale
    self.bijector = parts.bijector

  def init_from_data(self, mean, log_var):
    """Starts the final affine layer at the aggregate posterior's moments.

    Args:
      mean, log_var: [N, dim] posterior statistics; the mixture of the
        N(mean_i, exp(log_var_i)) has mean E[mean] and variance
        Var[mean] + E[exp(log_var)] per dimension.
    """
    mean = np.asarray(mean, np.float64)
    var = mean.var(0) + np.exp(np.asarray(log_var, np.float64)).mean(0)
    self.loc.assign(mean.mean(0).astype(np.float32))
    self.log_scale.assign((0.5 * np.log(var + 1e-12)).astype(np.float32))

  def decode(self, z, training=False):
    del training
    return self.bijector.forward(tf.identity(z))

  def per_example_loss(self, x, seed, training=True):
    del seed, training
    nll = glf.flow_nll(self.bijector, x)
    return nll, {'nll': nll}


def make_latent_model(kind, dim, cfg):
  """The auxiliary prior model over [dim] vectors.

  Args:
    kind: 'two_stage_vae' or 'flow'.
    dim: size of the base model's latent z.
    cfg: that kind's ConfigDict (configs/table1.py): hidden/layers for the
      two-stage VAE, flow_layers/flow_hidden for the flow.

  Returns:
    A Generator over vectors of size `dim`.
  """
  if kind == 'two_stage_vae':
    return mlp_vae.MLPVAE(data_shape=(dim,), latent_dim=dim, hidden=cfg.hidden,
                          layers=cfg.layers, name='two_stage_vae')
  if kind == 'flow':
    return LatentFlow(dim, cfg.flow_layers, cfg.flow_hidden)
  raise UserError(f'unknown latent model {kind!r}; choose one of '
                  f'{", ".join(LATENT_MODELS)}')


def posterior_stats(generator, images, batch_size=500):
  """The posterior q(z|x) of every image: (mean, log_var), float32 [N, d].

  A deterministic encoder (returning one tensor) gets log_var = -inf.

  Args:
    generator: a Generator with `encode(x)` (VAE: (mean, log_var)).
    images: uint8 [N, H, W, C] (or float in [0, 1]).
    batch_size: images per forward pass.
  """
  if not hasattr(generator, 'encode'):
    raise UserError(f'{type(generator).__name__} has no encoder; the latent '
                    'baselines need an auto-encoding base model (vae)')
  encode = tf.function(lambda x: generator.encode(x, training=False))
  means, log_vars = [], []
  for s in range(0, len(images), batch_size):
    out = encode(data_lib.to_float(tf.constant(images[s:s + batch_size])))
    if isinstance(out, (tuple, list)):
      mean, log_var = out
    else:
      mean, log_var = out, tf.fill(tf.shape(out), -np.inf)
    means.append(mean.numpy())
    log_vars.append(log_var.numpy())
  return np.concatenate(means), np.concatenate(log_vars)


def fit_latent_model(model, mean, log_var, cfg, *, seed, log_prefix='fit'):
  """Fits `model` to the aggregate posterior by its own `train_step`.

  Each step draws `cfg.batch_size` codes x_i at random (with replacement)
  and z ~ q(z | x_i) = N(mean_i, exp(log_var_i)); everything is a function
  of (seed, step).

  Args:
    model: a Generator over vectors (see make_latent_model).
    mean, log_var: [N, d] from posterior_stats.
    cfg: ConfigDict with steps, batch_size, learning_rate, log_every.
    seed: int.
    log_prefix: names the fit in log lines.

  Returns:
    dict with steps, seconds, and the last logged metrics (floats).
  """
  if isinstance(model, LatentFlow):
    model.init_from_data(mean, log_var)
  mean = tf.constant(mean, tf.float32)
  std = tf.exp(0.5 * tf.constant(log_var, tf.float32))
  n = int(mean.shape[0])
  model.build(mean[:2])
  optimizer = model.make_optimizer(cfg)
  optimizer.build(model.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64)

  def one_step():
    step_seed = tf.random.experimental.stateless_fold_in(
        tf.constant(rng.stream(seed, rng.BASELINE_TRAIN), tf.int32),
        tf.cast(step, tf.int32))
    seeds = tf.random.experimental.stateless_split(step_seed, 3)
    idx = tf.random.stateless_uniform([cfg.batch_size], seeds[0], 0, n,
                                      dtype=tf.int32)
    eps = tf.random.stateless_normal([cfg.batch_size, mean.shape[1]],
                                     seeds[1])
    z = tf.gather(mean, idx) + tf.gather(std, idx) * eps
    metrics = model.train_step(z, seeds[2], optimizer, cfg.batch_size)
    step.assign_add(1)
    return metrics

  @tf.function
  def loop(num):
    """num >= 1 steps; returns the metrics averaged over them."""
    total = one_step()
    for _ in tf.range(num - 1):
      metrics = one_step()
      total = {k: total[k] + metrics[k] for k in total}
    return {k: v / tf.cast(num, v.dtype) for k, v in total.items()}

  return _run_to_steps(loop, step, cfg, log_prefix)


def _run_to_steps(loop, step, cfg, log_prefix):
  """Runs `loop(num)` until `step` reaches cfg.steps, logging every
  cfg.log_every steps; UserError on non-finite metrics. Returns
  fit_latent_model's dict."""
  t0 = time.time()
  metrics = {}
  log_every = max(1, min(cfg.log_every, cfg.steps))
  while int(step.numpy()) < cfg.steps:
    num = min(log_every, cfg.steps - int(step.numpy()))
    metrics = {k: float(v) for k, v in loop(tf.constant(num)).items()}
    if not all(math.isfinite(v) for v in metrics.values()):
      raise UserError(f'{log_prefix}: training diverged at step '
                      f'{int(step.numpy())} ({metrics}); lower its '
                      'learning_rate in configs/table1.py')
    logging.info('%s %d/%d %s | %.1f s', log_prefix, int(step.numpy()),
                 cfg.steps, ' '.join(f'{k}={v:.4g}' for k, v in
                                     sorted(metrics.items())),
                 time.time() - t0)
  return {'steps': int(step.numpy()), 'seconds': round(time.time() - t0, 2),
          'final': {k: round(v, 6) for k, v in metrics.items()}}


def stacked_sampler(aux, generator):
  """(n, seed) -> images: z drawn from the fitted latent density, x = G(z).

  Flow: z = flow(u), u ~ N(0, I). Two-stage VAE: z ~ N(mu(u), diag(s^2)),
  its decoder's Gaussian with the learned output scale s, so that z is a
  draw from the density the second stage fitted (its decoder mean alone
  would drop the spread the model leaves to s).
  """

  def sample(n, seed):
    seeds = tf.random.experimental.stateless_split(seed, 2)
    _, z = aux.sample(n, seeds[0])
    if isinstance(aux, mlp_vae.MLPVAE):
      z += tf.exp(aux.log_scale) * tf.random.stateless_normal(
          tf.shape(z), seeds[1])
    return generator.decode(z)

  return sample


def temperature_sampler(generator, temperature):
  """(n, seed) -> images from z ~ N(0, T^2 I) through the base model."""

  def sample(n, seed):
    return generator.sample(n, seed, temperature)[1]

  return sample


def draw_images(sample_fn, n, batch_size, seed):
  """n images from `sample_fn(m, seed)`, `batch_size` at a time, as uint8.

  Batch i uses the stateless seed rng.BASELINE_BATCH ([seed, 3000 + i]), so
  the result is a function of (seed, n, batch_size).
  """
  fn = tf.function(sample_fn, reduce_retracing=True)
  parts = []
  for i in range(int(math.ceil(n / batch_size))):
    m = min(batch_size, n - i * batch_size)
    x = fn(tf.constant(m),
           tf.constant(rng.stream(seed, rng.BASELINE_BATCH, i), tf.int32))
    parts.append(figures.to_uint8(x.numpy()))
  return np.concatenate(parts)
