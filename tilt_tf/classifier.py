"""The project's FID feature classifier (as TF-GAN's own MNIST example):
a small convnet trained once per data set on its train split and cached in
`<cache>/classifiers/<dataset>_v<CLASSIFIER_VERSION>/` with its test
accuracy; features are its 128-unit penultimate layer ("pool")."""

import os
import time

from absl import logging
import tensorflow as tf

from tilt_tf import data
from tilt_tf import rng
from tilt_tf.features import FeatureExtractor
from tilt_tf.features import cache_root
from tilt_tf.features import fingerprint as _fingerprint
from tilt_tf.features import load_cached_model
from tilt_tf.features import save_cached_model

__all__ = ['CLASSIFIER_VERSION', 'DEFAULT_CLASSIFIER_EPOCHS', 'POOL_UNITS',
           'progress_line', 'train_classifier', 'classifier_extractor']

# Bump when the classifier's architecture or training recipe changes: a new
# version trains into a new cache folder and gets a new extractor name.
CLASSIFIER_VERSION = 1
DEFAULT_CLASSIFIER_EPOCHS = 8
POOL_UNITS = 128
_MIN_ACCURACY = {'fashion_mnist': 0.90, 'mnist': 0.98}


def _build_classifier(input_shape, num_classes, seed=0):
  """The v1 convnet: 2 x (conv 3x3 + maxpool), dense 128 "pool", logits.

  Returns:
    (model, features): tf_keras models sharing weights; `features` outputs
    the 128-unit penultimate layer.
  """
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  layers = keras.layers
  init = lambda i: keras.initializers.GlorotUniform(
      seed=rng.stream(seed, rng.CLASSIFIER_INIT, i))
  inputs = keras.Input(input_shape)
  h = inputs
  for i, channels in enumerate((32, 64)):
    h = layers.Conv2D(channels, 3, padding='same', activation='relu',
                      kernel_initializer=init(i))(h)
    h = layers.MaxPooling2D()(h)
  h = layers.Dropout(0.3, seed=rng.stream(seed, rng.CLASSIFIER_DROPOUT))(
      layers.Flatten()(h))
  pool = layers.Dense(POOL_UNITS, activation='relu', name='pool',
                      kernel_initializer=init(10))(h)
  logits = layers.Dense(num_classes, kernel_initializer=init(11))(
      layers.Dropout(0.3, seed=rng.stream(seed, rng.CLASSIFIER_DROPOUT, 1))(
          pool))
  return keras.Model(inputs, logits), keras.Model(inputs, pool)


def _fmt_eta(seconds):
  seconds = int(max(seconds, 0))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def progress_line(epoch, epochs, step, total, *, logs, rate):
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
                                       epochs * steps_per_epoch,
                                       logs=logs or {}, rate=rate))
      self.last = time.time()

    def on_train_batch_end(self, batch, logs=None):
      if time.time() - self.last >= every_seconds:
        self._log(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
      self._log(steps_per_epoch - 1, logs)

  return Progress()


def train_classifier(train_x, train_y, test_x, test_y, *, epochs=None,
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


def _load_cached_classifier(folder, test_fingerprint, epochs):
  """(features model, meta) from a cache folder, or None with a warning
  (trained for other data, or for fewer than `epochs` epochs: a `test`
  preset's one-epoch classifier never scores a later full run)."""

  def build(meta):
    if meta.get('test_fingerprint') != test_fingerprint:
      logging.warning('classifier cache %s was trained for other %s data; '
                      'retraining', folder, meta.get('dataset'))
      return None
    if int(meta.get('epochs', 0)) < epochs:
      logging.warning('classifier cache %s was trained for %s epochs, fewer '
                      'than the %d asked for; retraining', folder,
                      meta.get('epochs'), epochs)
      return None
    return _build_classifier(meta['input_shape'], meta['num_classes'])

  return load_cached_model(folder, build, what='classifier',
                           redo='retraining')


def classifier_extractor(dataset, data_dir=None, cache_dir=None, *,
                         epochs=None, retrain=False):
  """The project's domain classifier for `dataset`: cached, or trained now.

  Args:
    dataset: an image data set name (see data.IMAGE_DATASETS).
    data_dir: optional folder of local data files (see data.load_images).
    cache_dir: cache root (default: cache_root()); the classifier lives in
      `<root>/classifiers/<dataset>_v<CLASSIFIER_VERSION>/`.
    epochs: training budget (default 8): a cached classifier trained for
      fewer epochs is retrained (and replaced), one trained for as many or
      more is used.
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
  epochs = DEFAULT_CLASSIFIER_EPOCHS if epochs is None else int(epochs)
  cached = None if retrain else _load_cached_classifier(folder, test_fp,
                                                        epochs)
  if cached is None:
    train_x, train_y = data.load_images(dataset, 'train', data_dir,
                                        with_labels=True)
    logging.info('training the %s feature classifier on %d images (once; '
                 'cached in %s)', dataset, len(train_x), folder)
    model, features, meta = train_classifier(train_x, train_y, test_x, test_y,
                                             epochs=epochs)
    meta.update(dataset=dataset, test_fingerprint=test_fp)
    save_cached_model(folder, model, meta)
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


