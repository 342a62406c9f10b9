"""Feature spaces for FID and precision/recall: the `FeatureExtractor`
type, batched `activations`, the cache folder, and Inception-v3 from local
weights (TF-Hub is not reachable everywhere). The project's own classifier
is in tilt_tf/classifier.py."""

import hashlib
import json
import os
import shutil
import tempfile

from absl import logging
import numpy as np
import tensorflow as tf

from tilt_tf import data
from tilt_tf import io_utils
from tilt_tf.errors import UserError

__all__ = ['INCEPTION_SIZE', 'FeatureExtractor', 'validate_images',
           'activations', 'cache_root', 'fingerprint', 'inception_extractor',
           'save_cached_model', 'load_cached_model']

INCEPTION_SIZE = 299


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

  def __init__(self, name, input_shape, fn, *, cache_dir=None, info=None):
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


def save_cached_model(folder, model, meta):
  """A feature network's weights + meta.json into the cache `folder`,
  written to a temp folder and renamed into place (a stale or corrupt copy
  is replaced; a crash leaves no half-written folder)."""
  parent = os.path.dirname(folder)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix='.tmp-' + os.path.basename(folder))
  try:
    model.save_weights(os.path.join(tmp, 'weights.h5'))
    io_utils.write_json(os.path.join(tmp, 'meta.json'), meta)
    if os.path.exists(folder):
      old = tmp + '.old'
      os.replace(folder, old)
      shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, folder)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def load_cached_model(folder, build, *, what, redo):
  """(features model, meta) from a cache folder `save_cached_model` wrote,
  or None: absent, refused by `build`, or damaged (a warning naming `what`
  and what happens instead, `redo`).

  build(meta) -> (the model whose weights were saved, its features model),
  or None to refuse this cache (it says why itself).
  """
  if not os.path.isdir(folder):
    return None
  try:
    with open(os.path.join(folder, 'meta.json')) as f:
      meta = json.load(f)
    built = build(meta)
    if built is None:
      return None
    model, features = built
    model.load_weights(os.path.join(folder, 'weights.h5'))
    return features, meta
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('%s cache %s is corrupt (%s: %s); %s', what, folder,
                    type(e).__name__, e, redo)
    return None


def fingerprint(images):
  """A short content hash of a set of images, independent of their order.

  (TFDS and the IDX files may store a split in different orders.)
  """
  images = np.ascontiguousarray(images)
  rows = sorted(hashlib.sha1(row.tobytes()).digest()
                for row in images.reshape(len(images), -1))
  h = hashlib.sha1(str((images.shape, images.dtype.str)).encode())
  h.update(b''.join(rows))
  return h.hexdigest()[:12]


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


