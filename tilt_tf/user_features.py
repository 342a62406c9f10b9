"""A feature space for a user's own images, where no built-in classifier
exists: a small convnet fitted once to the user's training images, for the
§5.3 monitor and the eval stage (docs/user_monitor.md, issue #36).

A pixel-space energy distance mostly measures overall brightness and ranks
energies unlike the FID (docs/user_decoder_gain.md). Measured against the
Fashion-MNIST classifier FID on a user's decoder
(benchmarks/monitor_agreement.py, docs/user_monitor.md), the Fréchet distance
in the contrastive net's features ranks that decoder's sample sets, and one
energy's sampling scales, most like the FID; the rotation net's less, the
energy distance, the autoencoder's and a random net's features least.
Objectives (`OBJECTIVES`):

  * 'contrastive' (the default): two random views of an image (a resized
    crop of 50-100 % of it, flipped or not, contrast and brightness
    jittered) are matched among the other images' views (SimCLR's NT-Xent
    loss, Chen et al., ICML 2020); no labels. It ranks sample sets (and the
    sampling energy scales) most like the FID.
  * 'rotation': predict which of 4 rotations (0/90/180/270 degrees) an
    image went through (Gidaris et al., ICLR 2018).
  * 'autoencoder': the encoder of a denoising autoencoder.
  * 'random': the same convnet, randomly initialised (no fitting).

The network is fitted on the training images only (never the held-out
slice the scores compare with), cached in
`<cache>/user_features/<objective>_v<VERSION>_s<seed>_t<steps>_<fp>/`, and
returned as a `features.FeatureExtractor`, so `fid.activations`,
`fid.fid_from_activations` and `fid.precision_recall` work with it:

  ext = user_features.extractor(train_images)
  score = user_features.feature_scorer(train_images, held_out)  # 'fd_learned'
  score(samples)  # lower is better
"""

import concurrent.futures
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

from tilt_tf import data
from tilt_tf.errors import UserError
from tilt_tf.features import cache_root
from tilt_tf.features import FeatureExtractor
from tilt_tf.features import fingerprint
from tilt_tf.features import load_cached_model
from tilt_tf.features import save_cached_model
from tilt_tf.features import validate_images

__all__ = ['VERSION', 'OBJECTIVES', 'DEFAULT_OBJECTIVE', 'FEATURES',
           'supports', 'fit', 'extractor', 'feature_scorer',
           'evaluate_images']

# Bump when the network or its fitting changes: a new cache folder and name.
VERSION = 1
OBJECTIVES = ('rotation', 'contrastive', 'autoencoder', 'random')
DEFAULT_OBJECTIVE = 'contrastive'
FEATURES = 128
MIN_SIDE = 16   # Smaller images (and vectors) keep the energy distance.
MAX_SIDE = 64   # Larger images are resized down to this inside the net.
MAX_IMAGES = 20_000  # Fitted on at most this many (a seeded subset).
DEFAULT_STEPS = 800  # Measured: docs/user_monitor.md.
BATCH = 64
_MEMO = {}  # cache folder -> FeatureExtractor.


def supports(shape):
  """Whether data of this per-example shape gets learned features: images
  [H, W, C] with H, W >= MIN_SIDE."""
  shape = tuple(shape)
  return len(shape) == 3 and min(shape[:2]) >= MIN_SIDE and shape[2] >= 1


def _build(input_shape, objective, seed):
  """(features model, training head or None): tf_keras models.

  Trunk: (resize to a square <= MAX_SIDE), 3 x conv 3x3 stride 2 (32, 64,
  128), dense FEATURES relu. Rotation: a 4-way linear head; autoencoder: a
  transposed-conv decoder back to the (square) input.
  """
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  layers = keras.layers
  init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + i)
  h_in, w_in, channels = input_shape
  side = min(max(h_in, w_in), MAX_SIDE)
  inputs = keras.Input(input_shape)
  h = inputs
  if (h_in, w_in) != (side, side):
    h = layers.Resizing(side, side)(h)
  square = h
  for i, c in enumerate((32, 64, 128)):
    h = layers.Conv2D(c, 3, strides=2, padding='same', activation='relu',
                      kernel_initializer=init(i))(h)
  grid = h.shape[1:]
  feats = layers.Dense(FEATURES, activation='relu', name='features',
                       kernel_initializer=init(10))(layers.Flatten()(h))
  features = keras.Model(inputs, feats)
  if objective == 'rotation':
    head = keras.Model(inputs, layers.Dense(4, kernel_initializer=init(11))(
        feats))
  elif objective == 'autoencoder':
    h = layers.Dense(int(np.prod(grid)), activation='relu',
                     kernel_initializer=init(12))(feats)
    h = layers.Reshape(grid)(h)
    for i, c in enumerate((64, 32)):
      h = layers.Conv2DTranspose(c, 3, strides=2, padding='same',
                                 activation='relu',
                                 kernel_initializer=init(13 + i))(h)
    h = layers.Conv2DTranspose(channels, 3, strides=2, padding='same',
                               activation='sigmoid',
                               kernel_initializer=init(15))(h)
    h = layers.Resizing(side, side)(h)
    head = keras.Model(inputs, [h, square])
  elif objective == 'contrastive':  # A projection head on the features.
    h = layers.Dense(FEATURES, activation='relu',
                     kernel_initializer=init(16))(feats)
    head = keras.Model(inputs, layers.Dense(64, kernel_initializer=init(17))(h))
  else:
    head = None
  return features, head


def _train_step(objective, head, x_all, optimizer):
  """The compiled step of `fit`: (batch indices, noise seed) -> (loss,
  metric): rotation (4-way cross-entropy, accuracy) or denoising (MSE)."""

  @tf.function
  def step(idx, noise_seed):
    x = tf.gather(x_all, idx)
    with tf.GradientTape() as tape:
      if objective == 'rotation':
        x4 = tf.concat([tf.image.rot90(x, k) for k in range(4)], 0)
        labels = tf.repeat(tf.range(4), tf.shape(x)[0])
        logits = head(x4, training=True)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        metric = tf.reduce_mean(tf.cast(
            tf.equal(tf.argmax(logits, -1, tf.int32), labels), tf.float32))
      elif objective == 'contrastive':
        seeds = tf.random.experimental.stateless_split(noise_seed, 2)
        z = [tf.math.l2_normalize(head(_view(x, seeds[i]), training=True), -1)
             for i in range(2)]
        loss, metric = _nt_xent(z[0], z[1])
      else:  # A denoising autoencoder: reconstruct x from x + noise.
        noisy = tf.clip_by_value(x + 0.1 * tf.random.stateless_normal(
            tf.shape(x), noise_seed), 0.0, 1.0)
        recon, _ = head(noisy, training=True)
        _, clean = head(x, training=True)
        loss = metric = tf.reduce_mean(tf.square(recon - clean))
    variables = head.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss, metric

  return step


def _view(x, seed, min_side=0.7):
  """A random view of each image: a resized crop (side 70-100 %, i.e.
  50-100 % of the area), flipped half the time, contrast and brightness
  jittered."""
  n = tf.shape(x)[0]
  u = tf.random.stateless_uniform([n, 6], seed)
  side = min_side + (1.0 - min_side) * u[:, 0]
  y0, x0 = u[:, 1] * (1.0 - side), u[:, 2] * (1.0 - side)
  x1 = x0 + side
  flip = u[:, 3] < 0.5
  boxes = tf.stack([y0, tf.where(flip, x1, x0), y0 + side,
                    tf.where(flip, x0, x1)], -1)
  v = tf.image.crop_and_resize(x, boxes, tf.range(n), tf.shape(x)[1:3])
  mean = tf.reduce_mean(v, [1, 2, 3], keepdims=True)
  contrast = tf.reshape(0.6 + 0.8 * u[:, 4], [-1, 1, 1, 1])
  bright = tf.reshape(0.4 * u[:, 5] - 0.2, [-1, 1, 1, 1])
  return tf.clip_by_value((v - mean) * contrast + mean + bright, 0.0, 1.0)


def _nt_xent(z1, z2, temperature=0.5):
  """SimCLR's loss for unit vectors z1[i] ~ z2[i]; (loss, top-1 accuracy of
  finding each view's partner among the other 2n - 1)."""
  z = tf.concat([z1, z2], 0)
  n = tf.shape(z1)[0]
  logits = tf.matmul(z, z, transpose_b=True) / temperature
  logits -= 1e9 * tf.eye(2 * n)
  labels = tf.concat([tf.range(n, 2 * n), tf.range(n)], 0)
  loss = tf.reduce_mean(
      tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
  hit = tf.equal(tf.argmax(logits, -1, tf.int32), labels)
  return loss, tf.reduce_mean(tf.cast(hit, tf.float32))


def fit(images, objective=DEFAULT_OBJECTIVE, seed=0, steps=DEFAULT_STEPS,
        batch_size=BATCH, log_every_seconds=10):
  """Fits the feature network to `images` (no caching; see `extractor`).

  Args:
    images: [N, H, W, C] uint8 or float in [0, 1], the training images.
    objective: one of OBJECTIVES.
    seed: seeds the weights, the batches and the noise.
    steps: Adam steps of `batch_size` images ('random': none).
    batch_size: images per step (rotation: each in its 4 rotations).
    log_every_seconds: a progress line at most this often.
  Returns:
    (features model, head model or None, meta dict with the time taken).
  """
  if objective not in OBJECTIVES:
    raise UserError(f'unknown feature objective {objective!r}; choose from '
                    f'{", ".join(OBJECTIVES)}')
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  images = np.asarray(images)
  if len(images) > MAX_IMAGES:
    images = images[np.sort(rng.choice(len(images), MAX_IMAGES, False))]
  x_all = tf.constant(data.as_float(images))
  features, head = _build(images.shape[1:], objective, seed)
  start, cpu = time.time(), time.process_time()
  steps = 0 if objective == 'random' else int(steps)
  optimizer = keras.optimizers.Adam(1e-3)

  step = _train_step(objective, head, x_all, optimizer)

  order, last = np.array([], np.int64), time.time()
  for i in range(steps):
    if len(order) < batch_size:
      order = np.concatenate([order, rng.permutation(len(images))])
    idx, order = order[:batch_size], order[batch_size:]
    loss, metric = step(tf.constant(idx), tf.constant([seed, i], tf.int32))
    if time.time() - last >= log_every_seconds or i + 1 == steps:
      last = time.time()
      rate = (i + 1) / max(last - start, 1e-9)
      logging.info('user features (%s) step %d/%d | loss=%.4g %s=%.4g | '
                   '%.1f steps/s ETA %.0f s', objective, i + 1, steps,
                   float(loss), 'mse' if objective == 'autoencoder' else
                   'accuracy', float(metric), rate, (steps - i - 1) / rate)
  meta = {'objective': objective, 'seed': int(seed), 'steps': steps,
          'batch_size': int(batch_size), 'version': VERSION,
          'input_shape': [int(s) for s in images.shape[1:]],
          'train_size': int(len(images)),
          'seconds': round(time.time() - start, 1),
          'cpu_seconds': round(time.process_time() - cpu, 1)}
  if steps:
    meta['final_loss'] = round(float(loss), 5)
  return features, head, meta


def _outside_strategy(fn, *args):
  """fn(*args) under the default strategy. tf.distribute scopes are
  thread-local, so inside a strategy's scope (e.g. `tilt()` called in one)
  it runs in a fresh thread: the net's variables stay plain and its custom
  training loop runs as on one device."""
  if not tf.distribute.has_strategy():
    return fn(*args)
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    return pool.submit(fn, *args).result()


def _load(folder, seed):
  """(features model, meta) from a cache folder, or None with a warning."""

  def build(meta):
    features, _ = _build(tuple(meta['input_shape']), 'random', seed)
    return features, features  # The features net's weights were saved.

  return load_cached_model(folder, build, what='user feature',
                           redo='refitting')


def extractor(train_images, seed=0, objective=DEFAULT_OBJECTIVE,
              cache_dir=None, steps=None):
  """The learned feature space of `train_images`: cached, or fitted now.

  Args:
    train_images: [N, H, W, C] uint8 or float in [0, 1]: the images the
      energy trains on (never the held-out slice a score compares with).
    seed: seeds the fit; part of the cache key.
    objective: one of OBJECTIVES.
    cache_dir: cache root (default: features.cache_root()).
    steps: fitting budget (default DEFAULT_STEPS).
  Returns:
    A FeatureExtractor named
    'learned:<objective>_v<VERSION>_s<seed>_t<steps>_<fingerprint>';
    `info` holds the objective, the fit's seconds and whether it was cached.
  """
  images = np.asarray(train_images)
  if not supports(images.shape[1:]):
    raise UserError(f'learned features need images [N, H, W, C] with H, W '
                    f'>= {MIN_SIDE}; got shape {list(images.shape)}')
  images = validate_images(images, images.shape[1:], 'training images')
  steps = 0 if objective == 'random' else (
      DEFAULT_STEPS if steps is None else int(steps))
  # The name is the feature space: it changes with anything that changes
  # the weights (fid.reference_activations memoizes by name).
  tag = f'{objective}_v{VERSION}_s{seed}_t{steps}_{fingerprint(images)}'
  folder = os.path.join(cache_root(cache_dir), 'user_features', tag)
  if folder in _MEMO:
    return _MEMO[folder]
  cached = _outside_strategy(_load, folder, seed)
  if cached is None:
    logging.info('fitting the %s feature network on %d training images '
                 '(once; cached in %s)', objective, len(images), folder)
    features, _, meta = _outside_strategy(fit, images, objective, seed, steps)
    save_cached_model(folder, features, meta)
    logging.info('user features %s: fitted in %.1f s', tag, meta['seconds'])
    loaded = False
  else:
    features, meta = cached
    loaded = True
  info = {'feature_objective': objective,
          'feature_fit_seconds': meta['seconds'],
          'feature_train_size': meta['train_size'],
          'feature_loaded_from_cache': loaded}
  result = FeatureExtractor(f'learned:{tag}', images.shape[1:],
                            lambda x: features(x, training=False),
                            cache_dir=folder, info=info)
  _MEMO[folder] = result
  return result


def feature_scorer(train_images, reference_images, seed=0,
                   objective=DEFAULT_OBJECTIVE, cache_dir=None, steps=None):
  """Samples -> Fréchet distance to `reference_images` in the features
  fitted to `train_images` (fitted or loaded on first use); lower is
  better. The same interface as `monitor_lib.fid_scorer`."""
  from tilt_tf import fid  # pylint: disable=g-import-not-at-top
  return fid.frechet_scorer(
      lambda: extractor(train_images, seed, objective, cache_dir, steps),
      reference_images, 'fd_learned')


def evaluate_images(samples, feature_extractor, reference_images, k=3):
  """{'fd_learned', 'precision', 'recall', ...} of samples against the
  reference images in a learned feature space (see `extractor`)."""
  from tilt_tf import fid  # pylint: disable=g-import-not-at-top
  real = fid.reference_activations(feature_extractor, reference_images)
  fake = fid.activations(samples, feature_extractor)
  precision, recall = fid.precision_recall(real, fake, k=k)
  return {'fd_learned': fid.fid_from_activations(real, fake),
          'precision': precision, 'recall': recall,
          'n_reference': int(len(reference_images)),
          'feature_extractor': feature_extractor.name,
          'feature_objective': feature_extractor.info['feature_objective']}
