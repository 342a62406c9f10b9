"""`--base` name -> Generator, built from a config.

Image bases (vae, glf, glow) register here; each factory takes
(config.base, data_shape, precision) and returns a Generator. `precision`
(tilt_tf/precision.py) sets the VAE and GLF decoders' compute dtype; flows
(GLOW, GLF's latent flow) and the toy MLP VAE stay float32.
"""

from tilt_tf.errors import UserError

__all__ = ['BASES', 'make_generator', 'register']

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


def make_generator(name, cfg, data_shape, precision='float32'):
  if name not in _FACTORIES:
    raise UserError(f'unknown base {name!r}; choose one of '
                    f'{", ".join(sorted(_FACTORIES))}')
  return _FACTORIES[name](cfg, data_shape, precision)
