"""Users' own generators as `Generator`s: a Keras decoder (Keras 3 or
tf_keras), a TFP flow, a SavedModel signature, or any function z -> x.

    gen = generator_from_keras(decoder)                 # latent size from its input
    gen = generator_from_bijector(flow_distribution)    # G = bijector.forward, prior = base
    gen = generator_from_saved_model('path/to/savedmodel', signature='decode')
    gen = generator_from_function(tf_fn, latent_dim=64)

The prior defaults to N(0, I) and may be any `tfd.Distribution` over
[latent_dim] vectors (log_prob and sample). Outputs must be float images in
[0, 1] [B, H, W, C] or vectors [B, D]; `check_outputs` says in one line when
they are not. The generator is pretrained: tilting never trains it.
"""

import hashlib
import os

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tilt_tf.errors import UserError
from tilt_tf.generators import base

tfd = tfp.distributions

__all__ = ['FunctionGenerator', 'generator_from_function',
           'generator_from_keras', 'generator_from_bijector',
           'generator_from_saved_model', 'generator_from_path',
           'check_outputs']


def _tf_variables(obj):
  """The tf.Variables of a Keras 3 / tf_keras model, tf.Module or bijector."""
  weights = getattr(obj, 'weights', None)
  if weights is None:
    weights = getattr(obj, 'variables', ())
  out = []
  for w in weights:
    w = getattr(w, 'value', w) if not isinstance(w, tf.Variable) else w
    if isinstance(w, tf.Variable):
      out.append(w)
  return out


class FunctionGenerator(base.Generator):
  """G(z) = decode_fn(z) with a prior; see the module docstring.

  Args:
    decode_fn: z [B, latent_dim] float32 -> x [B, ...] (differentiable in z).
    latent_dim: size of z.
    prior: a tfd.Distribution over [latent_dim], or None for N(0, I).
    owners: objects whose variables G reads (Keras models, modules); their
      tf.Variables are tracked here so checkpoints and SavedModels hold them.
    data_shape: shape of one output; None: found by decoding two prior draws.
    name: what the generator is, e.g. 'keras:decoder.keras' (recorded in
      run.json as `description`).
  """

  def __init__(self, decode_fn, latent_dim, *, prior=None, owners=(),
               data_shape=None, name='user_generator'):
    if not isinstance(latent_dim, (int, np.integer)) or latent_dim < 1:
      raise UserError(f'latent_dim must be a positive integer, got '
                      f'{latent_dim!r}')
    super().__init__(int(latent_dim), data_shape or (), name='user_generator')
    self.description = name  # What it is, for run.json and messages.
    self._decode_fn = decode_fn
    self._prior = prior
    self._owners = list(owners)
    # Explicit: tf.Module does not see Keras 3 variables by itself.
    unique = {}
    for o in self._owners:
      for v in _tf_variables(o):
        unique.setdefault(v.ref(), v)
    self.generator_variables = list(unique.values())
    self.saved_model_path = None  # Set by generator_from_saved_model.
    self._fingerprint = None
    if prior is not None:
      shape = tuple(prior.event_shape.as_list())
      if shape != (self.latent_dim,):
        raise UserError(f'the prior\'s event shape is {shape}; it must be '
                        f'({self.latent_dim},), the latent size')
    if not data_shape:
      self.data_shape = tuple(self.decode(
          self.prior_sample(2, tf.constant([0, 0]))).shape[1:])

  @property
  def variables(self):
    return tuple(self.generator_variables)

  def fingerprint(self):
    """16 hex digits naming what G computes, so that a run folder holds the
    tilt of one generator: a hash of its weights (and a custom prior's
    parameters); for a SavedModel, its own fingerprint (graph, signatures,
    variables); for a function without weights, its outputs at fixed
    latents (rounded to 1e-4)."""
    if self._fingerprint is None:
      h = hashlib.sha256(f'{self.latent_dim} {self.data_shape}'.encode())
      if self.saved_model_path:
        h.update(_saved_model_fingerprint(self.saved_model_path))
      elif self.generator_variables:
        for v in self.generator_variables:
          h.update(str(v.shape).encode())
          h.update(np.ascontiguousarray(v.numpy()).tobytes())
      else:
        z = tf.random.stateless_normal([4, self.latent_dim], [0, 0])
        h.update(np.round(self.decode(z).numpy(), 4).tobytes())
      if self._prior is not None:
        h.update(type(self._prior).__name__.encode())
        for k, v in sorted(self._prior.parameters.items()):
          if tf.is_tensor(v) or isinstance(v, (np.ndarray, float, int)):
            h.update(k.encode() + np.asarray(v, np.float64).tobytes())
      self._fingerprint = h.hexdigest()[:16]
    return self._fingerprint

  @property
  def trainable_variables(self):
    return ()  # Pretrained: never trained here.

  @property
  def prior(self):
    return self._prior if self._prior is not None else super().prior

  def prior_sample(self, n, seed, temperature=1.0):
    if self._prior is None:
      return super().prior_sample(n, seed, temperature)
    z = self._prior.sample(n, seed=tf.convert_to_tensor(seed, tf.int32))
    return tf.cast(z, tf.float32) * temperature

  def neg_log_prior(self, z):
    if self._prior is None:
      return super().neg_log_prior(z)
    return -tf.cast(self._prior.log_prob(z), tf.float32)

  def decode(self, z, training=False):
    del training
    try:
      x = self._decode_fn(tf.cast(z, tf.float32))
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as e:
      first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ''
      raise UserError(f'the generator does not take latents of shape '
                      f'[batch, {self.latent_dim}] ({type(e).__name__}: '
                      f'{first}); check latent_dim') from None
    if isinstance(x, dict):
      if len(x) != 1:
        raise UserError(f'the generator returns {len(x)} outputs '
                        f'({", ".join(sorted(x))}); it must return one')
      x = next(iter(x.values()))
    return tf.cast(x, tf.float32)

  def build(self, x):
    del x

  def per_example_loss(self, x, seed, training=True):
    raise UserError('a user generator is pretrained: tilt_tf tilts it but '
                    'does not train it (there is no base stage)')


def check_outputs(generator, data_shape=None, n=8):
  """Decodes n prior draws; one-line UserError if the shape is not
  `data_shape` or images fall outside [0, 1], or values are not finite."""
  x = generator.decode(generator.prior_sample(n, tf.constant([0, 1]))).numpy()
  if data_shape is not None and tuple(x.shape[1:]) != tuple(data_shape):
    raise UserError(f'the generator makes samples of shape {x.shape[1:]}, the '
                    f'data has shape {tuple(data_shape)}; they must match')
  if x.ndim not in (2, 4):
    raise UserError(f'the generator makes samples of shape {x.shape[1:]}: '
                    'it must make images [H, W, C] or vectors [D]')
  if not np.isfinite(x).all():
    raise UserError('the generator makes non-finite samples from prior '
                    'draws; check the model and its latent_dim')
  if x.ndim == 4 and (x.min() < -1e-3 or x.max() > 1 + 1e-3):
    raise UserError(f'the generator makes images in [{x.min():.3g}, '
                    f'{x.max():.3g}]; images must be in [0, 1] (wrap it, e.g. '
                    'generator_from_function(lambda z: (decoder(z) + 1) / 2, '
                    '...))')
  return x


def generator_from_function(fn, latent_dim, *, prior=None, owners=(),
                            name='function'):
  """Any differentiable function z [B, latent_dim] -> x [B, ...]."""
  return FunctionGenerator(fn, latent_dim, prior=prior, owners=owners,
                           name=name)


def generator_from_keras(model, latent_dim=None, prior=None,
                         allow_unsafe=False):
  """A Keras decoder (Keras 3 or tf_keras model, or a path to a saved one).

  Args:
    model: a Keras model taking z [B, latent_dim], or a `.keras` / `.h5`
      file (loaded in Keras' safe mode unless `allow_unsafe`).
    latent_dim: size of z; default: the model's input size.
    prior: a tfd.Distribution over z, or None for N(0, I).
    allow_unsafe: allow Lambda layers (arbitrary code) in a model file.
  """
  from tilt_tf.generators import loading  # pylint: disable=g-import-not-at-top
  name = 'keras'
  if isinstance(model, (str, os.PathLike)):
    name = f'keras:{os.fspath(model)}'
    model = loading.load_keras_model(model, allow_unsafe=allow_unsafe)
  elif type(model).__module__.startswith('keras.'):
    loading.check_keras_backend()
  shape = getattr(model, 'input_shape', None)
  if latent_dim is None:
    if not shape or len(shape) != 2 or shape[-1] is None:
      raise UserError(f'cannot tell the latent size from the model\'s input '
                      f'shape {shape}; pass latent_dim')
    latent_dim = int(shape[-1])
  elif shape and len(shape) == 2 and shape[-1] not in (None, latent_dim):
    raise UserError(f'latent_dim={latent_dim} does not fit the model, whose '
                    f'input is {shape}; pass latent_dim={shape[-1]}')
  return FunctionGenerator(lambda z: model(z, training=False), latent_dim,
                           prior=prior, owners=[model], name=name)


def _bijector_owners(bijector):
  """The bijector and every Keras model it (or a bijector in its chain)
  holds: Keras-3 networks inside a bijector are not tracked by it."""
  owners, seen = [], set()
  todo = [bijector]
  while todo:
    b = todo.pop()
    if id(b) in seen:
      continue
    seen.add(id(b))
    owners.append(b)
    todo.extend(getattr(b, 'bijectors', ()) or ())
    for v in vars(b).values():
      if hasattr(v, 'weights') and not isinstance(v, tfp.bijectors.Bijector):
        owners.append(v)
  return owners


def generator_from_bijector(flow, prior=None, latent_dim=None, owners=()):
  """A TFP flow: G = bijector.forward; prior = the flow's base distribution.

  Args:
    flow: a `tfd.TransformedDistribution` (its bijector and base
      distribution are used) or a `tfb.Bijector` (then `prior`, default
      N(0, I), and `latent_dim` are needed).
    prior: overrides the base distribution.
    latent_dim: size of z (default: the base distribution's event size).
    owners: Keras models the bijector calls without holding them (e.g.
      from inside a lambda), so their weights go into checkpoints and
      exports; models held as the bijector's attributes are found.
  """
  if isinstance(flow, tfd.Distribution) and hasattr(flow, 'bijector'):
    bijector, prior = flow.bijector, prior or flow.distribution
  elif isinstance(flow, tfp.bijectors.Bijector):
    bijector = flow
  else:
    raise UserError(f'expected a tfd.TransformedDistribution or a '
                    f'tfb.Bijector, got {type(flow).__name__}')
  if latent_dim is None:
    if prior is None:
      raise UserError('a bare bijector needs latent_dim (or a prior)')
    latent_dim = int(np.prod(prior.event_shape.as_list()))
  owners = _bijector_owners(bijector) + list(owners)
  return FunctionGenerator(lambda z: bijector.forward(tf.identity(z)),
                           latent_dim, prior=prior, owners=owners,
                           name=f'bijector:{bijector.name}')


def generator_from_saved_model(path, signature=None, latent_dim=None,
                               prior=None):
  """A SavedModel's signature (or its callable) as G.

  Args:
    path: the SavedModel folder.
    signature: the signature name; default: the only one, or
      'serving_default'.
    latent_dim: size of z; default: the signature's input size.
    prior: a tfd.Distribution over z, or None for N(0, I).
  """
  from tilt_tf.generators import loading  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  fn = loading.load_saved_model_signature(path, signature)
  loaded = fn._tilt_tf_loaded  # pylint: disable=protected-access
  specs = fn.structured_input_signature[1] or {}
  args = fn.structured_input_signature[0]
  spec = next(iter(specs.values())) if specs else (args[0] if args else None)
  dim = spec.shape[-1] if spec is not None and spec.shape.rank == 2 else None
  if latent_dim is None:
    if dim is None:
      raise UserError(f'cannot tell the latent size from the signature\'s '
                      f'input {spec}; pass latent_dim')
    latent_dim = int(dim)
  elif dim is not None and dim != latent_dim:
    raise UserError(f'latent_dim={latent_dim} does not fit the SavedModel '
                    f'signature, whose input is {spec.shape}; pass '
                    f'latent_dim={dim}')
  if specs:
    key = next(iter(specs))
    call = lambda z: fn(**{key: z})
  else:
    call = fn
  gen = FunctionGenerator(call, latent_dim, prior=prior, owners=[loaded],
                          name=f'saved_model:{path}')
  gen.loaded = loaded  # Tracked: an export keeps the loaded functions.
  gen.saved_model_path = path
  return gen


def _saved_model_fingerprint(path):
  """A SavedModel's own fingerprint (fingerprint.pb, TF >= 2.12) or, for
  older ones, a hash of its files."""
  try:
    fp = tf.saved_model.experimental.read_fingerprint(path)
    return (f'{fp.graph_def_program_hash} {fp.signature_def_hash} '
            f'{fp.saved_object_graph_hash} {fp.checkpoint_hash}').encode()
  except (ValueError, OSError, tf.errors.OpError):
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
      dirs.sort()
      for name in sorted(files):
        with open(os.path.join(root, name), 'rb') as f:
          h.update(name.encode() + f.read())
    return h.digest()


def generator_from_path(path, *, latent_dim=None, signature=None, prior=None,
                        allow_unsafe=False):
  """A generator saved to disk, whichever library wrote it.

  Args:
    path: a `.keras` / `.h5` file (Keras 3 or tf_keras: the file records
      which) or a SavedModel folder (`tf.saved_model.save`, Keras 3
      `model.export`, tf_keras `model.save(folder)`).
    latent_dim: size of z; default: the model's input size.
    signature: a SavedModel's signature (default: its only one, or
      serving_default).
    prior: a tfd.Distribution over z, or None for N(0, I).
    allow_unsafe: allow Lambda layers (stored Python code) in a Keras file.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    return generator_from_saved_model(path, signature=signature,
                                      latent_dim=latent_dim, prior=prior)
  if signature:
    raise UserError(f'signature={signature!r} is for a SavedModel folder; '
                    f'{path} is a file')
  return generator_from_keras(path, latent_dim=latent_dim, prior=prior,
                              allow_unsafe=allow_unsafe)
