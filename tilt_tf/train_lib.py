"""The pipeline: base -> tilt -> sample -> eval, each resumable.

Layout of a workdir (one checkpoint layout for every base):

  run.json                 what this run is (base, dataset, preset) and the
                           config of its latest invocation (what export uses)
  checkpoints/base/        generator + its optimizer + step
  checkpoints/tilt/        energy + its optimizer + step + monitor state
  checkpoints/tilt_best/   the energy with the best monitored sample quality
  samples_base.npz         base samples (`samples` or `images`, `latents`)
  samples_tilted.npz       tilted samples, same keys
                           (--base=pixel_ebm, which has no latent to tilt:
                           both hold its samples, `images` only)
  samples.json             what the samples were drawn with (energy checkpoint,
                           n, Langevin steps and step size): a sample stage
                           with the same plan reuses them instead of redrawing
  sample_parts/            batches drawn so far by an unfinished sample stage
  *.png                    figures; tensorboard/ event files
  metrics.json             quality figures only (reproducible from the seed)
  timings.json             seconds per stage, rates (not reproducible)

Every loop runs `steps_per_loop` steps inside one `tf.function` through
`strategy.run`; losses are scaled by the global batch.

A generator with `tiltable = False` (the pixel-space EBM, tilt_tf/pixel_ebm.py)
is trained by the base stage like any base model; the tilt stage is then a
no-op and the sample stage draws its own samples (`sample_chains`).
"""

import json
import math
import os
import shutil
import time

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

from tilt_tf import data as data_lib
from tilt_tf import ebm as ebm_lib
from tilt_tf import figures
from tilt_tf import io_utils
from tilt_tf import toy_metrics
from tilt_tf.errors import UserError
from tilt_tf.generators import base as generator_base
from tilt_tf.generators import registry

__all__ = ['STAGES', 'Pipeline', 'make_strategy', 'run']

STAGES = ('base', 'tilt', 'sample', 'eval')

# Config fields that define what the checkpoints hold: a workdir whose
# run.json disagrees on any of them belongs to another run.
_IDENTITY_FIELDS = ('base_name', 'dataset', 'seed', 'n_train')
_ARCH_FIELDS = {
    'base': None,  # All of config.base but the ones below.
    'ebm': ('channels', 'blocks', 'stem_stride', 'hidden', 'layers',
            'fourier_features', 'fourier_scale'),
}
_MUTABLE_BASE_FIELDS = ('steps',)
_MAX_DIVERGENCE_RETRIES = 3


def _cluster_size():
  """How many tasks (chief + workers) TF_CONFIG names; 0 if it is unset."""
  raw = os.environ.get('TF_CONFIG', '')
  if not raw.strip():
    return 0
  try:
    cluster = json.loads(raw)['cluster']
    return len(cluster.get('chief', [])) + len(cluster.get('worker', []))
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise UserError(f'TF_CONFIG is not a JSON object with a "cluster" '
                    f'({e!r}): {raw[:200]}') from None


def make_strategy(num_cpu_devices=0):
  """The strategy for this process; call it before anything else runs TF.

  - TF_CONFIG naming more than one task (chief + workers):
    MultiWorkerMirroredStrategy, one replica per worker (or per GPU); see
    `run` for where each worker writes.
  - Local GPUs: MirroredStrategy over them.
  - Else the default strategy on one CPU; num_cpu_devices > 1 splits the CPU
    into that many logical devices and mirrors over them (for testing
    distribution without GPUs).
  """
  if _cluster_size() > 1:
    if num_cpu_devices > 1:
      raise UserError('--num_cpu_devices splits one process\'s CPU; with a '
                      'multi-worker TF_CONFIG each worker is one replica')
    return tf.distribute.MultiWorkerMirroredStrategy()
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    return tf.distribute.MirroredStrategy()
  if num_cpu_devices > 1:
    cpu = tf.config.list_physical_devices('CPU')[0]
    try:
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)
    except RuntimeError:
      pass  # Already initialized; use what exists.
    devices = [d.name for d in tf.config.list_logical_devices('CPU')]
    return tf.distribute.MirroredStrategy(devices[:num_cpu_devices])
  return tf.distribute.get_strategy()


def _fmt_eta(seconds):
  seconds = int(max(seconds, 0))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def _identity(config):
  c = config.to_dict()
  ident = {k: c[k] for k in _IDENTITY_FIELDS}
  ident['base'] = {k: v for k, v in c['base'].items()
                   if k not in _MUTABLE_BASE_FIELDS}
  ident['ebm'] = {k: c['ebm'][k] for k in _ARCH_FIELDS['ebm']}
  return io_utils.jsonable(ident)


class Pipeline:
  """Owns the models, optimizers, checkpoints and the stages of one run."""

  def __init__(self, config, workdir, strategy=None):
    self.config = config
    self.workdir = workdir
    self.strategy = strategy or make_strategy()
    self.dataset = config.dataset
    self.is_toy = data_lib.is_toy(config.dataset)
    self.data_shape = data_lib.data_shape(config.dataset)
    self.timings = io_utils.read_json(self._path('timings.json'), {})
    stored_run = self._check_identity()
    tf_keras.utils.set_random_seed(config.seed)
    self.seed = config.seed
    self.train_array = data_lib.load(
        config.dataset, 'train', config.data_dir or None,
        n=config.n_train or None, seed=config.seed)
    # Only once the inputs are known to be good. Same identity, other
    # settings (e.g. --set=ebm.step_size=0.3 for the later stages): the
    # config recorded is this invocation's, which the export then uses.
    run_record = {'identity': _identity(config), 'preset': config.preset,
                  'config': io_utils.jsonable(config.to_dict())}
    io_utils.hold_lock(workdir)  # Before this run's first write.
    if stored_run != run_record:
      io_utils.write_json(self._path('run.json'), run_record)
    # Temporary files of a run killed mid-write (nothing reads them).
    io_utils.remove_temp_files(workdir, *(
        self._path('checkpoints', d) for d in ('base', 'tilt', 'tilt_best')))

    with self.strategy.scope():
      self.generator = registry.make_generator(config.base_name, config.base,
                                               self.data_shape)
      first = next(iter(data_lib.make_dataset(
          self.train_array[:config.base.batch_size * 4],
          min(config.base.batch_size, len(self.train_array)),
          seed=config.seed)))
      self.generator.build(first)
      self.tiltable = getattr(self.generator, 'tiltable', True)
      self.base_opt = self.generator.make_optimizer(config.base)
      self.base_opt.build(self.generator.trainable_variables)
      self.base_step = tf.Variable(0, dtype=tf.int64, name='base_step')
      # Wall seconds spent in each stage over all invocations (a resumed
      # run reports its whole cost, up to the last checkpoint before a kill).
      self.base_seconds = tf.Variable(0.0, dtype=tf.float64)
      self.tilt_seconds = tf.Variable(0.0, dtype=tf.float64)
      self.energy = ebm_lib.make_energy(config.ebm, self.data_shape,
                                         seed=config.seed)
      self.ebm_opt = tf_keras.optimizers.Adam(config.ebm.learning_rate,
                                              beta_1=config.ebm.beta_1)
      self.ebm_opt.build(self.energy.trainable_variables)
      self.tilt_step = tf.Variable(0, dtype=tf.int64, name='tilt_step')
      self.best_score = tf.Variable(math.inf, dtype=tf.float64,
                                    name='best_score')
      self.best_step = tf.Variable(-1, dtype=tf.int64, name='best_step')
      self.checks_since_best = tf.Variable(0, dtype=tf.int64)
    self.latent_ebm = ebm_lib.LatentEBM(self.generator, self.energy,
                                        alpha=config.ebm.alpha)

    ckpt_dir = self._path('checkpoints')
    keep = config.keep_checkpoints
    self.base_ckpt = tf.train.Checkpoint(
        generator=self.generator, optimizer=self.base_opt, step=self.base_step,
        seconds=self.base_seconds)
    self.base_mgr = tf.train.CheckpointManager(
        self.base_ckpt, os.path.join(ckpt_dir, 'base'), max_to_keep=keep)
    self.tilt_ckpt = tf.train.Checkpoint(
        energy=self.energy, optimizer=self.ebm_opt, step=self.tilt_step,
        seconds=self.tilt_seconds,
        best_score=self.best_score, best_step=self.best_step,
        checks_since_best=self.checks_since_best)
    self.tilt_mgr = tf.train.CheckpointManager(
        self.tilt_ckpt, os.path.join(ckpt_dir, 'tilt'), max_to_keep=keep)
    self.best_ckpt = tf.train.Checkpoint(energy=self.energy)
    self.best_mgr = tf.train.CheckpointManager(
        self.best_ckpt, os.path.join(ckpt_dir, 'tilt_best'), max_to_keep=1)
    self.writer = tf.summary.create_file_writer(self._path('tensorboard'))
    self._write_hparams()

  # ---------------------------------------------------------------- helpers

  def _path(self, *parts):
    return os.path.join(self.workdir, *parts)

  def _check_identity(self):
    """Refuses a workdir that holds a run of another base/data/architecture.

    Returns the stored run.json (None if the workdir holds no run yet).
    """
    path = self._path('run.json')
    mine = _identity(self.config)
    theirs = io_utils.read_json(path)
    if theirs is not None and theirs.get('identity') != mine:
      other = theirs.get('identity', {})
      diff = sorted(k for k in set(mine) | set(other)
                    if mine.get(k) != other.get(k))
      raise UserError(
          f'--workdir {self.workdir} holds a run of base='
          f'{other.get("base_name")} dataset={other.get("dataset")} that '
          f'differs in {", ".join(diff)}; pass another --workdir or delete '
          'that folder')
    return theirs

  def _record_time(self, stage, seconds, **extra):
    self.timings[stage] = dict(seconds=round(seconds, 2), **extra)
    io_utils.write_json(self._path('timings.json'), self.timings)

  def _scalars(self, prefix, step, metrics):
    with self.writer.as_default(step=step):
      for k, v in metrics.items():
        tf.summary.scalar(f'{prefix}/{k}', v)

  def _check_batch(self, global_batch, stage):
    """Equal local batches: what `rng.batch_normal` assumes."""
    replicas = self.strategy.num_replicas_in_sync
    if global_batch % replicas:
      raise UserError(
          f'the {stage} batch size {global_batch} does not split evenly over '
          f'{replicas} replicas; use a multiple of {replicas}')

  def _reduce(self, per_replica):
    return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()}

  def _make_loop(self, step_fn, step_var, seed):
    """A tf.function running n steps of `step_fn(x, seed)` over replicas.

    Every replica gets the same seed, a function of (seed, step); the noise
    drawn from it is a function of the global example index too
    (`rng.batch_normal`), so N replicas compute what one device does.
    """

    def one_step(iterator):
      x = next(iterator)
      step_seed = tf.random.experimental.stateless_fold_in(
          tf.constant([seed, 0], tf.int32), tf.cast(step_var, tf.int32))
      # Replica 0's seed in earlier versions, which folded the replica id in:
      # kept so single-device runs draw the same numbers as before.
      step_seed = tf.random.experimental.stateless_fold_in(step_seed, 0)
      metrics = self._reduce(self.strategy.run(step_fn, args=(x, step_seed)))
      step_var.assign_add(1)
      return metrics

    @tf.function
    def loop(iterator, n):
      """n >= 1 steps; returns the metrics averaged over them."""
      total = one_step(iterator)
      for _ in tf.range(n - 1):
        metrics = one_step(iterator)
        total = {k: total[k] + metrics[k] for k in total}
      return {k: v / tf.cast(n, v.dtype) for k, v in total.items()}

    return loop

  def _drive(self, name, step_var, total, make_iterator, loop, manager,
             log_every, clock, after_loop=None, periods=()):
    """Runs `loop` until step_var == total: logs, summaries, checkpoints.

    `clock` (a checkpointed variable) accumulates the stage's wall seconds
    across invocations. Returns (total seconds, total steps) of the stage.

    On non-finite metrics, rolls back to the last checkpoint, halves the
    learning rate and goes on; gives up after a few tries.
    """
    cfg = self.config
    step = int(step_var.numpy())
    start_step, t0 = step, time.time()
    seconds_before = float(clock.numpy())

    def save():
      clock.assign(seconds_before + time.time() - t0)
      manager.save(checkpoint_number=step)

    iterator = make_iterator(step)
    retries = 0
    periods = tuple(p for p in (log_every, cfg.checkpoint_every) +
                    tuple(periods) if p > 0)
    while step < total:
      n = min(cfg.steps_per_loop, total - step,
              *[p - step % p for p in periods])
      metrics = loop(iterator, tf.constant(n))
      metrics = {k: float(v) for k, v in metrics.items()}
      if not all(math.isfinite(v) for v in metrics.values()):
        retries += 1
        if retries > _MAX_DIVERGENCE_RETRIES:
          raise UserError(
              f'{name} training diverged (non-finite {metrics}) '
              f'{_MAX_DIVERGENCE_RETRIES} times even after lowering the '
              'learning rate; lower it and rerun (' + (
                  '--set=base.learning_rate=..., in a new --workdir'
                  if name == 'base' else '--set=ebm.learning_rate=...') + ')')
        optimizer = self.base_opt if name == 'base' else self.ebm_opt
        # Half the rate in use, not the checkpoint's (restoring it would
        # undo earlier halvings and repeat the same diverging steps).
        lowered = float(optimizer.learning_rate.numpy()) * 0.5
        manager.checkpoint.restore(manager.latest_checkpoint)
        if manager.latest_checkpoint is None:
          step_var.assign(0)
        optimizer.learning_rate.assign(lowered)
        logging.warning('%s: non-finite metrics at step %d; rolled back to '
                        'step %d, learning rate -> %.3g', name, step + n,
                        int(step_var.numpy()),
                        float(optimizer.learning_rate.numpy()))
        step = int(step_var.numpy())
        iterator = make_iterator(step)
        continue
      step = int(step_var.numpy())
      self._scalars(name, step, metrics)
      if step % log_every == 0 or step == total:
        rate = (step - start_step) / max(time.time() - t0, 1e-9)
        shown = ' '.join(f'{k}={v:.4g}' for k, v in sorted(metrics.items()))
        logging.info('%s %d/%d %s | %.2f steps/s ETA %s', name, step, total,
                     shown, rate, _fmt_eta((total - step) / max(rate, 1e-9)))
      # after_loop -> None (nothing to keep), False (checkpoint) or True
      # (checkpoint and stop): a monitor check is always checkpointed, so
      # its state and the weights it judged resume together.
      verdict = after_loop(step) if after_loop is not None else None
      if (verdict is not None or step % cfg.checkpoint_every == 0 or
          step == total):
        save()
      if verdict:
        logging.info('%s: stopping early at step %d', name, step)
        break
    self.writer.flush()
    return seconds_before + time.time() - t0, step

  # ----------------------------------------------------------------- stages

  def restore_base(self):
    """Loads the trained generator; refuses if the base stage is unfinished."""
    latest = self.base_mgr.latest_checkpoint
    if latest is None:
      raise UserError(f'no base checkpoint in {self.workdir}; run the base '
                      'stage first (--stage=base or all stages)')
    self.base_ckpt.restore(latest).expect_partial()
    if int(self.base_step.numpy()) < self.config.base.steps:
      raise UserError(
          f'the base model in {self.workdir} stopped at step '
          f'{int(self.base_step.numpy())} of {self.config.base.steps}; rerun '
          'the base stage to finish it')

  def train_base(self):
    cfg = self.config.base
    self.base_mgr.restore_or_initialize()
    if int(self.base_step.numpy()) >= cfg.steps:
      logging.info('base: done (%d steps), reusing the checkpoint',
                   int(self.base_step.numpy()))
      return
    global_batch = cfg.batch_size
    self._check_batch(global_batch, 'base')

    def step_fn(x, seed):
      return self.generator.train_step(x, seed, self.base_opt, global_batch)

    def make_iterator(step):
      ds = data_lib.make_dataset(self.train_array, global_batch,
                                 seed=self.seed, start_step=step)
      return iter(self.strategy.experimental_distribute_dataset(ds))

    loop = self._make_loop(step_fn, self.base_step, self.seed + 1)
    seconds, steps = self._drive('base', self.base_step, cfg.steps,
                                 make_iterator, loop, self.base_mgr,
                                 log_every=self.config.log_every,
                                 clock=self.base_seconds,
                                 after_loop=(None if self.tiltable
                                             else self._buffer_summary))
    self._record_time('base', seconds, steps=steps,
                      steps_per_s=round(steps / max(seconds, 1e-9), 3))

  def _buffer_summary(self, step):
    """Pixel EBM: its replay buffer as a picture at each log step."""
    if step % self.config.log_every == 0 or step == self.config.base.steps:
      filled = int(self.generator.buffer_filled.numpy())
      n = min(self.config.sample.grid, filled)
      if n:
        png = figures.grid_png([self.generator.buffer[filled - n:filled]])
        with self.writer.as_default(step=step):
          tf.summary.image('base/replay_buffer', tf.io.decode_png(png)[None])
    return None  # Nothing to checkpoint beyond the usual.

  def _sample_fn(self):
    """Compiled sampler: (n, seed, langevin_steps) -> dict with base and
    tilted latents/data; both start from the same z0.

    Without a latent (pixel EBM): its chains started in the replay buffer;
    'x_base' and 'x_tilted' are the same samples, the 'z_*' their starts."""
    if not self.tiltable:

      @tf.function(reduce_retracing=True)
      def sample_chains(n, seed, num_steps, record_every=0):
        out = self.generator.sample_chains(n, seed, num_steps, record_every)
        result = {'z_base': out['start'], 'x_base': out['x'],
                  'z_tilted': out['start'], 'x_tilted': out['x'],
                  'grad_norm': out['grad_norm']}
        if record_every:
          result['trajectory'] = out['trajectory']
        return result

      return sample_chains

    @tf.function(reduce_retracing=True)
    def sample(n, seed, num_steps, record_every=0):
      seed_init, _ = tf.unstack(
          tf.random.experimental.stateless_split(seed, 2))
      z0 = self.generator.prior_sample(n, seed_init)
      chain = self.latent_ebm.sample_latents(
          n, seed, self.config.ebm.step_size, num_steps,
          record_every=record_every)
      out = {'z_base': z0, 'x_base': self.generator.decode(z0),
             'z_tilted': chain['z'],
             'x_tilted': self.generator.decode(chain['z']),
             'grad_norm': chain['grad_norm']}
      if record_every:
        out['trajectory'] = chain['trajectory']
      return out

    return sample

  def _fid_tools(self):
    """(fid module, extractor, test-split activations), built once."""
    if getattr(self, '_fid', None) is None:
      from tilt_tf import fid  # pylint: disable=g-import-not-at-top
      extractor = fid.get_extractor(
          self.dataset, self.config.data_dir or None,
          classifier_epochs=self.config.eval.classifier_epochs or None)
      real = data_lib.load_images(self.dataset, 'test',
                                  self.config.data_dir or None)
      self._fid = (fid, extractor, fid.reference_activations(extractor, real))
    return self._fid

  def monitor_score(self, samples):
    """Sample quality for the §5.3 monitor (lower is better): energy
    distance to fresh points for toys, FID of a small batch for images.

    Non-finite samples (chains that diverged, e.g. with a large Langevin
    step) score +inf: the check cannot be the best, and training goes on.
    """
    bad = int(np.sum(~np.isfinite(samples).reshape(len(samples), -1).all(1)))
    if bad:
      logging.warning('monitor: %d of %d samples are not finite (diverged '
                      'chains); this check scores inf', bad, len(samples))
      return math.inf
    if self.is_toy:
      return toy_metrics.energy_distance(samples, toy_metrics_fresh(
          self.dataset, self.seed))
    fid, extractor, real_act = self._fid_tools()
    return fid.fid_from_activations(real_act,
                                    fid.activations(samples, extractor))

  def _monitor_summaries(self, step, out):
    """TensorBoard at a monitor check: energy histograms of data vs base
    vs tilted samples, and the tilted samples as a picture."""
    n = int(out['x_tilted'].shape[0])
    data = data_lib.to_float(self.train_array[:n])
    with self.writer.as_default(step=step):
      for name, x in (('data', data), ('base_samples', out['x_base']),
                      ('tilted_samples', out['x_tilted'])):
        tf.summary.histogram(f'energy/{name}', self.energy(x))
      if self.is_toy:
        png = figures.toy_scatter_png([data, out['x_tilted']],
                                      ['data', f'tilted, EBM step {step}'])
      else:
        png = figures.grid_png([out['x_tilted'][:self.config.sample.grid]])
      tf.summary.image('monitor/tilted_samples', tf.io.decode_png(png)[None])

  def _write_hparams(self):
    """The run's settings for TensorBoard's HParams dashboard."""
    from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
    flat = {}
    for section in ('base', 'ebm'):
      for k, v in self.config[section].items():
        flat[f'{section}.{k}'] = v if isinstance(v, (int, float, str, bool)) else str(v)
    flat.update(base_name=self.config.base_name, dataset=self.dataset,
                preset=self.config.preset, seed=self.seed)
    with self.writer.as_default():
      hp.hparams(flat, trial_id=os.path.basename(self.workdir.rstrip('/')))

  def _check_base_decodes(self, n=256):
    """Refuses to tilt a base whose G(z) is not finite at prior draws.

    Langevin in z differentiates E(G(z)): a base that decodes some prior
    latents to inf/NaN (an undertrained flow's forward pass can overflow)
    makes the first EBM steps diverge, which no learning-rate rollback
    fixes. One line instead, before any tilt checkpoint is written.
    """
    z = self.generator.prior_sample(n, tf.constant([self.seed, 11], tf.int32))
    x = self.generator.decode(z)
    bad = int(tf.reduce_sum(tf.cast(tf.logical_not(tf.reduce_all(
        tf.math.is_finite(tf.reshape(x, [n, -1])), axis=1)), tf.int32)))
    if bad:
      raise UserError(
          f'{self.config.base_name} decodes {bad} of {n} prior latents '
          'z ~ N(0, I) to non-finite samples, so Langevin in z cannot run; '
          'the base model needs more training (raise --base_steps, rerun '
          'with --stage=base; its checkpoints are kept)')

  def train_tilt(self):
    cfg = self.config.ebm
    if not self.tiltable:
      logging.info('tilt: %s has no latent to tilt; nothing to do',
                   self.config.base_name)
      return
    self.restore_base()
    self.tilt_mgr.restore_or_initialize()
    stopped = bool(cfg.patience and
                   int(self.checks_since_best.numpy()) >= cfg.patience)
    if int(self.tilt_step.numpy()) >= cfg.steps or stopped:
      logging.info('tilt: done (%d steps%s), reusing the checkpoint',
                   int(self.tilt_step.numpy()),
                   ', stopped by the monitor' if stopped else '')
      return
    global_batch = cfg.batch_size
    self._check_batch(global_batch, 'tilt')
    self._check_base_decodes()
    sampler = self._sample_fn()
    monitor_seed = tf.constant([self.seed, 7], tf.int32)

    def step_fn(x, seed):
      n = tf.shape(x)[0]
      chain = self.latent_ebm.sample_latents(
          n, seed, cfg.step_size, cfg.langevin_steps)
      with tf.GradientTape() as tape:
        loss, metrics = self.latent_ebm.per_example_loss(x, chain['z'])
        scaled = tf.nn.compute_average_loss(loss,
                                            global_batch_size=global_batch)
      grads = generator_base.apply_summed_gradients(
          self.ebm_opt, tape, scaled, self.energy.trainable_variables)
      out = {'loss': scaled}
      for k, v in metrics.items():
        out[k] = tf.nn.compute_average_loss(v, global_batch_size=global_batch)
      replicas = tf.cast(self.strategy.num_replicas_in_sync, tf.float32)
      out['langevin_grad_norm'] = chain['grad_norm'] / replicas
      out['energy_grad_norm'] = tf.linalg.global_norm(grads) / replicas
      return out

    def make_iterator(step):
      ds = data_lib.make_dataset(self.train_array, global_batch,
                                 seed=self.seed + 1000, start_step=step)
      return iter(self.strategy.experimental_distribute_dataset(ds))

    def monitor(step):
      """None if no check is due, else whether to stop (patience)."""
      if cfg.monitor_every <= 0 or (step % cfg.monitor_every and
                                    step != cfg.steps):
        return None
      out = sampler(tf.constant(cfg.monitor_samples), monitor_seed,
                    tf.constant(cfg.sample_langevin_steps))
      score = self.monitor_score(out['x_tilted'].numpy())
      # The same chains' starting points, decoded: the untilted reference.
      base_score = self.monitor_score(out['x_base'].numpy())
      self._monitor_summaries(step, out)
      self._scalars('monitor', step, {'score': score, 'base_score': base_score})
      self.monitor_curve.append({'step': step, 'score': round(score, 6),
                                 'base_score': round(base_score, 6)})
      if score < float(self.best_score.numpy()):
        self.best_score.assign(score)
        self.best_step.assign(step)
        self.checks_since_best.assign(0)
        self.best_mgr.save(checkpoint_number=step)
      else:
        self.checks_since_best.assign_add(1)
      logging.info('tilt monitor step %d: score %.5f (base %.5f; best %.5f '
                   'at step %d)', step, score, base_score,
                   float(self.best_score.numpy()), int(self.best_step.numpy()))
      return bool(cfg.patience and
                  int(self.checks_since_best.numpy()) >= cfg.patience)

    # Checks after the restored step belong to a run killed before its
    # checkpoint; they are redone (same seeds, same scores).
    restored = int(self.tilt_step.numpy())
    self.monitor_curve = [
        m for m in io_utils.read_json(self._path('monitor.json'), [])
        if m['step'] <= restored]
    loop = self._make_loop(step_fn, self.tilt_step, self.seed + 2)

    def after_loop(step):
      verdict = monitor(step)
      if verdict is not None:
        io_utils.write_json(self._path('monitor.json'), self.monitor_curve)
      return verdict

    seconds, steps = self._drive('tilt', self.tilt_step, cfg.steps,
                                 make_iterator, loop, self.tilt_mgr,
                                 log_every=cfg.log_every,
                                 clock=self.tilt_seconds,
                                 after_loop=after_loop,
                                 periods=(cfg.monitor_every,))
    self._record_time('tilt', seconds, steps=steps,
                      steps_per_s=round(steps / max(seconds, 1e-9), 3))

  def restore_tilt(self):
    """Loads the best monitored energy (else the latest)."""
    self.restore_base()
    if not self.tiltable:
      return None  # The base checkpoint is the whole model.
    best = self.best_mgr.latest_checkpoint
    latest = self.tilt_mgr.latest_checkpoint
    if latest is None and best is None:
      raise UserError(f'no tilt checkpoint in {self.workdir}; run the tilt '
                      'stage first')
    if latest is not None:
      self.tilt_ckpt.restore(latest).expect_partial()
    if best is not None:
      self.best_ckpt.restore(best).expect_partial()
    return best or latest

  def sample(self):
    cfg = self.config
    which = self.restore_tilt()
    t0 = time.time()
    sampler = self._sample_fn()
    n, bs = cfg.sample.num, min(cfg.sample.batch_size, cfg.sample.num)
    keys = ('z_base', 'x_base', 'z_tilted', 'x_tilted')
    # Each batch is kept as it is drawn (batch i from seed [seed, 1000 + i]),
    # so a killed sample stage resumes at the batch it was drawing.
    parts_dir = self._path('sample_parts')
    plan = {'energy_checkpoint': which, 'n': n, 'batch_size': bs,
            'langevin_steps': cfg.ebm.sample_langevin_steps,
            'step_size': cfg.ebm.step_size}
    names = [self._path(f'samples_{w}.npz') for w in ('base', 'tilted')]
    if (io_utils.read_json(self._path('samples.json')) == plan and
        all(os.path.exists(p) for p in names)):
      logging.info('sample: reusing the %d + %d samples in %s (drawn with '
                   'this energy and these settings; delete samples.json to '
                   'redraw them)', n, n, self.workdir)
      return
    if io_utils.read_json(os.path.join(parts_dir, 'plan.json')) != plan:
      shutil.rmtree(parts_dir, ignore_errors=True)
      io_utils.write_json(os.path.join(parts_dir, 'plan.json'), plan)
    num_batches = int(math.ceil(n / bs))
    # Each part keeps the seconds it took to draw, so the stage's time
    # covers every invocation: all parts' seconds plus this one's overhead.
    parts, part_seconds, drawn_now = [], 0., 0.
    for i in range(num_batches):
      path = os.path.join(parts_dir, f'part-{i:05d}.npz')
      if not os.path.exists(path):
        m = min(bs, n - i * bs)
        t_part = time.time()
        out = sampler(tf.constant(m), tf.constant([self.seed, 1000 + i]),
                      tf.constant(cfg.ebm.sample_langevin_steps))
        arrays = {k: out[k].numpy() for k in keys}
        dt = time.time() - t_part
        drawn_now += dt
        io_utils.savez(path, seconds=np.float64(dt), **arrays)
        logging.info('sample: batch %d/%d (%.0f s)', i + 1, num_batches,
                     time.time() - t0)
      with np.load(path) as part:
        parts.append({k: part[k] for k in keys})
        if 'seconds' in part.files:  # Parts from before 2026-12 lack it.
          part_seconds += float(part['seconds'])
    cat = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    key = 'samples' if self.is_toy else 'images'
    conv = (lambda x: x) if self.is_toy else figures.to_uint8
    for name in ('base', 'tilted'):
      arrays = {key: conv(cat[f'x_{name}'])}
      if self.tiltable:  # A pixel EBM's chain starts are not latents.
        arrays['latents'] = cat[f'z_{name}']
      io_utils.savez(self._path(f'samples_{name}.npz'), **arrays)
    seconds = part_seconds + (time.time() - t0 - drawn_now)
    self._write_figures(cat, sampler)
    self._record_time('sample', seconds, n=n, energy_checkpoint=which,
                      samples_per_s=round(2 * n / max(seconds, 1e-9), 2))
    # Last: a stage killed before this line redoes its tail from the parts.
    io_utils.write_json(self._path('samples.json'), plan)
    shutil.rmtree(parts_dir)
    logging.info('sample: %d base + %d tilted samples in %.1fs -> %s', n, n,
                 seconds, self.workdir)

  def _write_figures(self, cat, sampler):
    step = int(self.tilt_step.numpy())
    if self.is_toy:
      png = figures.toy_scatter_png(
          [self.train_array[:5000], cat['x_base'], cat['x_tilted']],
          ['data', f'{self.config.base_name} (base)', 'tilted (latent EBM)'])
      figures.write_png(self._path('samples.png'), png)
      traj = sampler(tf.constant(2000), tf.constant([self.seed, 99]),
                     tf.constant(self.config.ebm.sample_langevin_steps),
                     record_every=self.config.sample.chain_every
                    )['trajectory'].numpy()  # [T, n, 2] in latent space.
      frames = np.linspace(0, len(traj) - 1, min(len(traj), 6)).astype(int)
      every = self.config.sample.chain_every
      chain_png = figures.toy_scatter_png(
          [self.generator.decode(traj[t]).numpy() for t in frames],
          [f'Langevin step {t * every}' for t in frames])
      figures.write_png(self._path('langevin_chain.png'), chain_png)
      with self.writer.as_default(step=step):
        tf.summary.image('samples', tf.io.decode_png(png)[None])
        tf.summary.image('samples/langevin_chain',
                         tf.io.decode_png(chain_png)[None])
      return
    g = self.config.sample.grid
    # Base | tilted (a pixel EBM: its samples once).
    panels = ([cat['x_base'][:g], cat['x_tilted'][:g]] if self.tiltable
              else [cat['x_tilted'][:g]])
    figures.write_png(self._path('samples.png'), figures.grid_png(panels))
    every = self.config.sample.chain_every
    out = sampler(tf.constant(8), tf.constant([self.seed, 99]),
                  tf.constant(self.config.ebm.sample_langevin_steps),
                  record_every=every)
    traj = out['trajectory'].numpy()  # [T, 8, latent] (pixel EBM: images)
    decode = (self.generator.decode if self.tiltable
              else tf.convert_to_tensor)
    frames = np.stack([decode(t).numpy() for t in traj], 1)
    chain_png = figures.grid_png([frames.reshape((-1,) + frames.shape[2:])],
                                 cols=traj.shape[0])
    figures.write_png(self._path('langevin_chain.png'), chain_png)
    with self.writer.as_default(step=step):
      tf.summary.image('samples/base_vs_tilted',
                       tf.io.decode_png(figures.grid_png(panels))[None])
      tf.summary.image('samples/langevin_chain',
                       tf.io.decode_png(chain_png)[None])

  def evaluate(self):
    t0 = time.time()
    base = np.load(self._path('samples_base.npz'))
    tilted = np.load(self._path('samples_tilted.npz'))
    metrics = {'dataset': self.dataset, 'base_name': self.config.base_name,
               'preset': self.config.preset}
    if self.is_toy:
      metrics['base'] = toy_metrics.toy_metrics(self.dataset, base['samples'],
                                                self.seed)
      metrics['tilted'] = toy_metrics.toy_metrics(self.dataset,
                                                  tilted['samples'], self.seed)
      ref = data_lib.toy_samples(self.dataset, len(base['samples']),
                                 self.seed + 31337)
      metrics['data'] = toy_metrics.toy_metrics(self.dataset, ref, self.seed)
    else:
      fid, extractor, _ = self._fid_tools()
      for name, arr in (('base', base), ('tilted', tilted)):
        if name == 'tilted' and not self.tiltable:
          metrics[name] = dict(metrics['base'])  # The same samples.
          continue
        metrics[name] = fid.evaluate_images(
            arr['images'], self.dataset, data_dir=self.config.data_dir or None,
            extractor=extractor)
      if hasattr(self.generator, 'test_metrics'):
        # The trained base model on the test split (GLOW: bits/dim).
        self.restore_base()
        test = data_lib.load_images(self.dataset, 'test',
                                    self.config.data_dir or None)
        metrics['base_model'] = {
            k: round(v, 6)
            for k, v in self.generator.test_metrics(test).items()}
    for name, arr in (('base', base), ('tilted', tilted)):
      # A chain that diverged has a non-finite latent; its image was stored
      # (uint8: black) and scored with the others. Counted, not hidden.
      if 'latents' in arr.files:
        z = arr['latents']
        bad = int(np.sum(~np.isfinite(z.reshape(len(z), -1)).all(1)))
        if bad:
          metrics[name]['non_finite_latents'] = bad
          logging.warning(
              'eval: %d of %d %s samples come from diverged chains (non-finite '
              'latents) and are scored as they were stored; a smaller '
              '--set=ebm.step_size avoids this', bad, len(z), name)
    if self.tiltable:
      metrics['tilt'] = {
          'steps': int(self.tilt_step.numpy()),
          'best_step': int(self.best_step.numpy()),
          'monitor': io_utils.read_json(self._path('monitor.json'), []),
      }
    io_utils.write_json(self._path('metrics.json'), metrics)
    self._record_time('eval', time.time() - t0)
    with self.writer.as_default(step=int(self.tilt_step.numpy())):
      for name in ('base', 'tilted', 'base_model'):
        for k, v in metrics.get(name, {}).items():
          if isinstance(v, (int, float)):
            tf.summary.scalar(f'eval_{name}/{k}', v)
    self.writer.flush()
    logging.info('eval: base %s', metrics['base'])
    logging.info('eval: tilted %s', metrics['tilted'])
    return metrics


_FRESH = {}


def toy_metrics_fresh(name, seed):
  """Fresh toy points for the monitor (drawn once per process)."""
  if (name, seed) not in _FRESH:
    _FRESH[(name, seed)] = data_lib.toy_samples(name, 2000, seed + 555)
  return _FRESH[(name, seed)]


def worker_workdir(workdir, strategy):
  """Where this process writes: `workdir` on the chief (and on one machine),
  `<workdir>_worker<i>` on the other workers of a multi-worker strategy.

  Every worker runs every stage and saves its own checkpoints (saving may
  involve collectives, and a resumed worker must restore its own state);
  the replicas hold the same weights, so the chief's folder is the run.
  """
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or strategy.extended.should_checkpoint:
    return workdir
  return f'{workdir.rstrip(os.sep)}_{resolver.task_type}{resolver.task_id}'


def run(config, workdir, stages=STAGES, strategy=None):
  """Runs the given stages in order; returns metrics if eval ran."""
  tf.config.experimental.enable_op_determinism()
  strategy = strategy or make_strategy()
  mine = worker_workdir(workdir, strategy)
  if mine != workdir:
    logging.info('multi-worker: this worker writes to %s', mine)
  pipeline = Pipeline(config, mine, strategy)
  try:
    return _run_stages(pipeline, stages)
  finally:
    io_utils.release_lock(mine)


def _run_stages(pipeline, stages):
  actions = {'base': pipeline.train_base, 'tilt': pipeline.train_tilt,
             'sample': pipeline.sample, 'eval': pipeline.evaluate}
  result = None
  for stage in stages:
    if stage not in actions:
      raise UserError(f'unknown stage {stage!r}; choose from '
                      f'{", ".join(STAGES)}')
    logging.info('stage %s', stage)
    result = actions[stage]() or result
  return result
