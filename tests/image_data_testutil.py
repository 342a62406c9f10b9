"""Fake image data for tests: tiny Fashion-MNIST-like IDX files."""

import gzip
import os
import struct

import numpy as np

__all__ = ['write_idx', 'fake_fashion']


def write_idx(path, array):
  """Writes `array` as a gzipped IDX file (uint8)."""
  header = struct.pack('>HBB', 0, 0x08, array.ndim)
  header += struct.pack('>' + 'I' * array.ndim, *array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def fake_fashion(folder, n_train=512, n_test=256):
  """Class-dependent blobs: learnable by a classifier in one epoch.

  Writes the four Fashion-MNIST IDX files into `folder` (pass it as
  --data_dir / config.data_dir).
  """
  rng = np.random.default_rng(0)
  for split, n in (('train', n_train), ('test', n_test)):
    labels = rng.integers(0, 10, n)
    yy, xx = np.mgrid[:28, :28]
    images = np.stack([
        255 * np.exp(-((yy - 4 - 2 * l) ** 2 + (xx - 14) ** 2) / 20.0)
        for l in labels]) + rng.integers(0, 30, (n, 28, 28))
    prefix = 'train' if split == 'train' else 't10k'
    write_idx(os.path.join(folder, f'{prefix}-images-idx3-ubyte.gz'),
              np.clip(images, 0, 255))
    write_idx(os.path.join(folder, f'{prefix}-labels-idx1-ubyte.gz'), labels)
