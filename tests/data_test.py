"""Data: toy sets, IDX/CIFAR readers with clear errors, the resumable pipeline."""

import gzip
import os
import pickle
import struct
from unittest import mock

import numpy as np
import tensorflow as tf

from tilt_tf import data
from tilt_tf.errors import UserError


def _write_idx(path, array):
  header = struct.pack('>HBB', 0, 0x08, array.ndim)
  header += struct.pack('>' + 'I' * array.ndim, *array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


class ToyTest(tf.test.TestCase):

  def test_25gaussians_modes_and_std(self):
    x = data.toy_samples('25gaussians', 20000, seed=0)
    self.assertEqual(x.shape, (20000, 2))
    modes = data.gaussian_modes()
    self.assertEqual(modes.shape, (25, 2))
    self.assertAllClose(modes.max(0), [4 / 2.828] * 2)
    d = np.linalg.norm(x[:, None] - modes[None], axis=-1)
    nearest = d.argmin(1)
    resid = x - modes[nearest]
    self.assertAllClose(resid.std(0), [data.GAUSSIANS_STD] * 2, rtol=0.05)
    self.assertLen(np.unique(nearest), 25)

  def test_swissroll_range(self):
    x = data.toy_samples('swissroll', 5000, seed=1)
    self.assertEqual(x.shape, (5000, 2))
    self.assertLess(np.abs(x).max(), 2.0)
    self.assertGreater(x.std(), 0.5)

  def test_toys_are_seeded(self):
    self.assertAllEqual(data.toy_samples('swissroll', 10, 3),
                        data.toy_samples('swissroll', 10, 3))
    self.assertNotAllClose(data.load('25gaussians', 'train', n=10),
                           data.load('25gaussians', 'test', n=10))

  def test_unknown_dataset(self):
    with self.assertRaisesRegex(UserError, "unknown dataset 'nope'"):
      data.load('nope')


class ImageFilesTest(tf.test.TestCase):

  def _idx_dir(self, n=20):
    d = self.create_tempdir().full_path
    rng = np.random.default_rng(0)
    for split, m in (('train', n), ('test', n // 2)):
      img, lab = data._IDX_FILES[split]  # pylint: disable=protected-access
      _write_idx(os.path.join(d, img), rng.integers(0, 256, (m, 28, 28)))
      _write_idx(os.path.join(d, lab), rng.integers(0, 10, (m,)))
    return d

  def test_reads_idx_from_data_dir(self):
    d = self._idx_dir()
    x, y = data.load_images('mnist', 'train', d, with_labels=True,
                            use_tfds=False)
    self.assertEqual(x.shape, (20, 28, 28, 1))
    self.assertEqual(x.dtype, np.uint8)
    self.assertEqual(y.shape, (20,))
    self.assertEqual(data.load_images('fashion_mnist', 'test', d).shape[0], 10)

  def test_corrupt_idx_names_the_file(self):
    d = self._idx_dir()
    path = os.path.join(d, 'train-images-idx3-ubyte.gz')
    with open(path, 'wb') as f:
      f.write(b'not a gzip file at all')
    with self.assertRaisesRegex(UserError, 'corrupt data file .*train-images'):
      data.load_images('mnist', 'train', d, use_tfds=False)

  def test_truncated_idx(self):
    d = self._idx_dir()
    path = os.path.join(d, 't10k-images-idx3-ubyte.gz')
    with gzip.open(path, 'rb') as f:
      raw = f.read()
    with gzip.open(path, 'wb') as f:
      f.write(raw[:-100])
    with self.assertRaisesRegex(UserError, 'corrupt data file .*header says'):
      data.load_images('mnist', 'test', d, use_tfds=False)

  def test_missing_file(self):
    d = self._idx_dir()
    os.remove(os.path.join(d, 't10k-labels-idx1-ubyte.gz'))
    with self.assertRaisesRegex(UserError, 'missing data file .*t10k-labels'):
      data.load_images('mnist', 'test', d, use_tfds=False)

  def test_no_copy_names_the_datasets_extra_without_tfds(self):
    empty = self.create_tempdir().full_path
    for installed in (True, False):
      with mock.patch.object(data, '_tfds_installed', return_value=installed):
        with self.assertRaises(UserError) as e:
          data.load_images('mnist', 'test', empty, use_tfds=False)
      self.assertIn('no local copy of mnist', str(e.exception))
      self.assertEqual("pip install 'tilt_tf[datasets]'" in str(e.exception),
                       not installed)
      self.assertNotIn('\n', str(e.exception))

  def test_missing_dir(self):
    with self.assertRaisesRegex(UserError, 'does not exist'):
      data.load_images('mnist', 'test', '/nonexistent/folder')

  def test_cifar_python_batches(self):
    d = self.create_tempdir().full_path
    rng = np.random.default_rng(0)
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
      with open(os.path.join(d, name), 'wb') as f:
        pickle.dump({b'data': rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                     b'labels': [1, 2, 3, 4]}, f)
    x = data.load_images('cifar10', 'train', d, use_tfds=False)
    self.assertEqual(x.shape, (20, 32, 32, 3))
    with open(os.path.join(d, 'test_batch'), 'wb') as f:
      f.write(b'garbage')
    with self.assertRaisesRegex(UserError, 'corrupt data file .*test_batch'):
      data.load_images('cifar10', 'test', d, use_tfds=False)


class PipelineTest(tf.test.TestCase):

  def test_batches_are_a_function_of_seed_and_step(self):
    a = np.arange(50, dtype=np.float32)[:, None]
    full = [b.numpy() for b in data.make_dataset(a, 8, seed=3).take(12)]
    resumed = [b.numpy() for b in data.make_dataset(a, 8, 3, start_step=7).take(5)]
    for x, y in zip(full[7:], resumed):
      self.assertAllEqual(x, y)
    # Each epoch (6 batches of 8 out of 50) has no repeats.
    epoch = np.concatenate(full[:6]).ravel()
    self.assertLen(np.unique(epoch), 48)
    self.assertNotAllClose(full[0], full[6])

  def test_uint8_images_become_unit_floats(self):
    x = np.full((4, 2, 2, 1), 255, np.uint8)
    batch = next(iter(data.make_dataset(x, 2, seed=0)))
    self.assertEqual(batch.dtype, tf.float32)
    self.assertAllClose(batch, np.ones((2, 2, 2, 1)))

  def test_bad_batch(self):
    with self.assertRaisesRegex(UserError, 'batch size must be positive'):
      data.make_dataset(np.zeros((4, 2)), 0, seed=0)
    with self.assertRaisesRegex(UserError, 'only 4 examples'):
      data.make_dataset(np.zeros((4, 2)), 8, seed=0)


if __name__ == '__main__':
  tf.test.main()
