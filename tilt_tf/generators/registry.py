"""`--base` name -> Generator, built from a config.

Image bases (vae, glf, glow) register here; each factory takes
(config.base, data_shape, precision) and returns a Generator. `precision`
(tilt_tf/precision.py) sets the VAE and GLF decoders' compute dtype; flows
(GLOW, GLF's latent flow) and the toy MLP VAE stay float32.

A user's own pretrained model is not a base: its config is USER_MODEL's
(configs/generator.py) and its generator comes from a file
(`config.generator.path`, generators/adapters.py) or, from Python, an
object; it has no base stage. The rest of the code asks `is_user_model`,
`from_file` and `model_name` rather than comparing names.
"""

import os

from tilt_tf.errors import UserError

__all__ = ['BASES', 'USER_MODEL', 'make_generator', 'register',
           'is_user_model', 'from_file', 'model_name']

# The config (configs/generator.py) of a user's own pretrained model.
USER_MODEL = 'generator'

_FACTORIES = {}


def register(name):
  def wrap(factory):
    _FACTORIES[name] = factory
    return factory
  return wrap


@register('mlp_vae')
def _mlp_vae(cfg, data_shape, precision):
  del precision  # Toy vectors: float32.
  from tilt_tf.generators import mlp_vae  # pylint: disable=g-import-not-at-top
  return mlp_vae.MLPVAE(data_shape=data_shape, latent_dim=cfg.latent_dim,
                        hidden=cfg.hidden, layers=cfg.layers, beta=cfg.beta)


@register('vae')
def _vae(cfg, data_shape, precision):
  from tilt_tf.generators import vae  # pylint: disable=g-import-not-at-top
  return vae.make(cfg, data_shape, precision)


@register('glf')
def _glf(cfg, data_shape, precision):
  from tilt_tf.generators import glf  # pylint: disable=g-import-not-at-top
  return glf.make(cfg, data_shape, precision)


@register('glow')
def _glow(cfg, data_shape, precision):
  del precision  # A flow: float32.
  from tilt_tf.generators import glow  # pylint: disable=g-import-not-at-top
  return glow.make(cfg, data_shape)


BASES = ('mlp_vae', 'vae', 'glf', 'glow')


def is_user_model(config):
  """Whether the run tilts a user's own pretrained model (nothing to train
  before the tilt) rather than a built-in base."""
  return config.get('base_name') == USER_MODEL


def from_file(config):
  """Whether the run's generator is loaded from a user's model file
  (`config.generator.path`) rather than built from `config.base`."""
  return bool(config.get('generator') and config.generator.path)


def model_name(config):
  """A short name of the run's model (run folders): the user's model
  file's name, else the base's."""
  if is_user_model(config):
    return os.path.splitext(os.path.basename(
        config.generator.path.rstrip('/')))[0]
  return config.base_name


def make_generator(name, cfg, data_shape, precision='float32'):
  if name not in _FACTORIES:
    raise UserError(f'unknown base {name!r}; choose one of '
                    f'{", ".join(sorted(_FACTORIES))}')
  return _FACTORIES[name](cfg, data_shape, precision)
