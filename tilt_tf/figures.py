"""Figures: toy scatter plots (Fig. 5.1), image grids (Fig. 5.2, C.2, C.3),
the Langevin chain picture (Fig. 5.3). PNG bytes, written atomically."""

import io

import numpy as np

from tilt_tf import io_utils

__all__ = ['to_uint8', 'tile', 'toy_scatter_png', 'grid_png', 'curves_png',
           'write_png']


def to_uint8(images):
  """float [0, 1] or uint8 images -> uint8."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  return np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)


def tile(images, cols=None, pad=1, pad_value=255):
  """[N, H, W, C] -> one [rows*(H+pad), cols*(W+pad), C] uint8 mosaic."""
  images = to_uint8(images)
  n, h, w, c = images.shape
  cols = cols or int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / cols))
  out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value,
                np.uint8)
  for i in range(n):
    r, k = divmod(i, cols)
    out[pad + r * (h + pad):pad + r * (h + pad) + h,
        pad + k * (w + pad):pad + k * (w + pad) + w] = images[i]
  return out


def _png(array):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  array = np.asarray(array)
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format='PNG')
  return buf.getvalue()


def grid_png(panels, titles=None, cols=8):
  """Side-by-side mosaics of several image sets (e.g. base | tilted), PNG."""
  mosaics = [tile(p, cols=cols) for p in panels]
  h = max(m.shape[0] for m in mosaics)
  gap = np.full((h, 8, mosaics[0].shape[-1]), 255, np.uint8)
  row = []
  for m in mosaics:
    m = np.pad(m, ((0, h - m.shape[0]), (0, 0), (0, 0)), constant_values=255)
    row += [m, gap]
  return _png(np.concatenate(row[:-1], axis=1))


def toy_scatter_png(panels, titles, lim=2.0):
  """Scatter plots side by side (data | base | tilted), PNG bytes."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
  for ax, pts, title in zip(np.atleast_1d(axes), panels, titles):
    pts = np.asarray(pts)[:5000]
    ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.5)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect('equal')
    ax.set_title(title)
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=100)
  plt.close(fig)
  return buf.getvalue()


def curves_png(curves, xlabel, ylabel, title='', references=()):
  """Line plot of named curves, each one's minimum marked, PNG bytes.

  Args:
    curves: dict label -> (xs, ys); empty curves are skipped.
    xlabel, ylabel, title: axis labels and title.
    references: labels of reference curves: dashed, minimum not marked.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  for label, (xs, ys) in curves.items():
    if not len(xs):  # pylint: disable=g-explicit-length-test
      continue
    if label in references:
      ax.plot(xs, ys, marker='x', linestyle='--', label=label)
      continue
    line, = ax.plot(xs, ys, marker='.', label=label)
    best = int(np.argmin(ys))
    ax.plot([xs[best]], [ys[best]], marker='*', markersize=12,
            color=line.get_color(), linestyle='none')
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  if ax.get_legend_handles_labels()[0]:
    ax.legend()
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=100)
  plt.close(fig)
  return buf.getvalue()


def write_png(path, png_bytes):
  io_utils.atomic_write(path, png_bytes)
