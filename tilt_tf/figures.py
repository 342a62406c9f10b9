"""Figures: toy scatter plots (Fig. 5.1), image grids (Fig. 5.2, C.2, C.3),
the Langevin chain picture (Fig. 5.3). PNG bytes, written atomically."""

import io

import numpy as np

from tilt_tf import io_utils
from tilt_tf.errors import UserError

__all__ = ['to_uint8', 'tile', 'toy_scatter_png', 'grid_png', 'chain_png',
           'curves_png', 'write_png']


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


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _labelled_png(mosaics, titles=None, *, suptitle=None, xticks=None,
                  dpi=100):
  """Mosaics side by side, drawn pixel for pixel (scaled by an integer), each
  with its title above, an optional figure title and x tick labels under
  the first (xticks: (positions in mosaic pixels, labels)). PNG bytes."""
  plt = _pyplot()
  h = max(m.shape[0] for m in mosaics)
  scale = max(1, min(4, 480 // max(h, 1)))
  inch = lambda px: px * scale / dpi
  gap, side = 0.25, 0.1  # inches
  top = (0.35 if titles and any(titles) else 0.0) + (0.45 if suptitle else 0.0)
  bottom = 0.35 if xticks else 0.1
  widths = [inch(m.shape[1]) for m in mosaics]
  fig_w = sum(widths) + gap * (len(mosaics) - 1) + 2 * side
  fig_h = inch(h) + top + bottom
  fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi)
  x = side
  for i, (m, w) in enumerate(zip(mosaics, widths)):
    ax = fig.add_axes([x / fig_w, bottom / fig_h, w / fig_w,
                       inch(m.shape[0]) / fig_h])
    if m.shape[-1] == 1:
      ax.imshow(m[..., 0], cmap='gray', vmin=0, vmax=255,
                interpolation='nearest')
    else:
      ax.imshow(m, interpolation='nearest')
    ax.set_yticks([])
    if xticks and i == 0:
      ax.set_xticks(xticks[0])
      ax.set_xticklabels(xticks[1], fontsize=8)
      ax.tick_params(length=0)
    else:
      ax.set_xticks([])
    for spine in ax.spines.values():
      spine.set_visible(False)
    if titles and i < len(titles) and titles[i]:
      ax.set_title(titles[i], fontsize=10)
    x += w + gap
  if suptitle:
    fig.suptitle(suptitle, fontsize=11, y=1 - 0.12 / fig_h,
                 verticalalignment='top')
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=dpi)
  plt.close(fig)
  return buf.getvalue()


def grid_png(panels, titles=None, cols=8):
  """Side-by-side mosaics of several image sets (e.g. base | tilted), PNG.

  Without titles: the mosaics pixel for pixel, 8 white pixels apart. With
  titles (one per panel, e.g. ['base', 'tilted']): drawn by matplotlib,
  each title above its mosaic (the picture is larger).
  """
  mosaics = [tile(p, cols=cols) for p in panels]
  if titles is not None and any(titles):
    if len(titles) != len(mosaics):
      raise UserError(f'grid_png: {len(titles)} titles for {len(mosaics)} '
                      'panels')
    return _labelled_png(mosaics, titles=list(titles))
  h = max(m.shape[0] for m in mosaics)
  gap = np.full((h, 8, mosaics[0].shape[-1]), 255, np.uint8)
  row = []
  for m in mosaics:
    m = np.pad(m, ((0, h - m.shape[0]), (0, 0), (0, 0)), constant_values=255)
    row += [m, gap]
  return _png(np.concatenate(row[:-1], axis=1))


def chain_png(frames, steps=None, title=None, pad=1):
  """The Langevin chain figure (paper Fig. 5.3), PNG bytes.

  Args:
    frames: [T, n, H, W, C] images: T recorded steps of n chains.
    steps: the Langevin step of each of the T frames (default 0..T-1):
      column labels "step 0", "step 10", ...
    title: the figure's title, e.g. 'GLF + EBM: Langevin chains'.
    pad: pixels between the images.
  Returns:
    One row per chain, one column per recorded step, labelled, titled.
  """
  frames = np.asarray(frames)
  if frames.ndim != 5:
    raise UserError(f'chain_png: frames must be [T, n, H, W, C], got shape '
                    f'{frames.shape}')
  t, n, h, w = frames.shape[:4]
  steps = list(range(t)) if steps is None else [int(s) for s in steps]
  if len(steps) != t:
    raise UserError(f'chain_png: {len(steps)} steps for {t} frames')
  mosaic = tile(np.swapaxes(frames, 0, 1).reshape((t * n,) + frames.shape[2:]),
                cols=t, pad=pad)
  centers = [pad + k * (w + pad) + (w - 1) / 2 for k in range(t)]
  return _labelled_png([mosaic], suptitle=title,
                       xticks=(centers, [f'step {s}' for s in steps]))


def toy_scatter_png(panels, titles, lim=2.0):
  """Scatter plots side by side (data | base | tilted), PNG bytes."""
  plt = _pyplot()
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


def curves_png(curves, xlabel, ylabel, title='', *, references=()):
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
