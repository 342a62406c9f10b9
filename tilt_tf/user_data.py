"""A user's own data set from a file (`--data=images.npz`) or an array.

Images: [N, H, W, C] (or [N, H, W], given a channel) as uint8, or floats in
[0, 1]. Vectors: float [N, D]. An .npz file holds one array, or one under
the key 'images', 'samples', 'x' or 'data'.
"""

import os
import zipfile

import numpy as np

from tilt_tf.errors import UserError

__all__ = ['load_array', 'check_array']

_KEYS = ('images', 'samples', 'x', 'data')


def check_array(array, what='the data'):
  """Validates and normalizes a data array (see the module docstring)."""
  array = np.asarray(array)
  if array.dtype == object or not (np.issubdtype(array.dtype, np.floating) or
                                   array.dtype == np.uint8):
    raise UserError(f'{what} has dtype {array.dtype}; give uint8 images or '
                    'float images in [0, 1] / float vectors')
  if array.ndim == 3:
    array = array[..., None]
  if array.ndim not in (2, 4):
    raise UserError(f'{what} has shape {array.shape}; give images [N, H, W, '
                    'C] or vectors [N, D]')
  if len(array) < 10:
    raise UserError(f'{what} holds {len(array)} examples; give at least 10')
  if np.issubdtype(array.dtype, np.floating):
    if not np.isfinite(array).all():
      raise UserError(f'{what} holds non-finite values')
    array = array.astype(np.float32)
    if array.ndim == 4 and (array.min() < 0 or array.max() > 1):
      raise UserError(f'{what}: float images must be in [0, 1], these are in '
                      f'[{array.min():.3g}, {array.max():.3g}]')
  return array


def load_array(path):
  """The data array in a .npz / .npy file, checked."""
  if not os.path.isfile(path):
    raise UserError(f'--data {path} is not a file; give a .npz or .npy file '
                    'of images [N, H, W, C] or vectors [N, D]')
  try:
    f = np.load(path, allow_pickle=False)
    if isinstance(f, np.ndarray):
      array = f
    else:
      with f:
        keys = [k for k in _KEYS if k in f.files] or (
            f.files if len(f.files) == 1 else [])
        if not keys:
          raise UserError(f'--data {path} holds arrays {", ".join(f.files)}; '
                          f'name the data one of {", ".join(_KEYS)}')
        array = f[keys[0]]
  except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
    if isinstance(e, UserError):
      raise
    raise UserError(f'--data {path} is not a readable .npz or .npy file '
                    f'({type(e).__name__})') from None
  return check_array(array, f'--data {path}')
