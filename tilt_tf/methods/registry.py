"""`config.method` name -> Method class, as generators/registry.py does for
bases: the one place a method's name is read. Everything else asks the class
(`has_latent`, `stage`, `single_device`; methods/base.py).
"""

import importlib

from tilt_tf.errors import UserError

__all__ = ['DEFAULT', 'METHODS', 'method_class', 'method_of']

DEFAULT = 'latent_tilt'  # The paper's method (configs/default.py).
METHODS = {
    'latent_tilt': ('tilt_tf.methods.latent_tilt', 'LatentTilt'),
    'pixel_ebm': ('tilt_tf.methods.pixel_ebm', 'PixelEBM'),
}


def method_of(config):
  """The method name a config asks for (DEFAULT for configs without one)."""
  return config.get('method', DEFAULT)


def method_class(config):
  """The Method class `config.method` names, imported on first use."""
  name = method_of(config)
  if name not in METHODS:
    raise UserError(f'unknown method {name!r}; choose one of '
                    f'{", ".join(sorted(METHODS))}')
  module, cls = METHODS[name]
  return getattr(importlib.import_module(module), cls)
