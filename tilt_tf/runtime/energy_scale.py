"""The sampling energy scale: p_beta(z) ∝ p0(z) exp(-beta E(G(z))), beta
chosen on held-out data after tilting.

Maximum likelihood trains E at beta = 1 (paper eq. 5), and the alpha term of
the loss bounds E's range (data near -1/(2 alpha), samples near +1/(2 alpha)).
When every G(z) differs from the data in a way no latent can fix (a blurry
decoder's samples are all blurrier than any image), E spends that range on
telling data from samples, and what varies along G's outputs, which is all
the Langevin chain can use, is a small part of it: the chains hardly leave
the prior (docs/user_decoder_gain.md: |grad_z E| ~ 1.5 beside |z| ~ 5.6).
Sampling p_beta with beta > 1 sharpens the same tilt. beta = 1 is the paper's
model; other values are candidates only where `ebm.energy_scale_grid` lists
them, and the §5.3 monitor's score on the held-out data picks among them,
as it picks the kept step: from the same chains (seed rng.MONITOR), on the
kept energy; another scale replaces 1 only if it scores MIN_GAIN (1 %)
better. The choice is stored in `energy_scale.json` beside monitor.json and
applies to every sampler of the run (the sample stage, the API, the export),
for that energy checkpoint only.
"""

import math
import os

from absl import logging
import tensorflow as tf

from tilt_tf import io_utils
from tilt_tf import rng
from tilt_tf.runtime import monitor as monitor_lib

__all__ = ['FILE', 'MIN_GAIN', 'choose', 'apply', 'stored_scale',
           'best_check', 'report']

FILE = 'energy_scale.json'
# Another scale replaces 1 (the trained model) only if it scores at least
# this fraction better: a difference the monitor's few hundred chains cannot
# tell from noise keeps the model as trained.
MIN_GAIN = 0.01


def _scale_variable(method):
  ebm = getattr(method, 'latent_ebm', None)
  return None if ebm is None else ebm.sampling_scale


def stored_scale(workdir, energy_checkpoint):
  """The scale chosen for `energy_checkpoint`, or None (none chosen, or
  chosen for another energy)."""
  stored = io_utils.read_json(os.path.join(workdir, FILE), None)
  if not isinstance(stored, dict) or not energy_checkpoint:
    return None
  if (os.path.basename(str(stored.get('energy_checkpoint'))) !=
      os.path.basename(energy_checkpoint)):
    return None
  scale = stored.get('energy_scale')
  return float(scale) if isinstance(scale, (int, float)) else None


def apply(workdir, method, energy_checkpoint, default=1.0):
  """Sets the method's sampling scale: the stored choice for this energy,
  else `default` (the config's `ebm.sample_energy_scale`). Returns it."""
  variable = _scale_variable(method)
  if variable is None:
    return None
  scale = stored_scale(workdir, energy_checkpoint)
  scale = float(default) if scale is None else scale
  variable.assign(scale)
  return scale


def choose(run_dir, method, score_fn, *, grid, num_samples, num_steps, seed,
           energy_checkpoint):
  """Scores the kept energy's samples at each scale of `grid` (and 1) on
  the monitor's chains and keeps the best; reuses a choice already made
  for this energy. Returns the chosen scale."""
  variable = _scale_variable(method)
  if variable is None or not grid:
    return None
  candidates = sorted({float(s) for s in grid} | {1.0})
  scale = stored_scale(run_dir.workdir, energy_checkpoint)
  stored = io_utils.read_json(run_dir.path(FILE), {}) or {}
  if scale is not None and [r['scale'] for r in stored.get('scores', [])
                            ] == candidates:
    variable.assign(scale)
    logging.info('tilt: sampling energy scale %g (chosen before for this '
                 'energy)', scale)
    return scale
  seed = tf.constant(rng.stream(seed, rng.MONITOR), tf.int32)
  rows, base = [], None
  for s in candidates:  # One trace of the chain for every scale.
    out = method.compiled_sample(tf.constant(num_samples), seed,
                                 tf.constant(num_steps),
                                 energy_scale=tf.constant(s, tf.float32))
    rows.append({'scale': s, 'score': round(_score(score_fn,
                                                   out['x_tilted']), 6)})
    if base is None:
      base = round(_score(score_fn, out['x_base']), 6)
  best = _best(rows)
  variable.assign(best['scale'])
  name = getattr(score_fn, 'name', 'score')
  io_utils.write_json(run_dir.path(FILE), {
      'energy_scale': best['scale'], 'energy_checkpoint': energy_checkpoint,
      'score_name': name, 'base_score': base, 'scores': rows})
  logging.info('tilt: sampling energy scale %g chosen on held-out data: %s '
               '%.4g (scale 1: %.4g; the base generator %.4g); tried %s',
               best['scale'], name, best['score'],
               next(r['score'] for r in rows if r['scale'] == 1.0), base,
               ', '.join(f'{r["scale"]:g}: {r["score"]:.4g}' for r in rows))
  return best['scale']


def _best(rows):
  """The best-scored row; scale 1 unless another beats it by MIN_GAIN."""
  one = next(r for r in rows if r['scale'] == 1.0)
  best = min(rows, key=lambda r: r['score'])
  if math.isfinite(one['score']) and (
      best['score'] > one['score'] - MIN_GAIN * abs(one['score'])):
    return one
  return best


def best_check(curve):
  """The best check of a monitor curve (monitor.json), or None."""
  scored = [m for m in curve or [] if isinstance(m, dict) and 'score' in m
            and 'base_score' in m]
  return min(scored, key=lambda m: m['score']) if scored else None


def report(workdir):
  """What the run's monitor says of the sampler it keeps: the best check
  ({'step', 'score', 'base_score'}, lower is better) and, where a sampling
  energy scale was chosen for that energy, 'energy_scale' with the score
  at that scale ('score'; 'score_at_scale_1' keeps the check's). None
  without a monitor curve."""
  curve = io_utils.read_json(os.path.join(workdir, 'monitor.json'), [])
  best = best_check(curve)
  stored = io_utils.read_json(os.path.join(workdir, FILE), None)
  if best is None or not isinstance(stored, dict):
    return best
  ckpt = os.path.basename(str(stored.get('energy_checkpoint')))
  # monitor.json rounds scores: among checks tied there, the kept energy is
  # the one the scale was chosen for.
  best = next((m for m in curve if isinstance(m, dict) and m.get('score') ==
               best['score'] and f'ckpt-{m.get("step")}' == ckpt), best)
  rows = [r for r in stored.get('scores', [])
          if r.get('scale') == stored.get('energy_scale')]
  if ckpt != f'ckpt-{best["step"]}' or not rows:
    return best
  return dict(best, score=rows[0]['score'], score_at_scale_1=best['score'],
              energy_scale=stored['energy_scale'])


def _score(score_fn, samples):
  samples = samples.numpy()
  if monitor_lib.finite_rows(samples):
    return math.inf
  return float(score_fn(samples))
