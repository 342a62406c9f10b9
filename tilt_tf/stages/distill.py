"""The distill stage: fit a latent model q(z) (a Gaussian mixture, or a
flow: tilt_tf/distill.py) to the tilted latents the sample stage drew, then
draw samples with no Langevin chain.

Reads samples_tilted.npz (its `latents`), fits q into
checkpoints/distill_best/ (a flow trains resumably in checkpoints/distill/
and keeps its best held-out weights there) and writes
samples_distilled.npz (`images` or `samples`, `latents`; batch i from seed
[seed, 1000 + i], as `Tilted.sample(method='distilled')` draws),
samples_distilled.png (base | tilted | distilled) and its time and
samples/s in timings.json.
"""

import os
import shutil
import time
import weakref

from absl import logging
import numpy as np
import tensorflow as tf

from tilt_tf import distill as distill_lib
from tilt_tf import figures
from tilt_tf import io_utils
from tilt_tf.errors import UserError
from tilt_tf.runtime import loop as loop_lib
from tilt_tf.stages import batches

__all__ = ['run_distill', 'draw_distilled', 'make_flow', 'fit_q']


def make_flow(latent_dim, cfg, seed, strategy=None):
  """The run's unfitted q, as `cfg.model` names it (built in the strategy's
  scope)."""
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    return distill_lib.make_model(latent_dim, cfg, seed)


# flow -> {id(generator): compiled draw}: traced once per pair, not per call.
_COMPILED = weakref.WeakKeyDictionary()


def draw_distilled(generator, flow, n: int, seed: int, *,
                   batch_size: int = 500):
  """n samples x = G(z), z ~ q: a dict with 'x' and 'z' (numpy); batch i
  from seed [seed, 1000 + i] (stages/batches.py)."""
  per_flow = _COMPILED.setdefault(flow, {})
  if id(generator) not in per_flow:

    @tf.function(reduce_retracing=True)
    def draw(m, s):
      z = flow.sample(m, s)
      return z, generator.decode(z)

    per_flow[id(generator)] = draw
  one = per_flow[id(generator)]

  return batches.draw_batches(lambda m, s: dict(zip(('z', 'x'), one(m, s))),
                             n, batch_size, seed).arrays


def _plan(run_dir, cfg, source):
  """What q is fitted to (`source`: the sample stage's samples.json, or how
  the API drew its latents) and with (`cfg`); a q fitted to other tilted
  samples (another energy, another draw) or with other settings is started
  over."""
  plan = {'samples': source, 'distill': cfg.to_dict()}
  stored = io_utils.read_json(run_dir.path('distill.json'))
  if stored is not None and stored != io_utils.jsonable(plan):
    logging.info('distill: the tilted samples or settings changed since the '
                 'last fit; fitting anew')
    for folder in ('distill', 'distill_best'):
      shutil.rmtree(run_dir.path('checkpoints', folder), ignore_errors=True)
  return plan


def fit_q(run_dir, strategy, latent_dim, latents, *, cfg, seed: int,
          settings: loop_lib.LoopSettings, source):
  """Fits the run's q (`cfg.model`) to `latents`, drawn as `source` (JSON)
  says, in `run_dir`; resumes or reuses a fit of the same plan. Returns
  (this invocation's (seconds, steps) or None, the fitted q)."""
  plan = _plan(run_dir, cfg, source)
  # The run's seed builds q (a flow's permutations), as load() and the
  # export rebuild it.
  model = make_flow(latent_dim, cfg, seed, strategy)
  fitted = distill_lib.fit(run_dir, strategy, model, latents, cfg=cfg,
                           seed=seed, settings=settings)
  best = distill_lib.restore_flow(run_dir.workdir, latent_dim, cfg, seed)
  io_utils.write_json(run_dir.path('distill.json'), plan)
  return fitted, best


def _write_figure(run_dir, grid, tilted, distilled):
  """samples_distilled.png: base | tilted | distilled images (`grid` of
  each), also to TensorBoard."""
  with np.load(run_dir.path('samples_base.npz')) as f:
    base = f['images'][:grid]
  png = figures.grid_png(
      [base / 255., tilted[:grid] / 255., distilled[:grid]],
      titles=['base', 'tilted (Langevin)', 'distilled (no chain)'])
  figures.write_png(run_dir.path('samples_distilled.png'), png)
  with run_dir.writer.as_default(step=0):
    tf.summary.image('samples/base_tilted_distilled',
                     tf.io.decode_png(png)[None])


def run_distill(run_dir, strategy, generator, *, cfg, sample_cfg, seed: int,
                settings: loop_lib.LoopSettings):
  """Fits q and draws `sample_cfg.num` distilled samples.

  Args:
    run_dir: a RunDir holding samples_tilted.npz.
    strategy: the tf.distribute strategy.
    generator: the run's (trained) Generator.
    cfg: the `distill` config section.
    sample_cfg: the `sample` section (num, batch_size, grid).
    seed: the run's seed.
    settings: the training loop's LoopSettings.
  Returns:
    The fitted q (a LatentMixture, or a LatentFlow's best held-out weights).
  """
  path = run_dir.path('samples_tilted.npz')
  if not os.path.exists(path):
    raise UserError(f'no tilted samples in {run_dir.workdir}; run the sample '
                    'stage first (--stage=sample)')
  with np.load(path) as f:
    if 'latents' not in f.files:
      raise UserError(f'{path} holds no latents (a pixel-space EBM has none '
                      'to distill)')
    latents, tilted = f['latents'], f['images' if 'images' in f.files
                                          else 'samples']
  t0 = time.time()
  fitted, best = fit_q(run_dir, strategy, generator.latent_dim, latents,
                       cfg=cfg, seed=seed, settings=settings,
                       source=io_utils.read_json(run_dir.path('samples.json')))
  fit_seconds = time.time() - t0
  n = sample_cfg.num
  t1 = time.time()
  out = draw_distilled(generator, best, n, seed,
                       batch_size=sample_cfg.batch_size)
  draw_seconds = time.time() - t1
  is_points = out['x'].ndim == 2
  key = 'samples' if is_points else 'images'
  x = out['x'] if is_points else figures.to_uint8(out['x'])
  io_utils.savez(run_dir.path('samples_distilled.npz'),
                 **{key: x, 'latents': out['z']})
  if not is_points:
    _write_figure(run_dir, sample_cfg.grid, tilted, out['x'])
  if fitted or 'distill' not in run_dir.timings:  # A reused fit keeps its own.
    run_dir.record_time('distill', fit_seconds,
                        steps=fitted[1] if fitted else 0,
                        latents=int(len(latents)))
  run_dir.record_time('distill_sample', draw_seconds, n=n,
                      samples_per_s=round(n / max(draw_seconds, 1e-9), 2))
  logging.info('distill: q fitted in %.1fs; %d distilled samples in %.1fs '
               '(%.0f samples/s) -> %s', fit_seconds, n, draw_seconds,
               n / max(draw_seconds, 1e-9), run_dir.workdir)
  return best
