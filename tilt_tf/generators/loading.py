"""Loads user-supplied models safely, with one-line errors.

  model = loading.load_keras_model('decoder.keras')  # Keras 3 or tf_keras
  model = loading.load_keras_model('decoder.h5')     # (the file says which)
  fn = loading.load_saved_model_signature('export/1', 'sample_base')

Keras 3 and tf_keras (Keras 2) both write `.keras` and `.h5` files and each
reads only its own `.keras` files: the Keras version recorded in the file
picks the library. A SavedModel (`tf.saved_model.save`, Keras 3
`model.export`, tf_keras `model.save(folder)`) holds graphs, not Python
code, and loads with `tf.saved_model.load`.

A model file that holds Python code (a `Lambda` layer) runs that code when
it is loaded, so it is refused unless the caller trusts it: `--allow_unsafe_
model` on the command line, `allow_unsafe=True` from Python.
"""

import json
import os
import zipfile

from tilt_tf.errors import UserError

__all__ = ['load_keras_model', 'load_saved_model_signature',
           'keras_file_version', 'check_keras_backend']

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


def keras_file_version(path):
  """The Keras version that wrote a `.keras` or `.h5` file ('3.15.1',
  '2.21.0', ...), from the file's own metadata; '' when it records none.

  A `.keras` archive holds it in metadata.json, an `.h5` file in its
  `keras_version` attribute. Keras 3 and tf_keras (Keras 2) both write both
  formats, and each reads only its own `.keras` files, so the loader is
  chosen by this, not by the extension."""
  ext = os.path.splitext(path)[1].lower()
  try:
    if ext in _KERAS3:
      with zipfile.ZipFile(path) as z:
        if 'metadata.json' not in z.namelist():
          return ''
        return str(json.loads(z.read('metadata.json')).get('keras_version',
                                                            ''))
    import h5py  # pylint: disable=g-import-not-at-top
    with h5py.File(path, 'r') as f:
      version = f.attrs.get('keras_version', '')
    return version.decode() if isinstance(version, bytes) else str(version)
  except (zipfile.BadZipFile, ValueError, KeyError, AttributeError):
    return ''


def _model_config(path):
  """A Keras file's model config (JSON tree), without loading the model."""
  ext = os.path.splitext(path)[1].lower()
  if ext in _KERAS3:
    if not zipfile.is_zipfile(path):
      raise UserError(f'{path} is not a valid .keras file (not a zip '
                      'archive); save the model with model.save("model.keras")')
    try:
      with zipfile.ZipFile(path) as z:
        return json.loads(z.read('config.json'))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as e:
      raise UserError(f'{path} is damaged ({_short(e)}); save the model '
                      'again with model.save("model.keras")') from None
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
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
  except ValueError:
    raise UserError(f'{path} is damaged (its model config is not JSON); save '
                    'the model again') from None


def check_keras_backend():
  """Keras 3 must run on TensorFlow here: one line if KERAS_BACKEND says
  otherwise (a JAX or torch model cannot be differentiated by tf)."""
  import keras  # pylint: disable=g-import-not-at-top
  backend = keras.backend.backend()
  if backend != 'tensorflow':
    raise UserError(f'Keras runs on the {backend} backend here '
                    f'(KERAS_BACKEND={os.environ.get("KERAS_BACKEND", "")!r});'
                    ' tilt_tf needs TensorFlow: unset KERAS_BACKEND or set '
                    'KERAS_BACKEND=tensorflow before importing keras')


def _load_with(path, version, allow_unsafe):
  """Loads with the library that wrote the file: tf_keras for Keras 2,
  Keras 3 otherwise. Errors keep the library's own reason."""
  keras2 = version.startswith('2.')
  if keras2:
    import tf_keras as lib  # pylint: disable=g-import-not-at-top
    load, who = lib.models.load_model, f'a tf_keras (Keras {version}) model'
  else:
    check_keras_backend()
    import keras as lib  # pylint: disable=g-import-not-at-top
    load = lib.saving.load_model
    who = f'a Keras {version or "3"} model'
  try:
    return load(path, compile=False, safe_mode=not allow_unsafe)
  except ValueError as e:
    if 'safe_mode' in str(e) or 'unsafe' in str(e):
      raise _unsafe_refused(path, 'code Keras refuses in safe mode') from None
    raise UserError(f'cannot load {path} as {who} ({_short(e)})') from None
  except (TypeError, KeyError, OSError, zipfile.BadZipFile) as e:
    raise UserError(f'cannot load {path} as {who} ({_short(e)})') from None


def load_keras_model(path, allow_unsafe=False):
  """Loads a Keras model file, refusing stored Python code by default.

  Args:
    path: a `.keras` or `.h5` / `.hdf5` file written by Keras 3 (loaded by
      `keras.saving.load_model`) or by tf_keras / Keras 2 (loaded by
      `tf_keras.models.load_model`): the file's recorded Keras version
      decides. Not compiled.
    allow_unsafe: load Lambda layers (their code runs): only for files you
      trust (the CLI's `--allow_unsafe_model`).
  Returns:
    The model (a `keras.Model` or a `tf_keras.Model`).
  Raises:
    UserError: one line: missing, a folder, an unknown format, damaged, or
      holding a Lambda layer (at any depth) without allow_unsafe. A refused
      file is never deserialized, so its stored code does not run.
  """
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lower()
  _check_file(path, ('.keras', '.h5'))
  if ext not in _KERAS3 + _H5:
    raise UserError(f'{path}: unknown model format '
                    f'{ext or "(no extension)"!r}; give a .keras or .h5 '
                    'file, or a SavedModel folder')
  config = _model_config(path)
  lambdas = _lambda_layers(config)
  if lambdas and not allow_unsafe:
    raise _unsafe_refused(path, f'a Lambda layer ({", ".join(lambdas)})')
  return _load_with(path, keras_file_version(path), allow_unsafe)


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
  if not signatures:
    raise UserError(f'{path} has no signatures; save it with one, e.g. '
                    'tf.saved_model.save(model, path, signatures=fn) with fn '
                    'a tf.function with an input_signature [None, latent_dim],'
                    ' or keras model.export(path)')
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
