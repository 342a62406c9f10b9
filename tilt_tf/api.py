"""The public Python API: tilt a generator, sample it, export it.

    import tilt_tf
    gen = tilt_tf.generator_from_keras(decoder)             # z -> images in [0, 1]
    tilted = tilt_tf.tilt(gen, images, workdir='runs/mine', steps=200)
    out = tilted.sample(10_000, seed=0)                     # out['samples'], out['latents']
    tilted.export('models/mine')                            # TF Serving SavedModel

`tilt` trains the latent EBM of the paper (tilt_tf/methods/latent_tilt.py)
with the §5.3 monitor keeping the best energy, in a resumable run folder
(rerunning the same call resumes from its last checkpoint);
`load(workdir, generator)` gives the same `Tilted` back later.
"""

import contextlib
import logging as py_logging
import os
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf
import tf_keras

import configs
from tilt_tf import io_utils
from tilt_tf import precision as precision_lib
from tilt_tf import user_data
from tilt_tf.errors import UserError
from tilt_tf.generators import adapters
from tilt_tf.methods import latent_tilt
from tilt_tf.runtime import build
from tilt_tf.runtime import energy_scale
from tilt_tf.runtime import loop as loop_lib
from tilt_tf.runtime import run_dir as run_dir_lib
from tilt_tf.runtime import strategy as strategy_lib
from tilt_tf.runtime import tilting

__all__ = ['tilt', 'load', 'Tilted', 'tilt_config']


@contextlib.contextmanager
def progress(verbose=None):
  """Shows tilt_tf's progress lines (absl INFO: rate, ETA) to a Python
  caller for the duration of a call.

  Outside `absl.app.run` absl shows only warnings, so a library user would
  see nothing for minutes. verbose=None shows INFO unless the 'absl'
  logger's level is above WARNING (ERROR, CRITICAL); True shows it; False
  shows warnings only. WARNING counts as unset: TensorFlow writes it there
  itself (`tf.saved_model.save` of any tf.Module restores the absl
  verbosity to WARNING, from unset), so a user who saved a model earlier
  in the process would otherwise see nothing.
  """
  logger = py_logging.getLogger('absl')
  before = logger.level
  if verbose is None:
    verbose = True if before <= py_logging.WARNING else None
  if verbose is not None:
    logger.setLevel(py_logging.INFO if verbose else py_logging.WARNING)
  logger.addFilter(_only_ours)
  try:
    yield
  finally:
    logger.setLevel(before)
    logger.removeFilter(_only_ours)


def _only_ours(record):
  """Below WARNING, only tilt_tf's own lines (not TensorFlow's INFO chatter
  about checkpoints and SavedModels)."""
  here = os.sep + 'tilt_tf' + os.sep
  return record.levelno >= py_logging.WARNING or here in record.pathname


def choose_preset(preset):
  """`preset`, or as the CLI picks it: 'paper' with a GPU, 'small' without
  (said once in the log)."""
  if preset:
    return configs.choose_preset(preset, False)[0]
  gpu = bool(tf.config.list_physical_devices('GPU'))
  warning = strategy_lib.gpu_warning()
  if warning:
    logging.warning('%s', warning)
  preset, source = configs.choose_preset(None, gpu)
  logging.info('%s', configs.preset_announcement('generator', preset, source)
               .replace('--preset=', 'preset='))
  return preset


def tilt_config(preset=None, **ebm):
  """The settings `tilt` uses: configs/generator.py's preset (default: as
  `choose_preset`), with `ebm` fields overridden (e.g. step_size=0.3,
  langevin_steps=20, steps=400)."""
  config = configs.get_config('generator', None, choose_preset(preset))
  for k, v in ebm.items():
    if k not in config.ebm:
      raise UserError(f'unknown EBM setting {k!r}; choose from '
                      f'{", ".join(sorted(config.ebm.keys()))}')
    if isinstance(v, list):
      v = tuple(v)
    configs.check_bounds(f'ebm.{k}', v, k)  # As the command line checks.
    config.ebm[k] = v
  return config


class Tilted:
  """A generator tilted by a trained energy: sample it, export it."""

  def __init__(self, generator, method, config, workdir: str,
               energy_checkpoint: str, *, flow=None):
    self.generator = generator
    self.method = method
    self.config = config
    self.workdir = workdir
    self.energy_checkpoint = energy_checkpoint
    self.flow = flow  # The distilled LatentFlow, once `distill` ran.
    self._sample = method.compiled_sample

  def distill(self, num_latents=None, seed=0, verbose=None, **settings):
    """Fits a latent model q(z) to the tilted density (tilt_tf/distill.py)
    on `num_latents` Langevin draws (default: config.sample.num), in the
    run folder (resumable); then `sample(n, method='distilled')` and the
    export's `sample_distilled` need no chain. `settings` override the
    `distill` config section (model, bandwidth, components, ...). Returns
    self.
    """
    from tilt_tf.stages import distill as distill_stage  # pylint: disable=g-import-not-at-top
    cfg = self.config.distill
    for k, v in settings.items():
      if k not in cfg:
        raise UserError(f'unknown distill setting {k!r}; choose from '
                        f'{", ".join(sorted(cfg.keys()))}')
      configs.check_bounds(f'distill.{k}', v, k)
      cfg[k] = v
    n = int(num_latents or self.config.sample.num)
    with progress(verbose):
      latents = self._sample_batches(n, seed, langevin_steps=None,
                                     batch_size=500,
                                     temperature=1.0)['latents']
      run = io_utils.read_run_json(os.path.join(self.workdir, 'run.json'))
      extra = {k: v for k, v in run.items()
               if k not in ('identity', 'config', 'preset')}
      # run.json keeps the flow's settings, for load() and export.
      settings_now = dict(run['config'], distill=cfg.to_dict())
      with run_dir_lib.RunDir(self.workdir, run['identity'], settings_now,
                              preset=run['preset'], extra=extra) as run_dir:
        _, self.flow = distill_stage.fit_q(
            run_dir, tf.distribute.get_strategy(), self.generator.latent_dim,
            latents, cfg=cfg, seed=self.config.seed,
            settings=loop_lib.LoopSettings.from_config(
                self.config, self.config.log_every),
            source={'num_latents': n, 'seed': seed,
                    'energy': self.energy_checkpoint})
    return self

  def monitor_best(self):
    """The §5.3 monitor's best check ({'step', 'score', 'base_score'}: the
    tilted and the base generator's scores on held-out data, lower is
    better; with 'energy_scale' when one was chosen: `energy_scale.report`),
    or None when the run has no monitor curve."""
    return energy_scale.report(self.workdir)

  @property
  def energy(self):
    """The energy network E(x) (a Keras model)."""
    return self.method.energy

  def sample(self, n: int, seed: int = 0, *,
             langevin_steps: Optional[int] = None, batch_size: int = 500,
             temperature: float = 1.0, verbose: Optional[bool] = None,
             method: str = 'langevin', energy_scale: Optional[float] = None):
    """n tilted samples and, from the same starting latents, n base ones.

    Returns a dict of numpy arrays: 'samples' and 'latents' (tilted),
    'base_samples' and 'base_latents' (the generator's own, z ~ prior).
    Batch i is drawn from seed [seed, 1000 + i], as the sample stage does.
    Progress (samples/s, ETA) is logged as `progress(verbose)` says.
    method='distilled': z ~ the distilled flow (after `distill`), no chain;
    returns 'samples' and 'latents' only. energy_scale: beta of
    p0(z) exp(-beta E(G(z))) for this call (default: the run's chosen
    scale, tilt_tf/runtime/energy_scale.py).
    """
    if method == 'distilled':
      if self.flow is None:
        raise UserError('no distilled flow: call tilted.distill() first (or '
                        'run the distill stage)')
      from tilt_tf.stages import distill as distill_stage  # pylint: disable=g-import-not-at-top
      out = distill_stage.draw_distilled(self.generator, self.flow, n, seed,
                                         batch_size=batch_size)
      return {'samples': out['x'], 'latents': out['z']}
    if method != 'langevin':
      raise UserError(f"method must be 'langevin' or 'distilled', got "
                      f'{method!r}')
    if energy_scale is not None:
      configs.check_bounds('ebm.sample_energy_scale', float(energy_scale),
                           'energy_scale')
    with progress(verbose):
      return self._sample_batches(n, seed, langevin_steps=langevin_steps,
                                  batch_size=batch_size,
                                  temperature=temperature,
                                  energy_scale=energy_scale)

  def _sample_batches(self, n: int, seed: int, *,
                      langevin_steps: Optional[int], batch_size: int,
                      temperature: float,
                      energy_scale: Optional[float] = None):
    steps = (self.config.ebm.sample_langevin_steps if langevin_steps is None
             else int(langevin_steps))
    if n < 1:
      raise UserError(f'n must be >= 1, got {n}')
    from tilt_tf.stages import batches  # pylint: disable=g-import-not-at-top
    # Always a tensor (the run's scale, or this call's): one trace of
    # `_sample` whichever the caller picks.
    scale = tf.constant(
        float(self.method.latent_ebm.sampling_scale.numpy())
        if energy_scale is None else float(energy_scale), tf.float32)

    def show(p):
      logging.info('sample: %d/%d tilted samples | %.1f samples/s ETA %s',
                   p.done, p.n, p.rate, loop_lib.fmt_eta(p.eta))

    cat = batches.draw_batches(
        lambda m, s: self._sample(m, s, tf.constant(steps),
                                  temperature=temperature,
                                  energy_scale=scale),
        n, batch_size, seed, keys=('x_tilted', 'z_tilted', 'x_base', 'z_base'),
        log=show, log_seconds=5).arrays
    return {'samples': cat['x_tilted'], 'latents': cat['z_tilted'],
            'base_samples': cat['x_base'], 'base_latents': cat['z_base']}

  def export(self, export_dir, version=None, max_samples=1024):
    """A SavedModel sampler in TF Serving's layout `export_dir/<version>/`
    (signatures serving_default, sample_tilted, sample_base); returns the
    version folder."""
    from tilt_tf.stages import export as export_lib  # pylint: disable=g-import-not-at-top
    return export_lib.export_sampler(
        self.generator, self.method, self.config.ebm, export_dir,
        version=version, max_samples=max_samples,
        info={'workdir': self.workdir,
              'generator': getattr(self.generator, 'description',
                                   self.generator.name),
              'energy_checkpoint': self.energy_checkpoint},
        flow=self.flow)


def tilt(generator, data, workdir: str, *, steps: Optional[int] = None,
         preset: Optional[str] = None, seed: int = 0, config=None,
         fid_dataset: Optional[str] = None, strategy=None,
         precision: Optional[str] = None, verbose: Optional[bool] = None,
         **ebm):
  """Trains a latent EBM that tilts `generator` towards `data`.

  Args:
    generator: a Generator (e.g. from `generator_from_keras`).
    data: the data it should fit: images [N, H, W, C] (uint8, or floats in
      [0, 1]) or vectors [N, D].
    workdir: the run folder (checkpoints, monitor.json, TensorBoard);
      calling again with the same arguments resumes or reuses the run.
    steps: EBM training steps (the maximum: the monitor keeps the best).
    preset: 'paper', 'small' or 'test' (configs/generator.py); default:
      'paper' where TensorFlow sees a GPU, 'small' where it does not.
    seed: the run's seed (stateless: a seed reproduces the run).
    config: a full config (`tilt_config(...)`) instead of preset + ebm.
    fid_dataset: score the monitor by FID in this built-in data set's
      classifier feature space (e.g. 'fashion_mnist'); default: images, the
      Fréchet distance to held-out data in features fitted to the rest
      (tilt_tf/user_features.py); vectors, the energy distance.
    strategy: a tf.distribute strategy (default: the current one).
    precision: the energy's compute precision, 'float32' (default) or
      'bf16' (bfloat16 hardware only; tilt_tf/precision.py).
    verbose: progress lines (rate, ETA) on stderr through Python logging:
      None (default) unless the 'absl' logger's level is ERROR or above,
      True, or False (warnings only); see `progress`.
    **ebm: EBM settings (configs/default.py `ebm`), e.g. step_size=0.3.

  Returns:
    A `Tilted` with the best monitored energy loaded.
  """
  with progress(verbose):
    return _tilt(generator, data, workdir, steps=steps, preset=preset,
                 seed=seed, config=config, fid_dataset=fid_dataset,
                 strategy=strategy, precision=precision, ebm=ebm)


def _tilt(generator, data, workdir, *, steps, preset, seed, config,
          fid_dataset, strategy, precision, ebm):
  if config is None:
    config = tilt_config(preset, **ebm)
  if steps is not None:
    config.ebm.steps = int(steps)
  config.seed = int(seed)
  if precision is not None:
    configs.check_bounds('precision', precision, 'precision')
    config.precision = precision
  precision_lib.policy(config.precision)  # Refuses before anything is written.
  strategy = strategy or tf.distribute.get_strategy()
  array = user_data.check_array(data)
  adapters.check_outputs(generator, array.shape[1:])
  array = array[np.random.default_rng(seed).permutation(len(array))]
  train, validation = build.split_validation(array, config.ebm.validation)
  shape = array.shape[1:]
  score = tilting.monitor_scorer(train=train, validation=validation,
                                 data_shape=shape, seed=seed,
                                 dataset=fid_dataset or None)
  extra = {'monitor_reference': f'{len(validation)} of the {len(array)} '
                                'examples given, held out of the energy\'s '
                                'training'}
  with run_dir_lib.RunDir(workdir, build.identity(config, shape, generator,
                                                len(array)),
                          config.to_dict(), preset=config.preset,
                          extra=extra) as run:
    tf_keras.utils.set_random_seed(seed)  # The energy's initial weights.
    with strategy.scope():
      method = latent_tilt.LatentTilt(generator, config.ebm, shape, seed=seed,
                                      precision=config.precision)
    trainer = tilting.TiltTrainer(run, strategy, method, config, train=train,
                                  score_fn=score, seed=seed,
                                  retry_hint='ebm learning_rate=...')
    which = trainer.tilt(batch_size=min(config.ebm.batch_size, len(train)))
  tilted = Tilted(generator, method, config, workdir, which)
  best = tilted.monitor_best()
  if best:
    logging.info('tilt: kept the energy of step %d: %s %.4g (the base '
                 'generator %.4g; lower is better) on %d held-out examples%s',
                 best['step'], getattr(score, 'name', 'monitor score'),
                 best['score'], best['base_score'], len(validation),
                 '' if 'energy_scale' not in best else
                 f', sampled at energy scale {best["energy_scale"]:g}')
  return tilted


def load(workdir, generator=None):
  """The `Tilted` of a finished run: a `tilt` run (pass its generator) or a
  train-binary run (built-in bases and --generator files rebuild
  themselves)."""
  restored = build.restore(workdir, generator=generator)
  if not restored.method.has_latent:
    raise UserError(f'{workdir} holds a pixel-space EBM: it has no latent '
                    'to sample from a generator')
  from tilt_tf import distill as distill_lib  # pylint: disable=g-import-not-at-top
  flow = distill_lib.restore_flow(workdir, restored.generator.latent_dim,
                                  restored.config.distill,
                                  restored.config.seed)
  return Tilted(restored.generator, restored.method, restored.config,
                workdir, restored.energy_checkpoint, flow=flow)
