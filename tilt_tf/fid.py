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
import os

from absl import logging
import numpy as np
import tensorflow as tf

from tilt_tf import data
from tilt_tf import io_utils
from tilt_tf.classifier import classifier_extractor
from tilt_tf.classifier import CLASSIFIER_VERSION
from tilt_tf.classifier import DEFAULT_CLASSIFIER_EPOCHS
from tilt_tf.classifier import POOL_UNITS
from tilt_tf.classifier import progress_line
from tilt_tf.classifier import train_classifier
from tilt_tf.errors import UserError
from tilt_tf.features import activations
from tilt_tf.features import cache_root
from tilt_tf.features import FeatureExtractor
from tilt_tf.features import fingerprint as _fingerprint
from tilt_tf.features import inception_extractor
from tilt_tf.features import INCEPTION_SIZE
from tilt_tf.features import validate_images

__all__ = [
    'CLASSIFIER_VERSION', 'FeatureExtractor', 'tfgan', 'cache_root',
    'validate_images', 'activations', 'fid_from_activations',
    'precision_recall', 'frechet_scorer', 'train_classifier',
    'classifier_extractor', 'inception_extractor', 'get_extractor', 'reference_activations',
    'evaluate_images', 'progress_line', 'INCEPTION_SIZE', 'POOL_UNITS',
    'DEFAULT_CLASSIFIER_EPOCHS',
]

# Re-exported from tilt_tf/features.py and tilt_tf/classifier.py.
_REEXPORTED = (CLASSIFIER_VERSION, DEFAULT_CLASSIFIER_EPOCHS, POOL_UNITS,
               INCEPTION_SIZE, FeatureExtractor, activations, cache_root,
               classifier_extractor, inception_extractor, progress_line,
               train_classifier, validate_images)

_TFGAN = None
_REFERENCE_MEMO = {}  # (extractor name, data fingerprint, stamp) -> activations.
_RADII_MEMO = {}  # (activations' digest, shape, k, block) -> k-NN radii.


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


def _reference_radii(x, k, block):
  """_knn_radii of a reference set, remembered: an eval scores base, tilted
  and distilled samples against the same 10,000 real images, whose radii
  (the N x N distances) cost more than the rest of the three scores."""
  key = (hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest(),
         x.shape, k, block)
  if key not in _RADII_MEMO:
    if len(_RADII_MEMO) >= 4:
      _RADII_MEMO.pop(next(iter(_RADII_MEMO)))
    _RADII_MEMO[key] = _knn_radii(x, k, block)
  return _RADII_MEMO[key]


def _coverage(manifold, radii, queries, block):
  """Fraction of `queries` inside some ball (manifold[j], radii[j])."""
  inside = 0
  for s in range(0, len(queries), block):
    d = _pairwise_distances(queries[s:s + block], manifold)
    inside += int(np.sum(np.any(d <= radii[None, :], axis=1)))
  return inside / len(queries)


def frechet_scorer(make_extractor, reference_images, name):
  """Samples -> Fréchet distance to `reference_images` in the features of
  `make_extractor()` (called, and the reference's activations computed, on
  first use); lower is better. `score.name` = `name` (the monitor logs it).
  """
  state = {}

  def score(samples):
    if not state:
      state['extractor'] = make_extractor()
      state['real'] = reference_activations(state['extractor'],
                                            reference_images)
    return fid_from_activations(state['real'],
                                activations(samples, state['extractor']))

  score.name = name
  return score


def precision_recall(real_act, fake_act, k=3, block=1000):
  """Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019).

  The manifold of a set is the union of balls around its points, each with
  the radius of the distance to that point's k-th nearest neighbour in the
  set. Precision = fraction of fake points inside the real manifold
  (quality); recall = fraction of real points inside the fake manifold
  (diversity). Distances are computed `block` rows at a time, so 10k x 10k
  needs ~80 MB, not the full matrix. The real set's radii are remembered
  for the next calls with the same real set (the last four sets).

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
  real_radii = _reference_radii(real_act, k, block)
  fake_radii = _knn_radii(fake_act, k, block)
  precision = _coverage(real_act, real_radii, fake_act, block)
  recall = _coverage(fake_act, fake_radii, real_act, block)
  return precision, recall


# ------------------------------------------------------------------- images


# --------------------------------------------------------- feature extractors


def _image_shape(dataset):
  """(H, W, C) of an image data set; UserError for toy or unknown sets."""
  if data.is_toy(dataset):
    raise UserError(f'{dataset!r} is a toy dataset; FID needs an image set '
                    f'({", ".join(data.IMAGE_DATASETS)})')
  return data.data_shape(dataset)


def get_extractor(dataset, data_dir=None, *, cache_dir=None,
                  inception_path=None, classifier_epochs=None):
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
  # The cached model's meta.json stamp: a classifier retrained in this
  # process (tilt_tf/classifier.py) is not served its predecessor's memo.
  meta = (os.path.join(extractor.cache_dir, 'meta.json')
          if extractor.cache_dir else '')
  key = (extractor.name, _fingerprint(images),
         os.stat(meta).st_mtime_ns if os.path.exists(meta) else None)
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


def evaluate_images(images, dataset, data_dir=None, *, n=None, reference='test',
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
    extractor = get_extractor(dataset, data_dir, cache_dir=cache_dir)
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
