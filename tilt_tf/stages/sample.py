"""The sample stage: N base and N tilted samples from a trained method,
drawn in batches that survive a kill, plus the figures.

Batch i is drawn from seed rng.SAMPLE_BATCH ([seed, 1000 + i],
stages/batches.py) and kept as it is drawn in sample_parts/part-NNNNN.npz
(with the seconds it took), so a killed stage resumes at the batch it was
drawing and reports its whole drawing time.
samples.json records the plan (energy checkpoint, n, batch size, Langevin
steps and step size) and is written last: a finished stage with the same
plan is reused, another plan redraws.
"""

import os
import shutil
import time
from typing import Callable, Dict, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tilt_tf import figures
from tilt_tf import io_utils
from tilt_tf import rng
from tilt_tf.runtime import loop as loop_lib
from tilt_tf.stages import batches

__all__ = ['draw_samples', 'write_figures']

_KEYS = ('z_base', 'x_base', 'z_tilted', 'x_tilted')


def draw_samples(run_dir, method, sample_cfg, *, num_steps: int,
                 step_size: Optional[float], seed: int,
                 energy_checkpoint: str, reference: Optional[np.ndarray] = None,
                 tilt_step: int = 0):
  """Draws, stores and pictures the samples (see the module docstring).

  Args:
    run_dir: a RunDir.
    method: a trained Method.
    sample_cfg: the `sample` config section (num, batch_size, grid,
      chain_every).
    num_steps: Langevin steps per chain.
    step_size: the chains' step size (recorded in the plan).
    seed: the run's seed.
    energy_checkpoint: the checkpoint the method was restored from.
    reference: data points for the toy scatter figure (vectors only).
    tilt_step: the energy's training step, for the figure titles.
  """
  sampler = method.compiled_sample
  n, bs = sample_cfg.num, min(sample_cfg.batch_size, sample_cfg.num)
  parts_dir = run_dir.path('sample_parts')
  plan = {'energy_checkpoint': energy_checkpoint, 'n': n, 'batch_size': bs,
          'langevin_steps': num_steps, 'step_size': step_size}
  names = [run_dir.path(f'samples_{w}.npz') for w in ('base', 'tilted')]
  if (io_utils.read_json(run_dir.path('samples.json')) == plan and
      all(os.path.exists(p) for p in names)):
    logging.info('sample: reusing the %d + %d samples in %s (drawn with this '
                 'energy and these settings; delete samples.json to redraw '
                 'them)', n, n, run_dir.workdir)
    return
  if io_utils.read_json(os.path.join(parts_dir, 'plan.json')) != plan:
    shutil.rmtree(parts_dir, ignore_errors=True)
    io_utils.write_json(os.path.join(parts_dir, 'plan.json'), plan)
  t0 = time.time()

  def show(p):
    logging.info('sample: batch %d/%d | %.1f samples/s ETA %s', p.batch,
                 p.batches, 2 * p.rate, loop_lib.fmt_eta(p.eta))

  drawn = batches.draw_batches(
      lambda m, s: sampler(m, s, tf.constant(num_steps)), n, bs, seed,
      keys=_KEYS, parts_dir=parts_dir, log=show)
  cat = drawn.arrays
  _save(run_dir, cat, method.has_latent)
  seconds = drawn.seconds + (time.time() - t0 - drawn.drawn_seconds)
  write_figures(run_dir, method, sampler, cat, sample_cfg=sample_cfg,
                num_steps=num_steps, seed=seed, reference=reference,
                tilt_step=tilt_step)
  run_dir.record_time('sample', seconds, n=n,
                      energy_checkpoint=energy_checkpoint,
                      samples_per_s=round(2 * n / max(seconds, 1e-9), 2))
  # Last: a stage killed before this line redoes its tail from the parts.
  io_utils.write_json(run_dir.path('samples.json'), plan)
  shutil.rmtree(parts_dir)
  logging.info('sample: %d base + %d tilted samples in %.1fs -> %s', n, n,
               seconds, run_dir.workdir)


def _save(run_dir, cat, has_latent):
  """samples_base.npz and samples_tilted.npz: `samples` (points) or uint8
  `images`, and `latents` where the method has them."""
  is_points = cat['x_base'].ndim == 2
  key = 'samples' if is_points else 'images'
  conv = (lambda x: x) if is_points else figures.to_uint8
  for name in ('base', 'tilted'):
    arrays = {key: conv(cat[f'x_{name}'])}
    if has_latent:  # A pixel EBM's chain starts are not latents.
      arrays['latents'] = cat[f'z_{name}']
    io_utils.savez(run_dir.path(f'samples_{name}.npz'), **arrays)


def write_figures(run_dir, method, sampler: Callable,
                  cat: Dict[str, np.ndarray], *, sample_cfg, num_steps: int,
                  seed: int, reference: Optional[np.ndarray] = None,
                  tilt_step: int = 0):
  """samples.png (base | tilted) and langevin_chain.png, also to
  TensorBoard (`samples/base_vs_tilted`, `samples/langevin_chain`)."""
  every = sample_cfg.chain_every
  if cat['x_base'].ndim == 2:  # Points: scatter plots.
    panels = ([reference[:5000]] if reference is not None else []) + [
        cat['x_base'], cat['x_tilted']]
    titles = (['data'] if reference is not None else []) + [
        'base', f'tilted (latent EBM, step {tilt_step})']
    png = figures.toy_scatter_png(panels, titles)
    traj = sampler(tf.constant(2000),
                   tf.constant(rng.stream(seed, rng.FIGURES)),
                   tf.constant(num_steps), record_every=every)['trajectory']
    frames = np.linspace(0, len(traj) - 1, min(len(traj), 6)).astype(int)
    chain_png = figures.toy_scatter_png(
        [method.chain_states_to_data(traj[t]).numpy() for t in frames],
        [f'Langevin step {t * every}' for t in frames])
    tags = ('samples', 'samples/langevin_chain')
  else:
    g = sample_cfg.grid
    panels = ([cat['x_base'][:g], cat['x_tilted'][:g]] if method.has_latent
              else [cat['x_tilted'][:g]])
    titles = (['base', f'tilted (EBM step {tilt_step})'] if method.has_latent
              else [f'pixel EBM (step {tilt_step})'])
    png = figures.grid_png(panels, titles=titles)
    out = sampler(tf.constant(8), tf.constant(rng.stream(seed, rng.FIGURES)),
                  tf.constant(num_steps), record_every=every)
    traj = out['trajectory'].numpy()  # [T, 8, ...] chain states.
    frames = np.stack([method.chain_states_to_data(t).numpy() for t in traj])
    chain_png = figures.chain_png(
        frames, steps=[k * every for k in range(len(traj))],
        title=(f'tilted chains, EBM step {tilt_step}' if method.has_latent
               else 'pixel EBM chains'))
    tags = ('samples/base_vs_tilted', 'samples/langevin_chain')
  figures.write_png(run_dir.path('samples.png'), png)
  figures.write_png(run_dir.path('langevin_chain.png'), chain_png)
  with run_dir.writer.as_default(step=tilt_step):
    tf.summary.image(tags[0], tf.io.decode_png(png)[None])
    tf.summary.image(tags[1], tf.io.decode_png(chain_png)[None])
