"""FID via TF-GAN (with the estimator shim), precision/recall, the classifier."""

import gzip
import json
import os
import struct
from unittest import mock

import numpy as np
from scipy import linalg
from sklearn.datasets import load_digits
import tensorflow as tf

from tilt_tf import classifier as classifier_lib
from tilt_tf import fid
from tilt_tf.errors import UserError


def _scipy_fid(a, b):
  """Reference FID (the formula of Heusel et al. 2017, with scipy's sqrtm)."""
  mu_a, mu_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  covmean = linalg.sqrtm(cov_a @ cov_b).real
  return float(np.sum((mu_a - mu_b)**2) +
               np.trace(cov_a + cov_b - 2.0 * covmean))


def _digits_28():
  """sklearn's 8x8 digits as uint8 [1797, 28, 28, 1] (3x upsampled, padded)."""
  x, y = load_digits(return_X_y=True)
  x = (x.reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
  x = np.kron(x, np.ones((1, 3, 3), np.uint8))
  x = np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None]
  return x, y


def _write_idx(path, array):
  with gzip.open(path, 'wb') as f:
    f.write(struct.pack('>HBB', 0, 8, array.ndim))
    f.write(struct.pack('>' + 'I' * array.ndim, *array.shape))
    f.write(np.ascontiguousarray(array, np.uint8).tobytes())


def write_digits_as_mnist(folder):
  """Writes the digits as MNIST-style IDX files: 1400 train, 397 test."""
  x, y = _digits_28()
  splits = {'train': (x[:1400], y[:1400]), 't10k': (x[1400:], y[1400:])}
  for prefix, (images, labels) in splits.items():
    _write_idx(os.path.join(folder, f'{prefix}-images-idx3-ubyte.gz'),
               images[..., 0])
    _write_idx(os.path.join(folder, f'{prefix}-labels-idx1-ubyte.gz'), labels)
  return folder


def _projection_extractor(shape=(28, 28, 1), dim=32, seed=0):
  """A fixed random projection + tanh, standing in for a trained network."""
  w = tf.constant(np.random.default_rng(seed).standard_normal(
      (int(np.prod(shape)), dim)).astype(np.float32) / 10.0)
  return fid.FeatureExtractor(
      'projection:test', shape,
      lambda x: tf.tanh(tf.reshape(x, [tf.shape(x)[0], -1]) @ w))


def _noisy(images, std, seed=0):
  noise = np.random.default_rng(seed).standard_normal(images.shape) * std
  return np.clip(images / 255.0 + noise, 0.0, 1.0).astype(np.float32)


class ShimTest(tf.test.TestCase):

  def test_tfgan_imports_and_computes(self):
    tfgan = fid.tfgan()
    self.assertIs(tfgan, fid.tfgan())
    self.assertTrue(hasattr(tf, 'estimator'))
    a = tf.random.stateless_normal([200, 8], seed=[1, 2], dtype=tf.float64)
    value = tfgan.eval.frechet_classifier_distance_from_activations(a, a + 1.0)
    self.assertAllClose(value, 8.0, atol=1e-6)  # Shifted by 1 in 8 dims.


class FIDTest(tf.test.TestCase):

  def test_matches_scipy_reference(self):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((600, 24)) @ rng.standard_normal((24, 24))
    b = (rng.standard_normal((500, 24)) * np.linspace(0.5, 2.0, 24) + 0.3)
    for x, y in ((a, b), (b, a), (a, a[::-1] * 1.1)):
      self.assertAllClose(fid.fid_from_activations(x, y), _scipy_fid(x, y),
                          rtol=1e-3)

  def test_self_is_zero_and_grows_with_noise(self):
    images, _ = _digits_28()
    extractor = _projection_extractor()
    real = fid.activations(images, extractor)
    self.assertEqual(real.shape, (len(images), 32))
    self.assertLess(abs(fid.fid_from_activations(real, real)), 1e-6)
    fids = [fid.fid_from_activations(
        real, fid.activations(_noisy(images, std), extractor))
            for std in (0.02, 0.05, 0.1, 0.2, 0.4)]
    self.assertGreater(fids[0], 0.0)
    self.assertAllGreater(np.diff(fids), 0.0)

  def test_activations_uint8_equals_float(self):
    images, _ = _digits_28()
    extractor = _projection_extractor()
    a = fid.activations(images[:100], extractor, batch_size=32)
    b = fid.activations(images[:100, ..., 0] / 255.0, extractor)
    self.assertAllClose(a, b, atol=1e-5)


class PrecisionRecallTest(tf.test.TestCase):

  def _clusters(self, n, modes, seed):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((10, 4)) * 20.0
    idx = rng.choice(modes, size=n)
    return centres[idx] + rng.standard_normal((n, 4))

  def test_identical_sets(self):
    x = self._clusters(500, np.arange(10), seed=0)
    self.assertAllClose(fid.precision_recall(x, x, k=3), (1.0, 1.0))

  def test_mode_dropping_lowers_recall_not_precision(self):
    real = self._clusters(1000, np.arange(10), seed=0)
    fake = self._clusters(1000, np.arange(5), seed=1)
    full = self._clusters(1000, np.arange(10), seed=2)
    p_full, r_full = fid.precision_recall(real, full)
    p_drop, r_drop = fid.precision_recall(real, fake)
    self.assertGreater(r_full, 0.9)
    self.assertGreater(p_drop, 0.9)
    self.assertAllClose(r_drop, 0.5, atol=0.08)
    self.assertLess(r_drop, r_full - 0.3)

  def test_blocks_do_not_change_the_answer(self):
    real = self._clusters(300, np.arange(10), seed=0)
    fake = self._clusters(200, np.arange(7), seed=1) * 1.05
    self.assertEqual(fid.precision_recall(real, fake, block=7),
                     fid.precision_recall(real, fake, block=10_000))

  def test_the_real_sets_radii_are_computed_once(self):
    real = self._clusters(300, np.arange(10), seed=3)
    fakes = [self._clusters(200, np.arange(m), seed=4) for m in (10, 6)]
    with mock.patch.object(fid, '_knn_radii', wraps=fid._knn_radii) as knn:
      first = [fid.precision_recall(real, f) for f in fakes]
      self.assertEqual(knn.call_count, 3)  # real once, each fake once.
      other = real + 0.5  # Another real set: its own radii.
      fid.precision_recall(other, fakes[0])
      self.assertEqual(knn.call_count, 5)
    fid._RADII_MEMO.clear()
    self.assertEqual([fid.precision_recall(real, f) for f in fakes], first)


class ClassifierTest(tf.test.TestCase):

  def test_progress_line(self):
    line = fid.progress_line(2, 8, 600, 3752,
                             logs={'accuracy': 0.85214, 'loss': 0.41049},
                             rate=10.5)
    self.assertEqual(line, 'classifier epoch 2/8 step 600/3752 | '
                     'accuracy=0.8521 loss=0.4105 | 10.50 steps/s ETA 0:05:00')

  def test_train_classifier_logs_progress(self):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (64, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 64)
    with self.assertLogs('absl', level='INFO') as logs:
      fid.train_classifier(x, y, x[:16], y[:16], epochs=2, batch_size=32,
                           log_every_seconds=0)
    lines = [r.getMessage() for r in logs.records
             if r.getMessage().startswith('classifier epoch')]
    self.assertLen(lines, 4 + 2)  # Every batch (interval 0) + epoch ends.
    self.assertStartsWith(lines[0], 'classifier epoch 1/2 step 1/4 | accuracy=')
    self.assertStartsWith(lines[-1], 'classifier epoch 2/2 step 4/4 |')
    self.assertRegex(lines[-1], r'steps/s ETA 0:00:00$')

  def test_trains_caches_reuses_and_recovers(self):
    data_dir = write_digits_as_mnist(self.create_tempdir().full_path)
    cache = self.create_tempdir().full_path
    extractor = fid.classifier_extractor('mnist', data_dir, cache, epochs=3)
    self.assertEqual(extractor.name, 'classifier:mnist_v1')
    folder = os.path.join(cache, 'classifiers', 'mnist_v1')
    with open(os.path.join(folder, 'meta.json')) as f:
      meta = json.load(f)
    self.assertGreater(meta['test_accuracy'], 0.5)  # 10 classes, 3 epochs.
    self.assertEqual(extractor.info['classifier_test_accuracy'],
                     meta['test_accuracy'])
    self.assertEqual([n for n in os.listdir(os.path.join(cache, 'classifiers'))
                      if n.startswith('.tmp')], [])

    result = fid.evaluate_images(
        fid.validate_images(_digits_28()[0][1400:], (28, 28, 1)), 'mnist',
        data_dir, extractor=extractor)
    self.assertLess(abs(result['fid']), 1e-3)  # The test split itself.
    self.assertAllClose((result['precision'], result['recall']), (1.0, 1.0))
    self.assertEqual(result['feature_extractor'], 'classifier:mnist_v1')
    self.assertEqual(result['n'], 397)
    self.assertTrue(any(n.startswith('reference_') for n in os.listdir(folder)))

    # Reused when asked for as many epochs or fewer: no training again.
    with mock.patch.object(classifier_lib, 'train_classifier',
                           side_effect=AssertionError('trained again')):
      again = fid.classifier_extractor('mnist', data_dir, cache, epochs=3)
      fewer = fid.classifier_extractor('mnist', data_dir, cache, epochs=1)
    images = _digits_28()[0][:64]
    for reused in (again, fewer):
      self.assertAllClose(fid.activations(images, reused),
                          fid.activations(images, extractor), atol=1e-5)
    # Asked for more (the default 8 after a `test` preset's short one):
    # retrained and replaced, with a warning.
    with mock.patch.object(classifier_lib, 'train_classifier',
                           wraps=classifier_lib.train_classifier) as trained:
      with self.assertLogs(level='WARNING') as logs:
        fid.classifier_extractor('mnist', data_dir, cache, epochs=4)
    self.assertEqual(trained.call_count, 1)
    self.assertIn('trained for 3 epochs, fewer than the 4 asked for',
                  '\n'.join(logs.output))
    with open(os.path.join(folder, 'meta.json')) as f:
      self.assertEqual(json.load(f)['epochs'], 4)
    # Its reference activations are its own, not the memo of the old one's.
    retrained = fid.classifier_extractor('mnist', data_dir, cache, epochs=4)
    test_split = _digits_28()[0][1400:]
    self.assertAllClose(fid.reference_activations(retrained, test_split),
                        fid.activations(test_split, retrained), atol=1e-5)

    # A corrupt cache is retrained, with a warning.
    with open(os.path.join(folder, 'weights.h5'), 'wb') as f:
      f.write(b'not hdf5')
    with self.assertLogs(level='WARNING') as logs:
      fid.classifier_extractor('mnist', data_dir, cache, epochs=1)
    self.assertIn('corrupt', '\n'.join(logs.output))
    with open(os.path.join(folder, 'meta.json')) as f:
      self.assertEqual(json.load(f)['epochs'], 1)


class InceptionTest(tf.test.TestCase):
  """The Inception-v3 path on the real architecture (random weights: the
  trained ones cannot be downloaded here), from both local file kinds."""

  def test_keras_weights_and_saved_model(self):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
    keras.utils.set_random_seed(0)
    net = keras.applications.InceptionV3(
        include_top=False, pooling='avg', weights=None,
        input_shape=(fid.INCEPTION_SIZE, fid.INCEPTION_SIZE, 3))
    folder = self.create_tempdir().full_path
    h5 = os.path.join(folder, 'inception_notop.h5')
    net.save_weights(h5)

    class Pool3(tf.Module):  # TF-GAN's Inception module: a dict with pool_3.
      """A plain tf.Module, as TF-GAN's: its one function and the network's
      weights are saved, not the Keras layers (tracing each of the ~300
      layers' calls for a Keras SavedModel took 45 of this test's 75 s)."""

      def __init__(self, model):
        super().__init__()
        self.weights = list(model.weights)  # Tracked: what the graph reads.
        self._forward = lambda x: model(x, training=False)  # Not tracked.

      @tf.function(input_signature=[tf.TensorSpec(
          [None, fid.INCEPTION_SIZE, fid.INCEPTION_SIZE, 3], tf.float32)])
      def __call__(self, x):
        return {'pool_3': self._forward(x)}

    saved = os.path.join(folder, 'inception_saved_model')
    tf.saved_model.save(Pool3(net), saved)
    images = _digits_28()[0][:3]
    want = net(2.0 * tf.image.resize(
        tf.tile(tf.constant(images, tf.float32) / 255., [1, 1, 1, 3]),
        [fid.INCEPTION_SIZE, fid.INCEPTION_SIZE]) - 1.0).numpy()
    for path, name in ((h5, 'inception_v3:inception_notop.h5'),
                       (saved, 'inception_v3:inception_saved_model')):
      with self.subTest(name=name):
        extractor = fid.get_extractor('mnist', inception_path=path)
        self.assertEqual(extractor.name, name)
        act = fid.activations(images, extractor)
        self.assertEqual(act.shape, (3, 2048))
        self.assertAllClose(act, want, rtol=1e-4, atol=1e-4)
    bad = os.path.join(folder, 'not_inception.h5')
    with open(bad, 'wb') as f:
      f.write(b'not an h5 file')
    with self.assertRaisesRegex(UserError, 'cannot load Inception-v3 weights'):
      fid.get_extractor('mnist', inception_path=bad)


class BadInputTest(tf.test.TestCase):

  def test_validate_images(self):
    shape = (28, 28, 1)
    cases = [
        (np.zeros((4, 32, 32, 3), np.uint8), r'shape \[4, 32, 32, 3\], '
         r'expected \[N, 28, 28, 1\]'),
        (np.zeros((0, 28, 28, 1), np.uint8), 'empty'),
        (np.zeros((4, 28, 28, 1), np.int64), 'dtype int64'),
        (np.full((4, 28, 28, 1), 1.5, np.float32), r'values in \[1.5, 1.5\]'),
        (np.full((4, 28, 28, 1), -0.1), r'expected \[0, 1\]'),
        (np.full((4, 28, 28, 1), np.nan, np.float32), 'NaN'),
    ]
    for images, pattern in cases:
      with self.subTest(pattern=pattern):
        with self.assertRaisesRegex(UserError, pattern):
          fid.validate_images(images, shape)
    grey = fid.validate_images(np.zeros((2, 28, 28), np.float64), shape)
    self.assertEqual((grey.shape, grey.dtype), ((2, 28, 28, 1), np.float32))

  def test_bad_arguments(self):
    with self.assertRaisesRegex(UserError, 'toy dataset'):
      fid.evaluate_images(np.zeros((4, 2), np.float32), '25gaussians')
    with self.assertRaisesRegex(UserError, "unknown dataset 'imagenet'"):
      fid.evaluate_images(np.zeros((4, 28, 28, 1), np.uint8), 'imagenet')
    with self.assertRaisesRegex(UserError, 'hold only 4'):
      fid.evaluate_images(np.zeros((4, 28, 28, 1), np.uint8), 'mnist', n=10,
                          extractor=_projection_extractor())
    with self.assertRaisesRegex(UserError, 'Inception-v3 weights .* not found'):
      fid.get_extractor('fashion_mnist', inception_path='/no/such/inception')
    with self.assertRaisesRegex(UserError, 'more than 3 samples'):
      fid.precision_recall(np.zeros((3, 4)), np.zeros((10, 4)))


if __name__ == '__main__':
  tf.test.main()
