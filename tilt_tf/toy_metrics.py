"""Sample-quality figures for the 2-D toy sets (paper §5.1, Fig. 5.1).

25-Gaussians: the fraction of samples within 4 std of a mode ("high
quality", as in DOT), how many of the 25 modes hold a fair share of them, and
the KL of the mode histogram from uniform. Both sets: the energy distance to
fresh data (0 for identical distributions).
"""

import numpy as np
from scipy.spatial import distance

from tilt_tf import data as data_lib

__all__ = ['energy_distance', 'gaussians_quality', 'toy_metrics']


def energy_distance(x, y, max_points=2000, seed=0):
  """Energy distance 2E|X-Y| - E|X-X'| - E|Y-Y'| between point sets (>= 0)."""
  rng = np.random.default_rng(seed)
  if len(x) > max_points:
    x = x[rng.choice(len(x), max_points, replace=False)]
  if len(y) > max_points:
    y = y[rng.choice(len(y), max_points, replace=False)]
  xy = distance.cdist(x, y).mean()
  xx = distance.cdist(x, x).mean()
  yy = distance.cdist(y, y).mean()
  return float(2 * xy - xx - yy)


def gaussians_quality(samples, num_std=4.0, min_share=0.1):
  """Quality figures of samples of 25-Gaussians.

  Args:
    samples: float [N, 2].
    num_std: a sample within num_std * std of its nearest mode is "high
      quality".
    min_share: a mode is covered if it holds at least this fraction of the
      N / 25 high-quality samples a perfect sampler would put there.
  Returns:
    dict of floats/ints.
  """
  modes = data_lib.gaussian_modes()
  d = distance.cdist(samples, modes)
  nearest = d.argmin(1)
  good = d.min(1) < num_std * data_lib.GAUSSIANS_STD
  counts = np.bincount(nearest[good], minlength=len(modes))
  share = counts / max(len(samples), 1)
  p = counts / max(counts.sum(), 1)
  kl = float(np.sum(np.where(p > 0, p * np.log(np.maximum(p, 1e-12) * len(modes)), 0.)))
  return {
      'high_quality_fraction': float(good.mean()),
      'modes_covered': int(np.sum(share >= min_share / len(modes))),
      'mode_kl_from_uniform': kl,
  }


def toy_metrics(name, samples, seed=0):
  """All figures for a toy set: energy distance to fresh data, and for
  25-Gaussians the mode figures."""
  fresh = data_lib.toy_samples(name, 2000, seed + 424242)
  out = {'energy_distance': energy_distance(np.asarray(samples), fresh),
         'n': int(len(samples))}
  if name == '25gaussians':
    out.update(gaussians_quality(np.asarray(samples)))
  return out
