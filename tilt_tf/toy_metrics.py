"""Sample-quality figures for the 2-D toy sets (paper §5.1, Fig. 5.1).

25-Gaussians: the fraction of samples within 4 std of a mode ("high
quality", as in DOT), how many of the 25 modes hold a fair share of them, and
the KL of the mode histogram from uniform. Both sets: the energy distance to
fresh data (0 for identical distributions).

With a 2-D latent the tilted density p0(z) exp(-E(G(z))) can also be
sampled exactly, without Langevin chains, from a fine grid over z
(`exact_tilted_samples`): that separates what the energy has learned from
what the short-run sampler makes of it.
"""

import numpy as np
from scipy.spatial import distance

from tilt_tf import data as data_lib
from tilt_tf import rng

__all__ = ['energy_distance', 'gaussians_quality', 'toy_metrics',
           'exact_tilted_samples']


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
  fresh = data_lib.toy_samples(name, 2000,
                               rng.stream(seed, rng.TOY_METRICS_FRESH))
  out = {'energy_distance': energy_distance(np.asarray(samples), fresh),
         'n': int(len(samples))}
  if name == '25gaussians':
    out.update(gaussians_quality(np.asarray(samples)))
  return out


def exact_tilted_samples(generator, energy, n, seed=0, *, extent=4.5,
                         resolution=601, batch=20_000):
  """n samples G(z) of the tilted density of a 2-D latent, from a grid.

  The density p(z) ∝ p0(z) exp(-E(G(z))) is evaluated on a regular grid of
  resolution² points over [-extent, extent]² (p0 = N(0, I) puts 1e-4.4 of
  its mass outside 4.5 std per axis); grid cells are drawn with their
  probability and a point uniformly inside each drawn cell is decoded.

  Args:
    generator: a Generator with latent_dim 2 (decode, neg_log_prior).
    energy: x [B, D] -> E(x) [B].
    n: number of samples.
    seed: numpy seed of the draws.
    extent, resolution: the grid.
    batch: points per decode/energy call.

  Returns:
    float32 [n, D] samples.
  """
  if generator.latent_dim != 2:
    raise ValueError('exact_tilted_samples needs a 2-D latent, got '
                     f'latent_dim={generator.latent_dim}')
  axis = np.linspace(-extent, extent, resolution, dtype=np.float32)
  grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
  log_w = np.concatenate([
      -(generator.neg_log_prior(z) +
        energy(generator.decode(z))).numpy().astype(np.float64)
      for z in np.array_split(grid, max(1, len(grid) // batch))])
  w = np.exp(log_w - log_w.max())
  rng = np.random.default_rng(seed)
  idx = rng.choice(len(grid), n, p=w / w.sum())
  cell = axis[1] - axis[0]
  z = grid[idx] + cell * (rng.random((n, 2), dtype=np.float32) - 0.5)
  return np.asarray(generator.decode(z))
