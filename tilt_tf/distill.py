"""Distillation: a latent model q(z) fitted to the tilted density, sampled
with no Langevin chain.

`distill.model` picks q: 'kde' (default; a Gaussian kernel on each tilted
latent) or 'mixture' (a few Gaussians fitted by EM), both a
tilt_tf/latent_mixture.py `LatentMixture` with one shared covariance
(`fit_mixture`), or 'flow' (`LatentFlow` below, fitted by gradient steps,
`fit_flow`); `fit` and `restore_flow` serve all three.

After tilting, p(z) ∝ p0(z) exp(-E(G(z))) lives in the generator's latent
space (64-d for GLF, 100-d for the VAE). `LatentFlow` is a RealNVP flow there
(TFP bijectors: an affine layer, then `couplings` affine couplings with fixed
random permutations between them), fitted by maximum likelihood on latents
that the tilted Langevin sampler drew (the sample stage's 10,000, or the
API's `Tilted.distill`). Sampling it costs one flow pass and one decode:
x = G(z), z ~ q.

`fit_flow` trains it in a run folder like every other stage
(checkpoints/distill/ resumable, checkpoints/distill_best/ holding the flow
with the lowest negative log-likelihood on held-out latents, progress and
ETA in the log, `distill/*` TensorBoard scalars).
"""

import os
import time

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tilt_tf import latent_mixture
from tilt_tf import rng
from tilt_tf.errors import UserError
from tilt_tf.runtime import checkpoints
from tilt_tf.runtime import loop as loop_lib
from tilt_tf.runtime import training

tfb, tfd = tfp.bijectors, tfp.distributions

__all__ = ['LatentFlow', 'make_model', 'fit', 'fit_flow', 'fit_mixture',
           'restore_flow']


class LatentFlow(tf.Module):
  """q(z): N(0, I) through an affine layer and RealNVP couplings.

  Args:
    latent_dim: size of z.
    couplings: affine coupling layers (each with a 2-layer ReLU net).
    hidden: units of each coupling net's hidden layers.
    seed: seeds the permutations and initial weights (same seed, same flow).
  """

  def __init__(self, latent_dim, couplings=4, hidden=64, *, seed=0,
               name='latent_flow'):
    super().__init__(name=name)
    d = self.latent_dim = int(latent_dim)
    permutations = np.random.default_rng(seed)
    self.loc = tf.Variable(tf.zeros([d]), name='loc')
    self.log_scale = tf.Variable(tf.zeros([d]), name='log_scale')
    self.nets = []
    layers = [tfb.Shift(self.loc), tfb.Scale(log_scale=self.log_scale)]
    masked = d // 2
    for i in range(couplings if d > 1 else 0):
      net = tf_keras.Sequential([
          tf_keras.Input((masked,)),
          tf_keras.layers.Dense(hidden, activation='relu',
                                kernel_initializer=tf_keras.initializers
                                .GlorotUniform(seed=rng.stream(
                                    int(seed), rng.FLOW_INIT, 2 * i))),
          tf_keras.layers.Dense(hidden, activation='relu',
                                kernel_initializer=tf_keras.initializers
                                .GlorotUniform(seed=rng.stream(
                                    int(seed), rng.FLOW_INIT, 2 * i + 1))),
          tf_keras.layers.Dense(2 * (d - masked), kernel_initializer='zeros'),
      ])
      self.nets.append(net)
      layers.append(tfb.Permute(permutations.permutation(d).astype(np.int32)))
      layers.append(tfb.RealNVP(num_masked=masked,
                                shift_and_log_scale_fn=self._coupling(net)))
    # Chain applies the last first: z = loc + scale * couplings(u).
    self.bijector = tfb.Chain(layers)
    self.base = tfd.MultivariateNormalDiag(tf.zeros([d]), tf.ones([d]))

  @staticmethod
  def _coupling(net):
    def fn(x, units):
      del units
      shift, raw = tf.split(net(x), 2, axis=-1)
      return shift, tf.tanh(raw)  # A bounded log scale: stable early on.
    return fn

  @property
  def distribution(self):
    return tfd.TransformedDistribution(self.base, self.bijector)

  def log_prob(self, z):
    return self.distribution.log_prob(tf.identity(z))

  def sample(self, n, seed):
    """z ~ q, stateless: the same seed gives the same latents."""
    u = tf.random.stateless_normal([n, self.latent_dim], seed)
    return self.bijector.forward(u)

  def init_from(self, latents):
    """Starts the affine layer at the latents' mean and std (the couplings
    start as the identity)."""
    latents = np.asarray(latents, np.float32)
    self.loc.assign(latents.mean(0))
    self.log_scale.assign(np.log(latents.std(0) + 1e-3))


def _nll(flow, z):
  return -tf.reduce_mean(flow.log_prob(z)) / flow.latent_dim


class _BestFlow:
  """Action: every `every` steps, the held-out NLL; the best flow goes to
  checkpoints/distill_best/ (its value and step live in the stage's
  checkpoint, so a resumed run goes on judging where it stopped); stops the
  fit after `patience` checks without a better one (0: never)."""

  def __init__(self, run_dir, flow, held_out, *, every, patience=0):
    self.run_dir, self.flow, self.every = run_dir, flow, every
    self.patience = patience
    self.held_out = tf.constant(held_out)
    self.best = tf.Variable(np.inf, dtype=tf.float32, name='best_nll')
    self.best_step = tf.Variable(-1, dtype=tf.int64, name='best_step')
    self.manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(flow=flow), run_dir.path('checkpoints',
                                                     'distill_best'),
        max_to_keep=1)

  def __call__(self, step):
    if step % self.every:
      return None
    nll = float(_nll(self.flow, self.held_out))
    self.run_dir.scalars('distill', step, {'held_out_nll': nll})
    if nll < float(self.best.numpy()):
      self.best.assign(nll)
      self.best_step.assign(step)
      self.manager.save(checkpoint_number=step)
    logging.info('distill step %d: held-out NLL %.4f nats/dim (best %.4f at '
                 'step %d)', step, nll, float(self.best.numpy()),
                 int(self.best_step.numpy()))
    since = (step - int(self.best_step.numpy())) // self.every
    # True: checkpoint and stop; False: checkpoint now, with the state judged.
    return bool(self.patience and since >= self.patience)


def _split_latents(latents, validation, seed):
  """(train, held out): the finite latents shuffled by `seed`, `validation`
  of them (at most a fifth) held out (none: the first 256 of train)."""
  latents = np.asarray(latents, np.float32)
  if not np.all(np.isfinite(latents)):
    latents = latents[np.all(np.isfinite(latents), axis=1)]
  n_val = int(min(validation, len(latents) // 5))
  if len(latents) - n_val < 2:
    raise UserError(f'distill needs at least a few tilted latents; got '
                    f'{len(latents)} (raise --num_samples)')
  latents = latents[np.random.default_rng(seed).permutation(len(latents))]
  return latents[n_val:], latents[:n_val] if n_val else latents[:256]


def fit_flow(run_dir, strategy, flow, latents: np.ndarray, *, cfg,
             seed: int, settings: loop_lib.LoopSettings):
  """Fits `flow` to `latents` by maximum likelihood, resumably.

  Args:
    run_dir: a RunDir (checkpoints/distill/, distill_best/).
    strategy: the tf.distribute strategy.
    flow: a LatentFlow, built in the strategy's scope.
    latents: [N, latent_dim] float32 draws of the tilted density.
    cfg: the `distill` config section (steps, batch_size, learning_rate,
      validation, eval_every).
    seed: the run's seed.
    settings: the training loop's LoopSettings.
  Returns:
    (seconds, steps) of this invocation's training, or None if done.
  """
  train, held_out = _split_latents(latents, cfg.validation, seed)
  with strategy.scope():
    optimizer = tf_keras.optimizers.Adam(cfg.learning_rate)
    optimizer.build(flow.trainable_variables)
  best = _BestFlow(run_dir, flow, held_out, every=cfg.eval_every,
                   patience=cfg.get('patience', 0))
  stage = training.TrainingStage(
      run_dir, 'distill', {'flow': flow, 'best_nll': best.best,
                           'best_step': best.best_step}, optimizer,
      retry_hint='--set=distill.learning_rate=...')
  if stage.restore() is None:
    flow.init_from(train)
  step = int(stage.step.numpy())
  stopped = (cfg.get('patience', 0) and int(best.best_step.numpy()) >= 0 and
             (step - int(best.best_step.numpy())) // cfg.eval_every >=
             cfg.patience)
  if step >= cfg.steps or stopped:
    logging.info('distill: done (%d steps%s), reusing the checkpoint', step,
                 ', stopped early' if step < cfg.steps else '')
    return None
  batch = int(min(cfg.batch_size, len(train)))

  def step_fn(z, step_seed):
    del step_seed
    with tf.GradientTape() as tape:
      loss = tf.nn.compute_average_loss(
          -flow.log_prob(z) / flow.latent_dim, global_batch_size=batch)
    grads = tape.gradient(loss, flow.trainable_variables)
    optimizer.apply_gradients(zip(grads, flow.trainable_variables))
    return {'nll': loss}

  t0 = time.time()
  out = stage.fit(strategy, step_fn, train, batch, total=cfg.steps,
                  data_seed=rng.stream(seed, rng.DISTILL_DATA),
                  loop_seed=rng.stream(seed, rng.DISTILL_STEPS),
                  settings=settings, actions=[best], periods=[cfg.eval_every])
  logging.info('distill: %d steps in %.1fs; best held-out NLL %.4f nats/dim '
               'at step %d', int(stage.step.numpy()), time.time() - t0,
               float(best.best.numpy()), int(best.best_step.numpy()))
  return out


def make_model(latent_dim, cfg, seed):
  """An unfitted q of the kind `cfg.model` names ('flow' if unset)."""
  if cfg.get('model', 'flow') in ('kde', 'mixture'):
    # A kernel density gets one component per latent when it is fitted.
    return latent_mixture.LatentMixture(latent_dim, cfg.get('components', 1))
  return LatentFlow(latent_dim, cfg['couplings'], cfg['hidden'], seed=seed)


def fit(run_dir, strategy, model, latents, *, cfg, seed, settings):
  """Fits `model` (from `make_model`) as its kind is fitted; returns
  (seconds, steps) of this invocation, or None if it was done already."""
  if isinstance(model, latent_mixture.LatentMixture):
    return fit_mixture(run_dir, model, latents, cfg=cfg, seed=seed)
  return fit_flow(run_dir, strategy, model, latents, cfg=cfg, seed=seed,
                  settings=settings)


def _em_mixture(train, cfg, seed):
  """EM fit of `cfg.components` (scikit-learn, tied covariance, k-means
  starts seeded by `seed`): (weights, means, covariance, a log phrase, EM
  iterations)."""
  from sklearn import mixture as sk_mixture  # pylint: disable=g-import-not-at-top
  components = cfg.components
  em = sk_mixture.GaussianMixture(
      min(components, len(train)), covariance_type='tied',
      reg_covar=cfg.reg_covar, max_iter=cfg.em_iterations,
      random_state=seed % 2**32)
  em.fit(train.astype(np.float64))
  weights, means = em.weights_, em.means_
  if len(weights) < components:  # Fewer latents than components.
    pad = components - len(weights)
    weights = np.concatenate([weights, np.zeros(pad)])
    means = np.concatenate([means, np.zeros((pad, means.shape[1]))])
  note = (f'a {components}-component mixture fitted by EM '
          f'({em.n_iter_} iterations{"" if em.converged_ else ", not converged"})')
  return weights, means, em.covariances_, note, int(em.n_iter_)


def _kernel_density(train, cfg):
  """A Gaussian kernel on every latent, the kernels' covariance
  `bandwidth`^2 x the latents' own (+ `reg_covar` on its diagonal)."""
  train = train.astype(np.float64)
  cov = np.atleast_2d(np.cov(train.T)) + cfg.reg_covar * np.eye(train.shape[1])
  note = f'a kernel density (bandwidth {cfg.bandwidth:g})'
  return (np.ones(len(train)), train, cfg.bandwidth**2 * cov, note, 1)


def fit_mixture(run_dir, mixture, latents: np.ndarray, *, cfg, seed: int):
  """Fits `mixture` to `latents`: a kernel density on them
  (`cfg.model` 'kde') or a `cfg.components` mixture by EM ('mixture'; from
  k-means starts seeded by the run's seed: the same latents and seed give
  the same q). It goes to checkpoints/distill_best/ with its held-out NLL in
  the log and TensorBoard. A finished fit there is reused (the stage clears
  it when the latents or settings change). Returns (seconds, EM iterations
  or 1), or None if reused."""
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(flow=mixture),
      run_dir.path('checkpoints', 'distill_best'), max_to_keep=1)
  if manager.latest_checkpoint:
    logging.info('distill: done (%s), reusing the checkpoint',
                 manager.latest_checkpoint)
    return None
  train, held_out = _split_latents(latents, cfg.validation, seed)
  t0 = time.time()
  if cfg.model == 'kde':
    weights, means, cov, note, steps = _kernel_density(train, cfg)
  else:
    weights, means, cov, note, steps = _em_mixture(
        train, cfg, rng.stream(seed, rng.DISTILL_STEPS))
  mixture.assign(weights, means, cov)
  nll = float(_nll(mixture, held_out))
  seconds = time.time() - t0
  run_dir.scalars('distill', steps, {'held_out_nll': nll})
  manager.save(checkpoint_number=steps)
  logging.info('distill: %s on %d latents in %.1fs; held-out NLL %.4f '
               'nats/dim', note, len(train), seconds, nll)
  return seconds, steps


def restore_flow(workdir, latent_dim, cfg, seed):
  """The best distilled q of a run (a LatentFlow or LatentMixture, as its
  checkpoint holds), or None if the run has no distill checkpoint."""
  for folder in ('distill_best', 'distill'):
    latest = tf.train.latest_checkpoint(
        os.path.join(workdir, 'checkpoints', folder))
    if not latest:
      continue
    try:
      shapes = dict(tf.train.list_variables(latest))
    except (tf.errors.OpError, ValueError):
      shapes = {}  # Damaged: restore_readable below moves it aside.
    settings = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    if shapes:  # A mixture restores with the k it was fitted with.
      mixture = any('/means/' in n for n in shapes)
      settings['model'] = 'mixture' if mixture else 'flow'
    model = make_model(latent_dim, settings, seed)
    ckpt = tf.train.Checkpoint(flow=model)
    manager = tf.train.CheckpointManager(
        ckpt, os.path.join(workdir, 'checkpoints', folder), max_to_keep=None)
    if checkpoints.restore_readable(ckpt, manager, folder) is not None:
      return model
  return None
