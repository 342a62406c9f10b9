"""generators.loading: user models load safely, or fail in one line."""

import gc
import os
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
import tf_keras

from tilt_tf.errors import UserError
from tilt_tf.generators import loading


def _decoder(with_lambda=False):
  layers = [keras.Input((2,)), keras.layers.Dense(8, activation='relu'),
            keras.layers.Dense(3)]
  if with_lambda:
    layers.append(keras.layers.Lambda(lambda x: x * 2.0))
  return keras.Sequential(layers)


class _Sampler(tf.Module):

  def __init__(self):
    super().__init__()
    self.scale = tf.Variable(3.0)

  @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
  def decode(self, z):
    return {'x': z * self.scale}


def _one_line(e):
  return '\n' not in str(e)


class KerasModelTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = self.create_tempdir().full_path

  def test_plain_keras3_decoder_loads(self):
    model = _decoder()
    path = os.path.join(self.dir, 'decoder.keras')
    model.save(path)
    loaded = loading.load_keras_model(path)
    z = np.ones((4, 2), np.float32)
    self.assertAllClose(loaded(z), model(z))

  def test_lambda_refused_by_default(self):
    model = _decoder(with_lambda=True)
    path = os.path.join(self.dir, 'lambda.keras')
    model.save(path)
    with self.assertRaisesRegex(
        UserError, f'^{path} holds a Lambda layer \\(lambda.*\\): loading it runs Python '
        'code .*--allow_unsafe_model .*allow_unsafe=True') as caught:
      loading.load_keras_model(path)
    self.assertTrue(_one_line(caught.exception))
    loaded = loading.load_keras_model(path, allow_unsafe=True)
    z = np.ones((1, 2), np.float32)
    self.assertAllClose(loaded(z), model(z))

  def test_h5_lambda_refused_too(self):
    # tf_keras would run the stored bytecode even in safe mode.
    model = tf_keras.Sequential([tf_keras.Input((2,)),
                                 tf_keras.layers.Dense(3),
                                 tf_keras.layers.Lambda(lambda x: x + 1.0)])
    path = os.path.join(self.dir, 'lambda.h5')
    model.save(path)
    with self.assertRaisesRegex(UserError, r'holds a Lambda layer \(lambda'):
      loading.load_keras_model(path)
    loaded = loading.load_keras_model(path, allow_unsafe=True)
    z = np.ones((1, 2), np.float32)
    self.assertAllClose(loaded(z), model(z))
    plain = tf_keras.Sequential([tf_keras.Input((2,)),
                                 tf_keras.layers.Dense(3)])
    plain_path = os.path.join(self.dir, 'plain.h5')
    plain.save(plain_path)
    self.assertAllClose(loading.load_keras_model(plain_path)(z), plain(z))

  def test_each_library_reads_its_own_files(self):
    """Keras 3 and tf_keras both write .keras and .h5; the version the
    file records picks the loader (Keras 3 refuses tf_keras' .keras)."""
    z = np.ones((2, 2), np.float32)
    for lib, cls in ((keras, keras.Model), (tf_keras, tf_keras.Model)):
      for ext in ('.keras', '.h5'):
        with self.subTest(lib=lib.__name__, ext=ext):
          model = lib.Sequential([lib.Input((2,)), lib.layers.Dense(3)])
          path = os.path.join(self.dir, f'{lib.__name__}{ext}')
          model.save(path)
          self.assertEqual(loading.keras_file_version(path),
                           lib.__version__)
          loaded = loading.load_keras_model(path)
          self.assertIsInstance(loaded, cls)
          self.assertAllClose(loaded(z), model(z))

  def test_stored_code_never_runs_when_refused(self):
    """A Lambda nested in a sub-model, in every format: refused before the
    file is deserialized (its code would write the marker); with
    allow_unsafe it loads and its code runs."""
    marker = os.path.join(self.dir, 'ran')
    self.enter_context(mock.patch.dict(os.environ, {'TILT_TF_MARKER': marker}))
    code = lambda x: (open(__import__('os').environ['TILT_TF_MARKER'],  # pylint: disable=g-long-lambda
                           'a').close(), x)[1]
    for lib in (keras, tf_keras):
      for ext in ('.keras', '.h5'):
        with self.subTest(lib=lib.__name__, ext=ext):
          inner = lib.Sequential([lib.Input((3,)), lib.layers.Lambda(code)])
          model = lib.Sequential([lib.Input((2,)), lib.layers.Dense(3),
                                  inner])
          path = os.path.join(self.dir, f'nested_{lib.__name__}{ext}')
          model.save(path)
          os.remove(marker)  # Building the model ran it.
          with self.assertRaisesRegex(UserError, 'holds a Lambda layer'):
            loading.load_keras_model(path)
          self.assertFalse(os.path.exists(marker))
          loading.load_keras_model(path, allow_unsafe=True)
          self.assertTrue(os.path.exists(marker))
          os.remove(marker)

  def test_keras_on_another_backend_is_one_line(self):
    path = os.path.join(self.dir, 'decoder.keras')
    _decoder().save(path)
    with mock.patch.object(keras.backend, 'backend', return_value='jax'):
      with self.assertRaisesRegex(UserError, 'KERAS_BACKEND') as caught:
        loading.load_keras_model(path)
    self.assertTrue(_one_line(caught.exception))

  def test_bad_files(self):
    text = os.path.join(self.dir, 'text.keras')
    with open(text, 'w') as f:
      f.write('hello')
    text_h5 = os.path.join(self.dir, 'text.h5')
    with open(text_h5, 'w') as f:
      f.write('hello')
    truncated = os.path.join(self.dir, 'truncated.keras')
    _decoder().save(truncated)
    with open(truncated, 'rb') as f:
      raw = f.read()
    with open(truncated, 'wb') as f:
      f.write(raw[:len(raw) // 2])
    cases = [
        (os.path.join(self.dir, 'missing.keras'), 'not found'),
        (text, r'is not a valid .keras file \(not a zip archive\)'),
        (truncated, 'not a valid .keras file|cannot load'),
        (text_h5, 'is not a valid .h5 model file'),
        (self.dir, 'is a folder'),
        (os.path.join(self.dir, 'text.keras'), 'not a zip'),
    ]
    weird = os.path.join(self.dir, 'model.pkl')
    with open(weird, 'w') as f:
      f.write('x')
    cases.append((weird, "unknown model format '.pkl'"))
    for path, pattern in cases:
      with self.subTest(path=path):
        with self.assertRaisesRegex(UserError, pattern) as caught:
          loading.load_keras_model(path)
        self.assertTrue(_one_line(caught.exception))


class SavedModelTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.path = os.path.join(tf.compat.v1.test.get_temp_dir(), 'sampler')
    module = _Sampler()
    tf.saved_model.save(module, cls.path,
                        signatures={'decode': module.decode})

  def test_signature_runs(self):
    fn = loading.load_saved_model_signature(self.path, 'decode')
    gc.collect()  # The loaded object stays alive with the function.
    out = fn(z=tf.ones([2, 2]))
    self.assertAllClose(out['x'], 3.0 * np.ones((2, 2)))
    # The only signature is the default.
    fn = loading.load_saved_model_signature(self.path)
    self.assertAllClose(fn(z=tf.ones([1, 2]))['x'], [[3.0, 3.0]])

  def test_wrong_signature_lists_the_available_ones(self):
    with self.assertRaisesRegex(
        UserError, f"^{self.path} has no signature 'sample'; it has: decode$"):
      loading.load_saved_model_signature(self.path, 'sample')

  def test_not_a_saved_model(self):
    empty = self.create_tempdir().full_path
    damaged = self.create_tempdir().full_path
    with open(os.path.join(damaged, 'saved_model.pb'), 'wb') as f:
      f.write(b'\x00garbage\xff' * 10)
    cases = [
        (os.path.join(empty, 'missing'), 'not found'),
        (empty, r'is not a SavedModel folder \(no saved_model.pb'),
        (damaged, 'cannot load the SavedModel .* it is damaged'),
    ]
    for path, pattern in cases:
      with self.subTest(path=path):
        with self.assertRaisesRegex(UserError, pattern) as caught:
          loading.load_saved_model_signature(path)
        self.assertTrue(_one_line(caught.exception))


if __name__ == '__main__':
  tf.test.main()
