"""The built-in pipeline: base -> tilt -> sample -> distill -> eval, each
resumable.

One user of the library (tilt_tf/runtime, tilt_tf/methods, tilt_tf/stages):
`run(config, workdir, stages)` builds the run's generator and method from
its config (runtime/build.py), then runs the stages asked for inside one
RunDir (lock, run.json, TensorBoard).

Layout of a workdir (one checkpoint layout for every run):

  run.json                 identity, preset, the latest invocation's config,
                           what the monitor scores against
  checkpoints/base/        generator + its optimizer + step (pixel EBM: its
                           energy, optimizer and replay buffer)
  checkpoints/tilt/        energy + its optimizer + step + monitor state
  checkpoints/tilt_best/   the energy with the best monitored sample quality
  samples_base.npz         base samples (`samples` or `images`, `latents`)
  samples_tilted.npz       tilted samples, same keys
  samples.json             what the samples were drawn with
  checkpoints/distill/     the latent flow q(z) fitted to the tilted latents
                           (distill_best/: its best held-out likelihood)
  samples_distilled.npz    samples x = G(z), z ~ q (no Langevin chain)
  monitor.json             the §5.3 quality curve
  *.png                    figures; tensorboard/ event files
  metrics.json             quality figures only (reproducible from the seed)
  timings.json             seconds per stage, rates (not reproducible)
"""

import contextlib
import os

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

from tilt_tf import data as data_lib
from tilt_tf import rng
from tilt_tf import toy_metrics
from tilt_tf.errors import UserError
from tilt_tf.runtime import build
from tilt_tf.runtime import energy_scale
from tilt_tf.runtime import loop as loop_lib
from tilt_tf.runtime import run_dir as run_dir_lib
from tilt_tf.runtime import strategy as strategy_lib
from tilt_tf.runtime import tilting
from tilt_tf.runtime import training
from tilt_tf.stages import distill as distill_lib
from tilt_tf.stages import evaluate as evaluate_lib
from tilt_tf.stages import sample as sample_lib

__all__ = ['STAGES', 'Pipeline', 'open_pipeline', 'run', 'load_data']

STAGES = ('base', 'tilt', 'sample', 'distill', 'eval')
# Kept for callers that import them from here.
make_strategy = strategy_lib.make_strategy
worker_workdir = strategy_lib.worker_workdir


def load_data(config):
  """(train, validation, test, monitor reference description).

  Built-in image sets: the train split, its last `ebm.validation` images
  held out of the energy's training for the monitor, the test split for the
  evaluation. Toys: points from the seed (the monitor draws fresh ones). A
  user's array (`config.data_path`): shuffled by the seed, then a tenth for
  the test and `ebm.validation` (at most a fifth) for the monitor.
  """
  cfg = config
  if cfg.get('data_path'):
    from tilt_tf import user_data  # pylint: disable=g-import-not-at-top
    array = user_data.load_array(cfg.data_path)
    array = array[np.random.default_rng(cfg.seed).permutation(len(array))]
    n_test = max(len(array) // 10, 1)
    train, test = array[:-n_test], array[-n_test:]
    train, val = build.split_validation(train, cfg.ebm.validation)
    return train, val, test, (f'{len(val)} examples of --data held out of '
                              'the energy\'s training')
  train = data_lib.load(cfg.dataset, 'train', cfg.data_dir or None,
                        n=cfg.n_train or None, seed=cfg.seed)
  if data_lib.is_toy(cfg.dataset):
    return train, None, None, 'fresh draws of the toy distribution'
  train, val = build.split_validation(train, cfg.ebm.validation)
  return train, val, None, (
      f'the last {len(val)} images of the train split, held out of the '
      'energy\'s training (the base model trained on them)')


class Pipeline:
  """The stages of one run over a RunDir; see the module docstring."""

  def __init__(self, config, run_dir, strategy, arrays):
    self.config, self.run, self.strategy = config, run_dir, strategy
    self.seed = config.seed
    self.full_train, self.train, self.validation, self.test = arrays
    self.data_shape = build.data_shape_of(config)
    tf_keras.utils.set_random_seed(config.seed)
    keep = config.keep_checkpoints
    self.base_stage = None
    with strategy.scope():
      first = None
      if build.uses_base_stage(config):
        first = next(iter(data_lib.make_dataset(
            self.full_train[:config.base.batch_size * 4],
            min(config.base.batch_size, len(self.full_train)),
            seed=config.seed)))
      self.generator = build.make_generator(config, self.data_shape, first)
      if build.uses_base_stage(config):
        opt = self.generator.make_optimizer(config.base)
        opt.build(self.generator.trainable_variables)
        self.base_stage = training.TrainingStage(
            run_dir, 'base', {'generator': self.generator}, opt, keep=keep,
            retry_hint='--set=base.learning_rate=..., in a new --workdir')
      self.method = build.make_method(config, self.generator, self.data_shape)
    self.trainer = self._make_trainer(keep)

  def _make_trainer(self, keep):
    cfg = self.config
    if self.method.stage == 'base':  # Its own model, no monitor.
      return training.MethodTrainer(
          self.run, self.strategy, self.method, cfg.base.steps, keep=keep,
          seed=self.seed, retry_hint='--set=base.learning_rate=...')
    score = tilting.monitor_scorer(
        train=self.train, validation=self.validation,
        data_shape=self.data_shape, seed=self.seed,
        dataset=None if cfg.get('data_path') else cfg.dataset,
        data_dir=cfg.data_dir or None,
        classifier_epochs=cfg.eval.classifier_epochs or None)
    return tilting.TiltTrainer(
        self.run, self.strategy, self.method, cfg, train=self.train,
        score_fn=score, seed=self.seed,
        retry_hint='--set=ebm.learning_rate=...')

  def _loop(self, log_every):
    return loop_lib.LoopSettings.from_config(self.config, log_every)

  # ----------------------------------------------------------------- stages

  def restore_base(self):
    """Loads the trained generator; refuses if the base stage is unfinished."""
    if self.base_stage is None:
      return
    if self.base_stage.restore() is None:
      raise UserError(f'no base checkpoint in {self.run.workdir}; run the '
                      'base stage first (--stage=base or all stages)')
    step = int(self.base_stage.step.numpy())
    if step < self.config.base.steps:
      raise UserError(
          f'the base model in {self.run.workdir} stopped at step {step} of '
          f'{self.config.base.steps}; rerun the base stage to finish it')

  def train_base(self):
    cfg = self.config
    if self.method.stage == 'base':
      self.trainer.fit(self.full_train, cfg.base.batch_size,
                       data_seed=rng.stream(self.seed, rng.BASE_DATA),
                       loop_seed=rng.stream(self.seed, rng.BASE_STEPS),
                       settings=self._loop(cfg.log_every))
      return
    if self.base_stage is None:
      logging.info('base: a pretrained generator; nothing to train')
      return
    stage = self.base_stage
    stage.restore()
    if int(stage.step.numpy()) >= cfg.base.steps:
      logging.info('base: done (%d steps), reusing the checkpoint',
                   int(stage.step.numpy()))
      return
    batch = cfg.base.batch_size
    replicas = self.strategy.num_replicas_in_sync
    if batch % replicas:
      raise UserError(f'the base batch size {batch} does not split evenly '
                      f'over {replicas} replicas; use a multiple of {replicas}')

    def step_fn(x, seed):
      return self.generator.train_step(x, seed, stage.optimizer, batch)

    stage.fit(self.strategy, step_fn, self.full_train, batch,
              total=cfg.base.steps,
              data_seed=rng.stream(self.seed, rng.BASE_DATA),
              loop_seed=rng.stream(self.seed, rng.BASE_STEPS),
              settings=self._loop(cfg.log_every))

  def train_tilt(self):
    if self.method.stage != 'tilt':
      logging.info('tilt: %s has no latent to tilt; nothing to do',
                   self.config.base_name)
      return
    self.restore_base()
    self.trainer.tilt()

  def sample(self):
    self.restore_base()
    which = self.trainer.restore_best()
    cfg = self.config
    toy = not cfg.get('data_path') and data_lib.is_toy(cfg.dataset)
    sample_lib.draw_samples(
        self.run, self.method, cfg.sample,
        num_steps=cfg.ebm.sample_langevin_steps,
        step_size=self.method.sample_step_size, seed=self.seed,
        energy_checkpoint=which,
        reference=self.full_train if toy else None,
        tilt_step=training.checkpoint_step(which))

  def distill(self):
    """A latent flow fitted to the tilted samples' latents (no chain)."""
    if not self.method.has_latent:
      logging.info('distill: %s has no latent to distill; nothing to do',
                   self.config.base_name)
      return
    self.restore_base()
    distill_lib.run_distill(self.run, self.strategy, self.generator,
                            cfg=self.config.distill,
                            sample_cfg=self.config.sample, seed=self.seed,
                            settings=self._loop(self.config.log_every))

  def evaluate(self):
    cfg = self.config
    self.restore_base()
    self.trainer.restore_best()
    tilt = None
    if self.method.has_latent:
      tilt = {'steps': self.trainer.step,
              'best_step': (int(self.trainer.monitor.best_step.numpy())
                            if self.trainer.monitor else -1),
              'monitor': self.trainer.monitor.curve if self.trainer.monitor
                         else []}
      if self.trainer.monitor is not None:
        self.trainer.monitor.resume(self.trainer.step)
        tilt['monitor'] = self.trainer.monitor.curve
      tilt['monitor_best'] = energy_scale.report(self.run.workdir)
      if hasattr(self.method, 'latent_ebm'):
        tilt['energy_scale'] = float(
            self.method.latent_ebm.sampling_scale.numpy())
    dataset = 'user_data' if cfg.get('data_path') else cfg.dataset
    exact = None
    if self.method.has_latent and self.generator.latent_dim == 2:
      exact = lambda n: toy_metrics.exact_tilted_samples(
          self.generator, self.method.energy, n, seed=self.seed)
    return evaluate_lib.evaluate(
        self.run, dataset, self.seed,
        header={'dataset': cfg.dataset or cfg.data_path,
                'base_name': cfg.base_name, 'preset': cfg.preset},
        data_dir=cfg.data_dir or None,
        classifier_epochs=cfg.eval.classifier_epochs or None,
        has_latent=self.method.has_latent, tilt=tilt,
        base_model=self.generator if self.base_stage is not None else None,
        test_data=self.test, exact_tilted=exact, train_data=self.train)

  def write_hparams(self):
    """The run's settings for TensorBoard's HParams dashboard."""
    from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
    flat = {}
    for section in ('base', 'ebm'):
      for k, v in self.config[section].items():
        flat[f'{section}.{k}'] = (v if isinstance(v, (int, float, str, bool))
                                  else str(v))
    flat.update(base_name=self.config.base_name, dataset=self.config.dataset,
                preset=self.config.preset, seed=self.seed)
    with self.run.writer.as_default():
      hp.hparams(flat, trial_id=os.path.basename(
          self.run.workdir.rstrip('/')))


@contextlib.contextmanager
def open_pipeline(config, workdir, strategy=None):
  """The Pipeline of a run, inside its RunDir (lock held until exit)."""
  strategy = strategy or tf.distribute.get_strategy()
  arrays = load_data(config)
  shape = build.data_shape_of(config)
  extra = {'monitor_reference': arrays[3]}
  with run_dir_lib.RunDir(workdir, build.identity(config, shape),
                          config.to_dict(), preset=config.preset,
                          extra=extra) as run_dir:
    full = arrays[0] if arrays[1] is None else np.concatenate(arrays[:2])
    yield Pipeline(config, run_dir, strategy,
                   (full, arrays[0], arrays[1], arrays[2]))


def run(config, workdir, stages=STAGES, strategy=None):
  """Runs the given stages in order; returns metrics if eval ran."""
  tf.config.experimental.enable_op_determinism()
  strategy = strategy or strategy_lib.make_strategy()
  for stage in stages:
    if stage not in STAGES:
      raise UserError(f'unknown stage {stage!r}; choose from '
                      f'{", ".join(STAGES)}')
  mine = strategy_lib.worker_workdir(workdir, strategy)
  if mine != workdir:
    logging.info('multi-worker: this worker writes to %s', mine)
  with open_pipeline(config, mine, strategy) as pipeline:
    pipeline.write_hparams()
    actions = {'base': pipeline.train_base, 'tilt': pipeline.train_tilt,
               'sample': pipeline.sample, 'distill': pipeline.distill,
               'eval': pipeline.evaluate}
    result = None
    for stage in stages:
      logging.info('stage %s', stage)
      result = actions[stage]() or result
    return result
