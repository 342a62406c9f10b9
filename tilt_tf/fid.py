"""FID (through TF-GAN) and precision/recall in a feature space, offline.

Features come from one of two extractors, and every result names the one it
used (`feature_extractor`), because FIDs in different feature spaces are not
comparable:

  * `classifier:<dataset>_v1` -- a small convnet the project trains on the
    data set's train split (as TF-GAN's own MNIST example does), once, and
    caches in `<cache>/classifiers/<dataset>_v1/` with its test accuracy in
    `meta.json`. Features: its 128-unit penultimate layer ("pool").
  * `inception_v3:<path>` -- Inception-v3 pool3 (2048 features, the paper's
    and TF-GAN's choice) from local weights: TF-Hub is not reachable here.

FID is TF-GAN's `frechet_classifier_distance_from_activations`. TF-GAN 2.1.0
touches `tf.estimator` at import time, which TF >= 2.16 no longer has
(tensorflow/gan#55); `tfgan()` installs a stub first (see `_install_shim`).
Precision and recall follow Kynkaenniemi et al. 2019 (k-NN manifolds).

  images = np.load('samples.npz')['images']      # uint8 or float in [0, 1]
  fid.evaluate_images(images, 'fashion_mnist')
  # {'fid': ..., 'precision': ..., 'recall': ..., 'n': 10000,
  #  'feature_extractor': 'classifier:fashion_mnist_v1', ...}
"""

import hashlib
import json
import os
import shutil
import tempfile
import time

from absl import logging
import numpy as np
import tensorflow as tf

from tilt_tf import data
from tilt_tf import io_utils
from tilt_tf.errors import UserError

__all__ = [
    'CLASSIFIER_VERSION', 'FeatureExtractor', 'tfgan', 'cache_root',
    'validate_images', 'activations', 'fid_from_activations',
    'precision_recall', 'train_classifier', 'classifier_extractor',
    'inception_extractor', 'get_extractor', 'reference_activations',
    'evaluate_images',
]

# Bump when the classifier's architecture or training recipe changes: a new
# version trains into a new cache folder and gets a new extractor name.
CLASSIFIER_VERSION = 1
DEFAULT_CLASSIFIER_EPOCHS = 8
POOL_UNITS = 128
INCEPTION_SIZE = 299
_MIN_ACCURACY = {'fashion_mnist': 0.90, 'mnist': 0.98}

_TFGAN = None
_REFERENCE_MEMO = {}  # (extractor name, data fingerprint) -> activations.


# ----------------------------------------------------------------- TF-GAN shim


class _StubMeta(type):
  """Classes whose every attribute is another subclassable stub class.

  TF-GAN 2.1.0 only *names* estimator symbols at import time (base classes
  such as `tf.estimator.SessionRunHook`, default arguments such as
  `tf.estimator.ModeKeys.TRAIN`); its eval functions never use them.
  """

  def __getattr__(cls, name):
    if name.startswith('__'):
      raise AttributeError(name)
    stub = _StubMeta(name, (object,), {'__module__': 'tilt_tf.fid.estimator'})
    setattr(cls, name, stub)
    return stub


def _install_shim():
  """Gives TF a stub `tf.estimator` (and compat.v1's) where it has none."""
  # TFP (imported by TF-GAN first thing) rebuilds tf.compat.v1's module
  # wrapper; import it before patching so that the patch survives.
  import tensorflow_probability  # pylint: disable=g-import-not-at-top,unused-import
  for module in (tf, tf.compat.v1):
    if getattr(module, 'estimator', None) is None:
      module.estimator = _StubMeta('estimator', (object,),
                                   {'__module__': 'tilt_tf.fid'})


def tfgan():
  """Imports TF-GAN (with the estimator shim on TF >= 2.16) and returns it."""
  global _TFGAN
  if _TFGAN is None:
    _install_shim()
    import tensorflow_gan  # pylint: disable=g-import-not-at-top
    _TFGAN = tensorflow_gan
  return _TFGAN


# -------------------------------------------------------------------- metrics


def fid_from_activations(a, b):
  """Frechet distance between two sets of activations, via TF-GAN.

  Computed in float64 (TF-GAN's matrix square root is not accurate enough in
  float32 for near-identical sets).

  Args:
    a: array [N, D] of activations (e.g. of real images).
    b: array [M, D] of activations (e.g. of generated images).
  Returns:
    The FID as a Python float.
  """
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise UserError(f'activations must be [N, D] with the same D; got '
                    f'{a.shape} and {b.shape}')
  if len(a) < 2 or len(b) < 2:
    raise UserError(f'FID needs at least 2 samples per set; got {len(a)} '
                    f'and {len(b)}')
  fid = tfgan().eval.frechet_classifier_distance_from_activations(
      tf.constant(a), tf.constant(b))
  return float(fid)


def _pairwise_distances(x, y):
  """Euclidean distances [len(x), len(y)] (float32 via |x|^2 + |y|^2 - 2xy)."""
  xx = np.sum(np.square(x, dtype=np.float64), 1)[:, None]
  yy = np.sum(np.square(y, dtype=np.float64), 1)[None, :]
  d2 = xx + yy - 2.0 * (x.astype(np.float64) @ y.astype(np.float64).T)
  return np.sqrt(np.maximum(d2, 0.0))


def _knn_radii(x, k, block):
  """Distance from each row of x to its k-th nearest other row of x."""
  radii = np.empty(len(x), np.float64)
  for s in range(0, len(x), block):
    d = _pairwise_distances(x[s:s + block], x)
    # Column 0 after partitioning is the point itself (distance 0).
    radii[s:s + block] = np.partition(d, k, axis=1)[:, k]
  return radii


def _coverage(manifold, radii, queries, block):
  """Fraction of `queries` inside some ball (manifold[j], radii[j])."""
  inside = 0
  for s in range(0, len(queries), block):
    d = _pairwise_distances(queries[s:s + block], manifold)
    inside += int(np.sum(np.any(d <= radii[None, :], axis=1)))
  return inside / len(queries)


def precision_recall(real_act, fake_act, k=3, block=1000):
  """Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019).

  The manifold of a set is the union of balls around its points, each with
  the radius of the distance to that point's k-th nearest neighbour in the
  set. Precision = fraction of fake points inside the real manifold
  (quality); recall = fraction of real points inside the fake manifold
  (diversity). Distances are computed `block` rows at a time, so 10k x 10k
  needs ~80 MB, not the full matrix.

  Args:
    real_act: array [N, D], activations of real images.
    fake_act: array [M, D], activations of generated images.
    k: neighbourhood size (the paper's default is 3).
    block: rows of the distance matrix held in memory at once.
  Returns:
    (precision, recall) as Python floats in [0, 1].
  """
  real_act = np.asarray(real_act, np.float32)
  fake_act = np.asarray(fake_act, np.float32)
  if min(len(real_act), len(fake_act)) <= k:
    raise UserError(f'precision/recall with k={k} needs more than {k} '
                    f'samples per set; got {len(real_act)} and '
                    f'{len(fake_act)}')
  real_radii = _knn_radii(real_act, k, block)
  fake_radii = _knn_radii(fake_act, k, block)
  precision = _coverage(real_act, real_radii, fake_act, block)
  recall = _coverage(fake_act, fake_radii, real_act, block)
  return precision, recall


# ------------------------------------------------------------------- images


def validate_images(images, shape, what='images'):
  """Checks a batch of images and returns it as uint8 or float32.

  Args:
    images: array-like [N, H, W, C] (or [N, H, W] for one channel), uint8 in
      [0, 255] or float in [0, 1].
    shape: the expected (H, W, C).
    what: how to name the array in error messages (e.g. a file name).
  Returns:
    A numpy array [N, H, W, C], uint8 or float32.
  Raises:
    UserError: empty, wrong shape, wrong dtype, non-finite or out of range.
  """
  images = np.asarray(images)
  shape = tuple(shape)
  expect = f'[N, {", ".join(str(s) for s in shape)}]'
  if shape[-1] == 1 and images.shape[1:] == shape[:-1]:
    images = images[..., None]  # [N, H, W] grey images.
  if images.ndim != len(shape) + 1 or images.shape[1:] != shape:
    raise UserError(f'{what} have shape {list(images.shape)}, expected '
                    f'{expect} for this dataset')
  if len(images) == 0:
    raise UserError(f'{what} are empty (shape {list(images.shape)}); need at '
                    'least a few images')
  if images.dtype == np.uint8:
    return images
  if not np.issubdtype(images.dtype, np.floating):
    raise UserError(f'{what} have dtype {images.dtype}; use uint8 in '
                    '[0, 255] or float in [0, 1]')
  images = images.astype(np.float32, copy=False)
  if not np.all(np.isfinite(images)):
    raise UserError(f'{what} contain NaN or inf values')
  lo, hi = float(images.min()), float(images.max())
  if lo < 0.0 or hi > 1.0:
    raise UserError(f'{what} are float with values in [{lo:.4g}, {hi:.4g}], '
                    'expected [0, 1]; rescale or np.clip them (or store '
                    'uint8)')
  return images


# --------------------------------------------------------- feature extractors


class FeatureExtractor:
  """Maps float32 images in [0, 1] of one shape to feature vectors.

  Attributes:
    name: names the feature space in every result, e.g.
      'classifier:fashion_mnist_v1'.
    input_shape: the (H, W, C) it accepts.
    cache_dir: folder for cached reference activations, or None (memory
      only). Deleted together with the model it belongs to.
    info: dict of facts to report beside results (e.g. test accuracy).
  """

  def __init__(self, name, input_shape, fn, cache_dir=None, info=None):
    self.name = name
    self.input_shape = tuple(input_shape)
    self.cache_dir = cache_dir
    self.info = dict(info or {})
    self._fn = tf.function(
        fn, input_signature=[tf.TensorSpec([None] + list(input_shape),
                                           tf.float32)])

  def __call__(self, images):
    return self._fn(images)


def activations(images, extractor, batch_size=500):
  """Features of images, computed `batch_size` at a time.

  Args:
    images: array [N, H, W, C], uint8 or float in [0, 1] (validated).
    extractor: a FeatureExtractor.
    batch_size: images per forward pass.
  Returns:
    float32 numpy array [N, D].
  """
  images = validate_images(images, extractor.input_shape)
  out = []
  for s in range(0, len(images), batch_size):
    batch = data.to_float(tf.constant(images[s:s + batch_size]))
    out.append(extractor(batch).numpy())
  return np.concatenate(out).astype(np.float32)


def cache_root(cache_dir=None):
  """The cache folder: the argument, else $TILT_TF_CACHE, else ~/.cache/tilt_tf."""
  root = (cache_dir or os.environ.get('TILT_TF_CACHE') or
          os.path.join('~', '.cache', 'tilt_tf'))
  return os.path.abspath(os.path.expanduser(root))


def _fingerprint(images):
  """A short content hash of a set of images, independent of their order.

  (TFDS and the IDX files may store a split in different orders.)
  """
  images = np.ascontiguousarray(images)
  rows = sorted(hashlib.sha1(row.tobytes()).digest()
                for row in images.reshape(len(images), -1))
  h = hashlib.sha1(str((images.shape, images.dtype.str)).encode())
  h.update(b''.join(rows))
  return h.hexdigest()[:12]


def _build_classifier(input_shape, num_classes, seed=0):
  """The v1 convnet: 2 x (conv 3x3 + maxpool), dense 128 "pool", logits.

  Returns:
    (model, features): tf_keras models sharing weights; `features` outputs
    the 128-unit penultimate layer.
  """
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  layers = keras.layers
  init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + i)
  inputs = keras.Input(input_shape)
  h = inputs
  for i, channels in enumerate((32, 64)):
    h = layers.Conv2D(channels, 3, padding='same', activation='relu',
                      kernel_initializer=init(i))(h)
    h = layers.MaxPooling2D()(h)
  h = layers.Dropout(0.3, seed=seed)(layers.Flatten()(h))
  pool = layers.Dense(POOL_UNITS, activation='relu', name='pool',
                      kernel_initializer=init(10))(h)
  logits = layers.Dense(num_classes, kernel_initializer=init(11))(
      layers.Dropout(0.3, seed=seed + 1)(pool))
  return keras.Model(inputs, logits), keras.Model(inputs, pool)


def _fmt_eta(seconds):
  seconds = int(max(seconds, 0))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def progress_line(epoch, epochs, step, total, logs, rate):
  """One progress line of the classifier's training, e.g.
  'classifier epoch 2/8 step 600/3752 | accuracy=0.8521 loss=0.4105 |
  10.50 steps/s ETA 0:05:00'."""
  shown = ' '.join(f'{k}={float(v):.4g}' for k, v in sorted(logs.items())
                   if k in ('accuracy', 'loss'))
  eta = _fmt_eta((total - step) / max(rate, 1e-9))
  return (f'classifier epoch {epoch}/{epochs} step {step}/{total} | {shown} | '
          f'{rate:.2f} steps/s ETA {eta}')


def _progress_callback(keras, epochs, steps_per_epoch, every_seconds):
  """Logs progress_line at most every `every_seconds` and after each epoch
  (accuracy and loss are Keras's running means over the epoch)."""

  class Progress(keras.callbacks.Callback):

    def on_train_begin(self, logs=None):
      self.start = self.last = time.time()
      self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
      self.epoch = epoch

    def _log(self, batch, logs):
      step = self.epoch * steps_per_epoch + batch + 1
      rate = step / max(time.time() - self.start, 1e-9)
      logging.info('%s', progress_line(self.epoch + 1, epochs, step,
                                       epochs * steps_per_epoch, logs or {},
                                       rate))
      self.last = time.time()

    def on_train_batch_end(self, batch, logs=None):
      if time.time() - self.last >= every_seconds:
        self._log(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
      self._log(steps_per_epoch - 1, logs)

  return Progress()


def train_classifier(train_x, train_y, test_x, test_y, epochs=None,
                     batch_size=128, seed=0, log_every_seconds=30):
  """Trains the feature classifier on arrays.

  Args:
    train_x, test_x: uint8 images [N, H, W, C].
    train_y, test_y: int labels [N].
    epochs: passes over train_x (default DEFAULT_CLASSIFIER_EPOCHS).
    batch_size: training batch size.
    seed: seeds the initialisation, dropout and shuffling.
    log_every_seconds: a progress line (epoch, step, accuracy, steps/s, ETA)
      at most this often, and one after every epoch.
  Returns:
    (model, features, meta): the logits model, the feature model, and a dict
    with test_accuracy, epochs, seconds, num_classes, input_shape.
  """
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  epochs = DEFAULT_CLASSIFIER_EPOCHS if epochs is None else epochs
  num_classes = int(max(train_y.max(), test_y.max())) + 1
  model, features = _build_classifier(train_x.shape[1:], num_classes, seed)
  model.compile(keras.optimizers.Adam(1e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=['accuracy'])
  ds = (tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(len(train_x), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(lambda x, y: (data.to_float(x), y),
             num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE))
  steps_per_epoch = -(-len(train_x) // batch_size)
  logging.info('training the feature classifier: %d epochs of %d steps',
               epochs, steps_per_epoch)
  start = time.time()
  model.fit(ds, epochs=epochs, verbose=0, callbacks=[_progress_callback(
      keras, epochs, steps_per_epoch, log_every_seconds)])
  seconds = time.time() - start
  test = tf.data.Dataset.from_tensor_slices((test_x, test_y)).batch(500).map(
      lambda x, y: (data.to_float(x), y))
  _, accuracy = model.evaluate(test, verbose=0)
  meta = {'test_accuracy': float(accuracy), 'epochs': int(epochs),
          'seconds': round(seconds, 1), 'num_classes': num_classes,
          'input_shape': [int(s) for s in train_x.shape[1:]],
          'train_size': int(len(train_x)), 'test_size': int(len(test_x)),
          'version': CLASSIFIER_VERSION}
  return model, features, meta


def _load_cached_classifier(folder, test_fingerprint):
  """(features model, meta) from a cache folder, or None with a warning."""
  meta_path = os.path.join(folder, 'meta.json')
  if not os.path.isdir(folder):
    return None
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    if meta.get('test_fingerprint') != test_fingerprint:
      logging.warning('classifier cache %s was trained for other %s data; '
                      'retraining', folder, meta.get('dataset'))
      return None
    model, features = _build_classifier(meta['input_shape'],
                                        meta['num_classes'])
    model.load_weights(os.path.join(folder, 'weights.h5'))
    return features, meta
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('classifier cache %s is corrupt (%s: %s); retraining',
                    folder, type(e).__name__, e)
    return None


def _save_classifier(folder, model, meta):
  """Writes weights + meta.json to a temp folder, then renames it in place."""
  parent = os.path.dirname(folder)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix='.tmp-' + os.path.basename(folder))
  try:
    model.save_weights(os.path.join(tmp, 'weights.h5'))
    io_utils.write_json(os.path.join(tmp, 'meta.json'), meta)
    if os.path.exists(folder):  # A stale or corrupt copy: replace it.
      old = tmp + '.old'
      os.replace(folder, old)
      shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, folder)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def classifier_extractor(dataset, data_dir=None, cache_dir=None, epochs=None,
                         retrain=False):
  """The project's domain classifier for `dataset`: cached, or trained now.

  Args:
    dataset: an image data set name (see data.IMAGE_DATASETS).
    data_dir: optional folder of local data files (see data.load_images).
    cache_dir: cache root (default: cache_root()); the classifier lives in
      `<root>/classifiers/<dataset>_v<CLASSIFIER_VERSION>/`.
    epochs: training budget if it has to train (default 8).
    retrain: train even if a valid cache exists.
  Returns:
    A FeatureExtractor named 'classifier:<dataset>_v<version>'; its `info`
    holds the classifier's test accuracy.
  """
  tag = f'{dataset}_v{CLASSIFIER_VERSION}'
  folder = os.path.join(cache_root(cache_dir), 'classifiers', tag)
  test_x, test_y = data.load_images(dataset, 'test', data_dir,
                                    with_labels=True)
  test_fp = _fingerprint(test_x)
  cached = None if retrain else _load_cached_classifier(folder, test_fp)
  if cached is None:
    train_x, train_y = data.load_images(dataset, 'train', data_dir,
                                        with_labels=True)
    logging.info('training the %s feature classifier on %d images (once; '
                 'cached in %s)', dataset, len(train_x), folder)
    model, features, meta = train_classifier(train_x, train_y, test_x, test_y,
                                             epochs)
    meta.update(dataset=dataset, test_fingerprint=test_fp)
    _save_classifier(folder, model, meta)
    logging.info('classifier %s: test accuracy %.4f after %.0f s', tag,
                 meta['test_accuracy'], meta['seconds'])
  else:
    features, meta = cached
  minimum = _MIN_ACCURACY.get(dataset)
  if minimum and meta['test_accuracy'] < minimum:
    logging.warning('classifier %s has test accuracy %.4f < %.2f: its FIDs '
                    'are less meaningful (delete %s to retrain)', tag,
                    meta['test_accuracy'], minimum, folder)
  info = {'classifier_test_accuracy': meta['test_accuracy']}
  return FeatureExtractor(f'classifier:{tag}', meta['input_shape'],
                          lambda x: features(x, training=False),
                          cache_dir=folder, info=info)


def _load_inception(path):
  """A callable [B, 299, 299, 3] in [-1, 1] -> [B, 2048] from local weights."""
  if path.endswith('.h5'):
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
    try:
      net = keras.applications.InceptionV3(
          include_top=False, pooling='avg', weights=path,
          input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f'cannot load Inception-v3 weights {path} '
                      f'({type(e).__name__}); give the Keras "notop" '
                      'weights file or a SavedModel folder') from None
    return lambda x: net(x, training=False)
  try:
    module = tf.saved_model.load(path)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f'cannot load Inception-v3 SavedModel {path} '
                    f'({type(e).__name__})') from None

  def call(x):
    out = module(x) if callable(module) else (
        module.signatures['serving_default'](x))
    if isinstance(out, dict):
      out = out.get('pool_3', next(iter(out.values())))
    return tf.reshape(out, [tf.shape(x)[0], -1])

  return call


def inception_extractor(path, input_shape):
  """Inception-v3 pool3 features from local weights (TF-Hub is offline here).

  Args:
    path: a SavedModel folder taking [B, 299, 299, 3] float images in [-1, 1]
      and returning pool3 ([B, 2048] or a dict with 'pool_3', as TF-GAN's
      Inception module does), or a Keras InceptionV3 "notop" weights file
      (`.h5`).
    input_shape: (H, W, C) of the data set's images; grey images are
      repeated to 3 channels and all are resized to 299 x 299.
  Returns:
    A FeatureExtractor named 'inception_v3:<file name>' (memory-only cache).
  """
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.exists(path):
    raise UserError(f'Inception-v3 weights {path} not found; give a local '
                    'SavedModel folder or Keras .h5 file (TF-Hub is not '
                    'reachable offline), or use the classifier extractor')
  net = _load_inception(path)

  def fn(x):
    if x.shape[-1] == 1:
      x = tf.tile(x, [1, 1, 1, 3])
    x = tf.image.resize(x, [INCEPTION_SIZE, INCEPTION_SIZE], 'bilinear')
    return net(2.0 * x - 1.0)

  return FeatureExtractor(f'inception_v3:{os.path.basename(path)}',
                          input_shape, fn)


def _image_shape(dataset):
  """(H, W, C) of an image data set; UserError for toy or unknown sets."""
  if data.is_toy(dataset):
    raise UserError(f'{dataset!r} is a toy dataset; FID needs an image set '
                    f'({", ".join(data.IMAGE_DATASETS)})')
  return data.data_shape(dataset)


def get_extractor(dataset, data_dir=None, cache_dir=None, inception_path=None,
                  classifier_epochs=None):
  """Inception-v3 if `inception_path` is given, else the domain classifier.

  Args:
    dataset: image data set name.
    data_dir: optional folder of local data files.
    cache_dir: cache root (see cache_root()).
    inception_path: local Inception-v3 weights (see inception_extractor).
    classifier_epochs: training budget if the classifier has to train.
  Returns:
    A FeatureExtractor.
  """
  shape = _image_shape(dataset)
  if inception_path:
    return inception_extractor(inception_path, shape)
  return classifier_extractor(dataset, data_dir, cache_dir,
                              epochs=classifier_epochs)


def reference_activations(extractor, images, batch_size=500):
  """Activations of a reference set, cached in memory and in extractor.cache_dir.

  Args:
    extractor: a FeatureExtractor.
    images: the reference images (e.g. the test split), uint8.
    batch_size: images per forward pass.
  Returns:
    float32 [N, D].
  """
  key = (extractor.name, _fingerprint(images))
  if key in _REFERENCE_MEMO:
    return _REFERENCE_MEMO[key]
  path = (os.path.join(extractor.cache_dir, f'reference_{key[1]}.npz')
          if extractor.cache_dir else None)
  act = None
  if path and os.path.exists(path):
    try:
      with np.load(path) as f:
        act = f['activations']
    except Exception as e:  # pylint: disable=broad-except
      logging.warning('corrupt activation cache %s (%s); recomputing', path,
                      type(e).__name__)
  if act is None or len(act) != len(images):
    act = activations(images, extractor, batch_size)
    if path:
      io_utils.savez(path, activations=act)
  _REFERENCE_MEMO[key] = act
  return act


def evaluate_images(images, dataset, data_dir=None, n=None, reference='test',
                    extractor=None, cache_dir=None, batch_size=500, k=3,
                    what='images'):
  """FID, precision and recall of images against a split of the data set.

  The paper's protocol: 10,000 generated samples vs the test split.

  Args:
    images: [N, H, W, C] uint8 or float in [0, 1] (or [N, H, W] if C = 1).
    dataset: image data set name, e.g. 'fashion_mnist'.
    data_dir: optional folder of local data files.
    n: use the first n images (default: all).
    reference: 'test' or 'train'; the whole split is the reference.
    extractor: a FeatureExtractor (default: get_extractor(dataset, ...)).
    cache_dir: cache root for the classifier and reference activations.
    batch_size: images per forward pass.
    k: neighbourhood size for precision/recall.
    what: how to name `images` in error messages.
  Returns:
    dict with fid, precision, recall, n, n_reference, reference,
    feature_extractor, and the extractor's info (e.g. its test accuracy).
  """
  images = validate_images(images, _image_shape(dataset), what)
  if n is not None:
    if n < 1:
      raise UserError(f'number of samples must be positive, got {n}')
    if n > len(images):
      raise UserError(f'asked for {n} samples but {what} hold only '
                      f'{len(images)}')
    images = images[:n]
  if extractor is None:
    extractor = get_extractor(dataset, data_dir, cache_dir)
  real = data.load_images(dataset, reference, data_dir)
  real_act = reference_activations(extractor, real, batch_size)
  fake_act = activations(images, extractor, batch_size)
  precision, recall = precision_recall(real_act, fake_act, k=k)
  result = {
      'fid': fid_from_activations(real_act, fake_act),
      'precision': precision,
      'recall': recall,
      'n': int(len(images)),
      'n_reference': int(len(real)),
      'reference': f'{dataset}:{reference}',
      'feature_extractor': extractor.name,
  }
  result.update(extractor.info)
  return result
