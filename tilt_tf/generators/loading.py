"""Loads user-supplied models safely, with one-line errors.

  model = loading.load_keras_model('decoder.keras')            # Keras 3
  model = loading.load_keras_model('decoder.h5')               # tf_keras (Keras 2)
  fn = loading.load_saved_model_signature('export/1', 'sample_base')

A model file that holds Python code (a `Lambda` layer) runs that code when
it is loaded, so it is refused unless the caller trusts it: `--allow_unsafe_
model` on the command line, `allow_unsafe=True` from Python.
"""

import json
import os
import zipfile

from tilt_tf.errors import UserError

__all__ = ['load_keras_model', 'load_saved_model_signature']

_KERAS3 = ('.keras',)
_H5 = ('.h5', '.hdf5')


def _short(e):
  text = ' '.join(str(e).split())
  return f'{type(e).__name__}: {text[:200]}'


def _unsafe_refused(path, why):
  return UserError(
      f'{path} holds {why}: loading it runs Python code stored in the file, '
      'so it is refused by default; if you trust the file, pass '
      '--allow_unsafe_model (command line) or allow_unsafe=True (Python)')


def _check_file(path, kinds):
  if not os.path.exists(path):
    raise UserError(f'model file {path} not found')
  if os.path.isdir(path):
    raise UserError(f'{path} is a folder, not a {" or ".join(kinds)} file (a '
                    'SavedModel folder loads with load_saved_model_signature)')


def _lambda_layers(config):
  """Names of Lambda layers anywhere in a Keras model config (a JSON tree)."""
  found = []
  if isinstance(config, dict):
    if config.get('class_name') == 'Lambda':
      found.append(str(config.get('config', {}).get('name', 'lambda')))
    for v in config.values():
      found += _lambda_layers(v)
  elif isinstance(config, list):
    for v in config:
      found += _lambda_layers(v)
  return found


def _load_keras3(path, allow_unsafe):
  if not zipfile.is_zipfile(path):
    raise UserError(f'{path} is not a valid .keras file (not a zip archive); '
                    'save the model with model.save("model.keras")')
  import keras  # pylint: disable=g-import-not-at-top
  try:
    return keras.saving.load_model(path, compile=False,
                                   safe_mode=not allow_unsafe)
  except ValueError as e:
    if 'safe_mode' in str(e) or 'unsafe' in str(e):
      kind = ('a Lambda layer' if 'Lambda' in str(e)
              else 'code Keras refuses in safe mode')
      raise _unsafe_refused(path, kind) from None
    raise UserError(f'cannot load {path} as a Keras 3 model '
                    f'({_short(e)})') from None
  except (TypeError, KeyError, OSError, zipfile.BadZipFile) as e:
    raise UserError(f'cannot load {path} as a Keras 3 model '
                    f'({_short(e)})') from None


def _load_h5(path, allow_unsafe):
  import h5py  # pylint: disable=g-import-not-at-top
  try:
    with h5py.File(path, 'r') as f:
      raw = f.attrs.get('model_config')
  except OSError as e:
    raise UserError(f'{path} is not a valid .h5 model file ({_short(e)}); '
                    'save the model with model.save("model.h5")') from None
  if raw is None:
    raise UserError(f'{path} holds no model (weights only?); save the whole '
                    'model with model.save("model.h5")')
  try:
    config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
  except ValueError:
    raise UserError(f'{path} is damaged (its model config is not JSON); save '
                    'the model again') from None
  # tf_keras runs a Lambda layer's stored bytecode from .h5 even in safe
  # mode: refuse it here.
  lambdas = _lambda_layers(config)
  if lambdas and not allow_unsafe:
    raise _unsafe_refused(path, f'a Lambda layer ({", ".join(lambdas)})')
  import tf_keras  # pylint: disable=g-import-not-at-top
  try:
    return tf_keras.models.load_model(path, compile=False,
                                      safe_mode=not allow_unsafe)
  except (ValueError, TypeError, KeyError, OSError) as e:
    raise UserError(f'cannot load {path} as a Keras 2 (.h5) model '
                    f'({_short(e)})') from None


def load_keras_model(path, allow_unsafe=False):
  """Loads a Keras model file, refusing stored Python code by default.

  Args:
    path: a `.keras` file (Keras 3, `keras.saving.load_model`) or a `.h5` /
      `.hdf5` file (tf_keras, the legacy Keras 2). Not compiled.
    allow_unsafe: load Lambda layers (their code runs): only for files you
      trust (the CLI's `--allow_unsafe_model`).
  Returns:
    The model (a `keras.Model` for .keras, a `tf_keras.Model` for .h5).
  Raises:
    UserError: one line: missing, a folder, an unknown format, damaged, or
      holding a Lambda layer without allow_unsafe.
  """
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lower()
  _check_file(path, ('.keras', '.h5'))
  if ext in _KERAS3:
    return _load_keras3(path, allow_unsafe)
  if ext in _H5:
    return _load_h5(path, allow_unsafe)
  raise UserError(f'{path}: unknown model format {ext or "(no extension)"!r}; '
                  'give a .keras (Keras 3) or .h5 (Keras 2) file, or a '
                  'SavedModel folder')


def load_saved_model_signature(path, signature=None):
  """One signature of a SavedModel folder, as a callable concrete function.

  Args:
    path: a SavedModel folder (holding saved_model.pb).
    signature: the signature name; None: `serving_default`, or the only one.
  Returns:
    The tf ConcreteFunction (call it with the signature's keyword
    arguments). It keeps the loaded object (and its variables) alive.
  Raises:
    UserError: one line: missing, not a SavedModel, unreadable, or no such
      signature (the message lists those it has).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  if not os.path.exists(path):
    raise UserError(f'SavedModel folder {path} not found')
  if not os.path.isdir(path) or not any(
      os.path.exists(os.path.join(path, n))
      for n in ('saved_model.pb', 'saved_model.pbtxt')):
    raise UserError(f'{path} is not a SavedModel folder (no saved_model.pb '
                    'in it); give the folder tf.saved_model.save wrote')
  try:
    loaded = tf.saved_model.load(path)
  except (tf.errors.OpError, ValueError, OSError, IndexError, KeyError,
          TypeError) as e:
    raise UserError(f'cannot load the SavedModel {path} ({_short(e)}); it '
                    'is damaged or from an incompatible TensorFlow') from None
  signatures = dict(loaded.signatures)
  names = ', '.join(sorted(signatures)) or 'none'
  if signature is None:
    if 'serving_default' in signatures:
      signature = 'serving_default'
    elif len(signatures) == 1:
      signature = next(iter(signatures))
    else:
      raise UserError(f'{path} has no serving_default signature; choose one '
                      f'of: {names}')
  if signature not in signatures:
    raise UserError(f'{path} has no signature {signature!r}; it has: {names}')
  fn = signatures[signature]
  fn._tilt_tf_loaded = loaded  # pylint: disable=protected-access
  return fn
