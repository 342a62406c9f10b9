"""Image pipeline dry runs (test preset) for VAE and GLF on tiny IDX files."""

import gzip
import json
import os
import struct

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import configs
from tilt_tf import train_lib


def _write_idx(path, array):
  header = struct.pack('>HBB', 0, 0x08, array.ndim)
  header += struct.pack('>' + 'I' * array.ndim, *array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _fake_fashion(folder, n_train=512, n_test=256):
  """Class-dependent blobs: learnable by a classifier in one epoch."""
  rng = np.random.default_rng(0)
  for split, n in (('train', n_train), ('test', n_test)):
    labels = rng.integers(0, 10, n)
    yy, xx = np.mgrid[:28, :28]
    images = np.stack([
        255 * np.exp(-((yy - 4 - 2 * l) ** 2 + (xx - 14) ** 2) / 20.0)
        for l in labels]) + rng.integers(0, 30, (n, 28, 28))
    prefix = 'train' if split == 'train' else 't10k'
    _write_idx(os.path.join(folder, f'{prefix}-images-idx3-ubyte.gz'),
               np.clip(images, 0, 255))
    _write_idx(os.path.join(folder, f'{prefix}-labels-idx1-ubyte.gz'), labels)


class TrainImagesTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters('vae', 'glf')
  def test_dry_run(self, base):
    data_dir = self.create_tempdir().full_path
    _fake_fashion(data_dir)
    os.environ['TILT_TF_CACHE'] = self.create_tempdir().full_path
    config = configs.get_config(base, 'fashion_mnist', 'test')
    config.data_dir = data_dir
    workdir = self.create_tempdir().full_path
    metrics = train_lib.run(config, workdir)
    for name in ('samples_base.npz', 'samples_tilted.npz', 'samples.png',
                 'langevin_chain.png', 'metrics.json'):
      self.assertTrue(os.path.exists(os.path.join(workdir, name)), name)
    tilted = np.load(os.path.join(workdir, 'samples_tilted.npz'))
    self.assertEqual(tilted['images'].shape, (128, 28, 28, 1))
    self.assertEqual(tilted['images'].dtype, np.uint8)
    self.assertEqual(tilted['latents'].shape[0], 128)
    for key in ('base', 'tilted'):
      for field in ('fid', 'precision', 'recall', 'feature_extractor'):
        self.assertIn(field, metrics[key])
      self.assertTrue(np.isfinite(metrics[key]['fid']))
    with open(os.path.join(workdir, 'monitor.json')) as f:
      self.assertLen(json.load(f), 2)


if __name__ == '__main__':
  tf.test.main()
