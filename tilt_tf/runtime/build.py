"""A run's config -> its generator and method, and a finished run -> both,
restored (`restore`): no data, no lock, no TensorBoard writer.

Generators: a built-in base (`config.base_name`, tilt_tf/generators/
registry.py) or a user's model file (`config.generator.path`, loaded by
tilt_tf/generators/adapters.py). Methods: `config.method` ('latent_tilt',
'pixel_ebm'), see tilt_tf/methods/.
"""

import dataclasses
import os

from absl import logging
import ml_collections
import tensorflow as tf

import configs
from tilt_tf import data as data_lib
from tilt_tf import io_utils
from tilt_tf import precision as precision_lib
from tilt_tf.errors import UserError
from tilt_tf.generators import registry
from tilt_tf.methods import registry as method_registry
from tilt_tf.runtime import checkpoints
from tilt_tf.runtime import run_dir as run_dir_lib
from tilt_tf.runtime import training

__all__ = ['identity', 'data_shape_of', 'make_generator', 'make_method',
           'config_from_run', 'Restored', 'restore']

# Energy fields that define what a tilt checkpoint holds.
EBM_ARCH = ('channels', 'blocks', 'stem_stride', 'hidden', 'layers',
             'fourier_features', 'fourier_scale')
_MUTABLE_BASE_FIELDS = ('steps',)
_LATER_BASE_FIELDS = ('param_clip',)  # In the identity only when set.


def identity(config, data_shape, generator=None, n_data=None):
  """What a workdir's checkpoints are: base/generator, data, seed, shapes.

  Args:
    config: the run's config.
    data_shape: shape of one data point.
    generator: a user's Generator given as an object (`tilt_tf.tilt`):
      its description, latent size and fingerprint (the model itself) are
      part of the identity, so a folder holds the tilt of one generator.
    n_data: the number of examples given with such a generator.
  """
  c = config.to_dict()
  ident = {k: c.get(k) for k in ('base_name', 'dataset', 'seed', 'n_train')}
  ident['base'] = {k: v for k, v in c['base'].items()
                   if k not in _MUTABLE_BASE_FIELDS and
                   not (k in _LATER_BASE_FIELDS and not v)}
  ident['ebm'] = {k: c['ebm'][k] for k in EBM_ARCH}
  # Fields added later count only when set, so earlier runs still match.
  if c['ebm'].get('stem_pool', 1) != 1:
    ident['ebm']['stem_pool'] = c['ebm']['stem_pool']
  if c['ebm'].get('replay_buffer', 0):  # The tilt checkpoint holds it.
    ident['ebm']['replay_buffer'] = c['ebm']['replay_buffer']
  if c.get('generator', {}).get('path'):
    g = c['generator']
    ident['generator'] = {k: g[k] for k in ('path', 'latent_dim', 'signature')}
    ident['data_shape'] = list(data_shape)
    if g.get('fingerprint'):  # The model itself, not only its path.
      ident['generator_fingerprint'] = g['fingerprint']
  if generator is not None:
    ident['generator'] = getattr(generator, 'description', generator.name)
    fingerprint = getattr(generator, 'fingerprint', None)
    ident['generator_fingerprint'] = fingerprint() if fingerprint else None
    ident['latent_dim'] = generator.latent_dim
    ident['data_shape'] = list(data_shape)
    ident['n_data'] = int(n_data)
  if method_registry.method_of(config) != method_registry.DEFAULT:
    ident['method'] = c['method']
  return io_utils.jsonable(ident)


def data_shape_of(config):
  if registry.from_file(config):
    return tuple(config.generator.data_shape)
  return data_lib.data_shape(config.dataset)


def uses_base_stage(config):
  """Whether the run trains its generator (a built-in base) first."""
  return method_class(config).has_latent and not registry.from_file(config)


def make_generator(config, data_shape, first_batch=None):
  """The run's generator, built (variables exist), or None (pixel EBM)."""
  if not method_class(config).has_latent:
    return None
  if registry.from_file(config):
    from tilt_tf.generators import adapters  # pylint: disable=g-import-not-at-top
    g = config.generator
    return adapters.generator_from_path(
        g.path, latent_dim=g.latent_dim or None,
        signature=g.signature or None, allow_unsafe=g.allow_unsafe)
  generator = registry.make_generator(config.base_name, config.base,
                                      data_shape,
                                      config.get('precision', 'float32'))
  if first_batch is None:  # Restoring: any batch creates the variables.
    first_batch = tf.random.stateless_uniform(
        (min(config.base.batch_size, 8),) + tuple(data_shape), seed=[0, 0])
  generator.build(first_batch)
  return generator


method_class = method_registry.method_class


def make_method(config, generator, data_shape):
  """The Method config.method names, for this generator and data shape."""
  cls = method_class(config)
  if cls.stage == 'base':  # Its own model: built from config.base.
    return cls.from_config(config.base, data_shape)
  return cls(generator, config.ebm, data_shape, seed=config.seed,
             precision=config.get('precision', 'float32'))


def _apply_stored(config, stored):
  """Overlays a run.json `config` dict onto a ConfigDict, in place (JSON
  lists back to tuples where the config has tuples)."""
  with config.unlocked():
    for key, value in stored.items():
      current = config.get(key) if key in config else None
      if isinstance(value, dict):
        if isinstance(current, ml_collections.ConfigDict):
          _apply_stored(current, value)
        else:
          config[key] = ml_collections.ConfigDict(value)
        continue
      if isinstance(value, list) and isinstance(current, tuple):
        value = tuple(value)
      if isinstance(current, float) and isinstance(value, int):
        value = float(value)
      config[key] = value
  return config


def config_from_run(workdir):
  """The config of a run's latest invocation, from its run.json."""
  return _read_run_config(workdir)[1]


def _read_run_config(workdir):
  """(run.json's contents, the config of the run's latest invocation)."""
  run = run_dir_lib.read_run(
      workdir, '--workdir',
      missing='pass the folder of a training run (the one holding run.json)',
      no_run='train one first with //tilt_tf:train')
  try:
    stored = run['config']
    base_name = run['identity']['base_name']
    dataset = run['identity']['dataset']
    preset = run.get('preset') or stored.get('preset', 'paper')
  except (KeyError, TypeError, AttributeError) as e:
    raise UserError(f'{workdir}/run.json is malformed (missing {e}); it was '
                    'not written by this version of tilt_tf') from None
  name = (registry.USER_MODEL if stored.get('generator', {}).get('path')
          else base_name)
  config = configs.get_config(name, dataset or None, preset)
  return run, _apply_stored(config, stored)


@dataclasses.dataclass
class Restored:
  """A finished run, restored: its config, generator (None for a method
  without one), method and the energy checkpoint loaded."""
  workdir: str
  config: ml_collections.ConfigDict
  generator: object
  method: object
  energy_checkpoint: str


def restore(workdir, generator=None):
  """Rebuilds a run from its run.json and checkpoints, nothing else.

  Reads no data, takes no lock and writes nothing, so it works on a copied
  workdir without the data set and beside a running job.

  Args:
    workdir: the run folder.
    generator: the user's Generator for a run made by `tilt_tf.tilt` from
      Python (a model object cannot be rebuilt from a file name); None to
      rebuild it from the run's config.
  """
  run, config = _read_run_config(workdir)
  if (config.get('precision') == 'bf16' and
      not precision_lib.bf16_support()[0]):
    # The weights are float32 whatever the precision: a bf16 run restores
    # (to export, sample or score) on any machine.
    logging.warning('%s ran with precision=bf16, which this machine (%s) '
                    'does not compute natively; restoring it in float32',
                    workdir, precision_lib.bf16_support()[1])
    config.precision = 'float32'
  ident = run['identity']
  shape = tuple(ident.get('data_shape') or ()) or data_shape_of(config)
  if generator is None:
    generator = make_generator(config, shape)
    if generator is not None and uses_base_stage(config):
      ckpt = tf.train.Checkpoint(generator=generator)
      manager = tf.train.CheckpointManager(
          ckpt, os.path.join(workdir, 'checkpoints', 'base'), max_to_keep=None)
      if checkpoints.restore_readable(ckpt, manager, 'base') is None:
        raise UserError(f'no base checkpoint in {workdir}; run the base stage '
                        'first (--stage=base or all stages)')
  if generator is not None:
    fingerprint = getattr(generator, 'fingerprint', None)
    run_dir_lib.check_generator(
        workdir, ident.get('generator_fingerprint'),
        fingerprint() if fingerprint else None,
        'pass the generator that run tilted, or tilt this one into a new '
        'workdir')
  method = make_method(config, generator, shape)
  run = run_dir_lib.RunDir(workdir, {})  # Paths only: never entered.
  trainer = training.MethodTrainer(run, tf.distribute.get_strategy(), method,
                                   steps=0)
  which = trainer.restore_best()
  return Restored(workdir, config, generator, method, which)


def split_validation(array, size):
  """(train, validation): the last `size` examples held out (at most a
  fifth of the array)."""
  size = int(min(size, len(array) // 5))
  if size <= 0:
    return array, array[:0]
  return array[:-size], array[-size:]


as_float = data_lib.as_float  # Kept for callers that import it from here.
