"""tilt_tf: exponential tilting of generative models in TensorFlow.

The public API (see README.md, "Python API"):

    import tilt_tf
    gen = tilt_tf.generator_from_keras(decoder)
    tilted = tilt_tf.tilt(gen, images, workdir='runs/mine', steps=200)
    samples = tilted.sample(10_000, seed=0)
    tilted.export('models/mine')

Names load on first use, so `import tilt_tf.<module>` stays light.
"""

import importlib

__all__ = ['tilt', 'load', 'tilt_config', 'Tilted', 'Generator',
           'generator_from_keras', 'generator_from_bijector',
           'generator_from_saved_model', 'generator_from_function',
           'generator_from_path']

_WHERE = {
    'tilt': 'tilt_tf.api', 'load': 'tilt_tf.api',
    'tilt_config': 'tilt_tf.api', 'Tilted': 'tilt_tf.api',
    'Generator': 'tilt_tf.generators.base',
    'generator_from_keras': 'tilt_tf.generators.adapters',
    'generator_from_bijector': 'tilt_tf.generators.adapters',
    'generator_from_saved_model': 'tilt_tf.generators.adapters',
    'generator_from_function': 'tilt_tf.generators.adapters',
    'generator_from_path': 'tilt_tf.generators.adapters',
}


def __getattr__(name):
  if name not in _WHERE:
    raise AttributeError(f'module tilt_tf has no attribute {name!r}')
  return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__():
  return sorted(list(globals()) + __all__)
