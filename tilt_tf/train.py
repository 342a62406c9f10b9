"""Trains a base model, tilts it with a latent EBM, samples and evaluates.

  ./bazelw run //tilt_tf:train -- --base=mlp_vae --dataset=25gaussians
  ./bazelw run //tilt_tf:train -- --base=glf --preset=small
  ./bazelw run //tilt_tf:train -- --base=glow --preset=small
  ./bazelw run //tilt_tf:train -- --base=pixel_ebm --preset=small  # EBM on data
  .venv/bin/python -m tilt_tf.train --base=mlp_vae --dataset=swissroll
  # A user's own pretrained generator (stages tilt, sample, eval, export):
  ./bazelw run //tilt_tf:train -- --generator=/path/decoder.keras --data=/path/images.npz
  ./bazelw run //tilt_tf:train -- --generator=/path/saved_model --dataset=fashion_mnist

Stages: base -> tilt -> sample -> eval (`--stage=tilt` runs one; rerunning the
same command resumes from the last checkpoint in --workdir). Any config field
can be set with `--config.section.field=value` (ml_collections config_flags)
or its alias `--set=section.field=value` (repeatable), e.g.
`--config.ebm.step_size=0.3 --set=ebm.alpha=0.01`.

Errors end in one line `error: ...` and exit code 2; `--traceback` (or
TILT_TF_TRACEBACK=1) shows the full traceback.
"""

from tilt_tf import quiet  # pylint: disable=unused-import  # First: hides TF's start-up lines.
import os
import re
import sys

from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags
import tensorflow as tf

import configs
from tilt_tf import cli
from tilt_tf import io_utils
from tilt_tf import precision as precision_lib
from tilt_tf import train_lib
from tilt_tf.errors import UserError
from tilt_tf.generators import registry
from tilt_tf.runtime import base_reuse
from tilt_tf.runtime import build
from tilt_tf.runtime import strategy as strategy_lib
from tilt_tf.stages import export as export_lib

STAGES = train_lib.STAGES + ('export',)

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(cli)  # --traceback in --help.
flags.DEFINE_string('base', 'glf', 'Base model: ' + ', '.join(sorted(configs.MODULES)) + '.')
flags.DEFINE_string('dataset', None, 'Data set (default: the config\'s).')
flags.DEFINE_string('data_dir', None, 'Folder with local data files.')
flags.DEFINE_string('workdir', None, 'Run folder (default runs/<base>_<dataset>[_<preset>]).')
flags.DEFINE_string('preset', None, 'paper (the paper\'s settings), small (CPU), test (seconds); default: paper if a GPU is visible, else small.')
flags.DEFINE_string('stage', 'all', 'all, or one of ' + ', '.join(STAGES) + ' (comma-separated list allowed).')
flags.DEFINE_string('export_dir', None, 'SavedModel folder for the export stage (default <workdir>/export; versions 1/, 2/, ... inside).')
flags.DEFINE_integer('seed', None, 'Random seed (stateless; same seed, same metrics.json).')
flags.DEFINE_integer('langevin_steps', None, 'Langevin steps per EBM training step (paper: 60).')
flags.DEFINE_integer('sample_langevin_steps', None, 'Langevin steps when sampling (paper: 100).')
flags.DEFINE_float('sample_step_size', None, 'Langevin epsilon when sampling (default: the training chains\' ebm.step_size); e.g. 15 steps of 0.0667 instead of 100 of 0.01.')
flags.DEFINE_integer('tilt_steps', None, 'Maximum EBM training steps (paper: 200 GLOW/GLF, 1000 VAE).')
flags.DEFINE_integer('base_steps', None, 'Base model training steps.')
flags.DEFINE_integer('num_samples', None, 'Samples to draw for evaluation (paper: 10000).')
flags.DEFINE_multi_string('set', [], 'Config field override section.field=value, repeatable, e.g. --set=ebm.step_size=0.3 --set=ebm.channels=64,128 (any field of configs/<base>.py; values parse as the field\'s type).')
flags.DEFINE_integer('num_cpu_devices', 0, 'Mirror over this many logical CPU devices (testing).')
flags.DEFINE_string('generator', None, 'Tilt your own pretrained generator instead of training a base: a Keras file (.keras, .h5) or a SavedModel folder mapping z [B, latent_dim] to images in [0, 1] [B, H, W, C] or vectors [B, D].')
flags.DEFINE_integer('latent_dim', None, 'Latent size of --generator (default: read from the model).')
flags.DEFINE_string('signature', None, 'SavedModel signature of --generator (default: its only one, or serving_default).')
flags.DEFINE_string('data', None, 'Your data for --generator: a .npz/.npy file of images [N, H, W, C] (uint8 or floats in [0, 1]) or vectors [N, D] (instead of --dataset).')
flags.DEFINE_string('base_from', None, 'Another run\'s workdir whose finished base to reuse: its checkpoints/base is copied into --workdir before the base stage (same base, data set and base settings; the seed may differ); nothing happens if --workdir already has a base.')
flags.DEFINE_bool('allow_unsafe_model', False, 'Load a Keras --generator file even if it holds Lambda layers (arbitrary Python code): only for files you trust.')

# --config.section.field=value: ml_collections defines one flag per such
# override on the command line (at import) and parses its value as a Python
# literal; build_config() applies them, after --set, to the config that
# --base/--dataset/--preset choose (configs.apply_overrides: the field's
# type, bounds and choices). The config flag's own value is only the
# skeleton of sections those flags need.
_CONFIG_OVERRIDE = re.compile(
    r'^--?(?:no)?config\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:=|$)')


def _config_skeleton(argv):
  """(sections the --config.* overrides of argv name, the overrides that
  are well formed: others stay unknown flags)."""
  # Not type safe: a value is stored in it as parsed (a later --config.x=0.5
  # may follow --config.x=1); build_config() types them.
  skeleton = ml_collections.ConfigDict(type_safe=False)
  kept = []
  for arg in argv:
    match = _CONFIG_OVERRIDE.match(arg)
    if re.match(r'^--?(?:no)?config\.', arg) and not match:
      continue
    kept.append(arg)
    node = skeleton
    for key in match.group(1).split('.')[:-1] if match else ():
      if not isinstance(node.get(key), ml_collections.ConfigDict):
        node[key] = ml_collections.ConfigDict(type_safe=False)
      node = node[key]
  return skeleton, kept


def _command_line():
  """sys.argv with --flagfile contents in (as config_flags reads it)."""
  try:
    return FLAGS.read_flags_from_files(sys.argv, force_gnu=False)
  except Exception:  # pylint: disable=broad-except  # absl reports it later.
    return list(sys.argv)


_SKELETON, _ARGV = _config_skeleton(_command_line())
config_flags.DEFINE_config_dict(
    'config', _SKELETON, 'Not set itself: --config.section.field=value '
    'overrides one field of configs/<base>.py (as --set does; applied after '
    'the --set ones), e.g. --config.ebm.step_size=0.3 '
    '--config.ebm.channels=64,128.', lock_config=False,
    accept_new_attributes=True, sys_argv=_ARGV)


# flag -> config path (its range: configs.BOUNDS).
_OVERRIDES = {
    'seed': ('seed',),
    'langevin_steps': ('ebm', 'langevin_steps'),
    'sample_langevin_steps': ('ebm', 'sample_langevin_steps'),
    'sample_step_size': ('ebm', 'sample_step_size'),
    'tilt_steps': ('ebm', 'steps'),
    'base_steps': ('base', 'steps'),
    'num_samples': ('sample', 'num'),
}


# Flags of the tilt stage, which a method without a latent does not have.
_NO_TILT_FLAGS = ('langevin_steps', 'tilt_steps', 'sample_step_size')


def _generator_config():
  """--generator/--data/--latent_dim: a user's model, checked (one line)."""
  if not FLAGS.generator:
    for flag in ('data', 'latent_dim', 'signature'):
      if FLAGS[flag].value is not None:
        raise UserError(f'--{flag} goes with --generator (your own model); '
                        'without it, --base picks a built-in one')
    return None
  if FLAGS['base'].present:
    raise UserError('--generator replaces --base (your model is the base); '
                    'pass one of them')
  if bool(FLAGS.data) == bool(FLAGS.dataset):
    raise UserError('--generator needs its data: pass --data=FILE.npz (your '
                    'own) or --dataset=NAME (a built-in one), not both')
  path = cli.resolve_path(FLAGS.generator)
  if os.path.isdir(path):
    kind = 'saved_model'
  elif path.endswith(('.keras', '.h5')) and os.path.isfile(path):
    kind = 'keras'
  else:
    raise UserError(f'--generator {path} is not a .keras/.h5 file or a '
                    'SavedModel folder')
  return {'path': path, 'kind': kind, 'latent_dim': FLAGS.latent_dim or 0,
          'signature': FLAGS.signature or '',
          'allow_unsafe': FLAGS.allow_unsafe_model}


def _fill_generator(config, spec):
  """Loads the user's generator once to check it and record its shape."""
  from tilt_tf import user_data  # pylint: disable=g-import-not-at-top
  from tilt_tf.generators import adapters  # pylint: disable=g-import-not-at-top
  config.generator.update(spec)
  if FLAGS.data:
    config.data_path = cli.resolve_path(FLAGS.data)
    shape = user_data.load_array(config.data_path).shape[1:]
  else:
    from tilt_tf import data as data_lib  # pylint: disable=g-import-not-at-top
    data_lib.check_dataset(config.dataset)
    shape = data_lib.data_shape(config.dataset)
  config.generator.data_shape = tuple(shape)
  generator = build.make_generator(config, shape)
  adapters.check_outputs(generator, shape)
  config.generator.latent_dim = generator.latent_dim
  config.generator.fingerprint = generator.fingerprint()


def config_overrides():
  """The --config.a.b=value flags given, as configs.apply_overrides pairs
  ('--config.a.b', 'a.b=value'), in command-line order."""
  out = []
  for name in FLAGS:
    value = FLAGS[name].value
    if not name.startswith('config.') or value is None:
      continue
    if isinstance(value, (tuple, list)):  # 64,128 parses as a tuple.
      value = ','.join(str(v) for v in value)
    out.append((f'--{name}', f'{name[len("config."):]}={value}'))
  return out


def choose_preset():
  """(preset, source): --preset, else paper with a GPU and small without."""
  if warning := strategy_lib.gpu_warning():  # A driver but no GPU for TF.
    logging.warning('%s', warning)
  gpu = not FLAGS.preset and bool(tf.config.list_physical_devices('GPU'))
  return configs.choose_preset(FLAGS.preset, gpu)


def build_config():
  """Config from --base/--dataset/--preset plus flag overrides, validated."""
  spec = _generator_config()
  base = registry.USER_MODEL if spec else FLAGS.base
  preset, source = choose_preset()
  config = configs.get_config(base, FLAGS.dataset, preset,
                              overrides=FLAGS.set + config_overrides())
  if source != 'flag':  # One line says so; run.json records it.
    logging.info('%s', configs.preset_announcement(base, preset, source))
    with config.unlocked():
      config.preset_source = source
  precision_lib.policy(config.precision)  # bf16 without the hardware: refused.
  if spec:
    _fill_generator(config, spec)
  for flag, path in _OVERRIDES.items():
    value = FLAGS[flag].value
    if value is None:
      continue
    if not build.method_class(config).has_latent and flag in _NO_TILT_FLAGS:
      raise UserError(f'--{flag} does not apply to --base={config.base_name} '
                      '(it has no tilt stage; --base_steps sets its training '
                      'steps, --sample_langevin_steps its sampling chains)')
    configs.check_bounds('.'.join(path), value, f'--{flag}')
    node = config
    for key in path[:-1]:
      node = node[key]
    node[path[-1]] = value
  if FLAGS.data_dir:
    config.data_dir = cli.check_input_dir(cli.resolve_path(FLAGS.data_dir),
                                          '--data_dir', 'a folder holding the '
                                          'data set files')
  return config


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {argv[1:]}; flags look like --base=glf')
  config = build_config()
  stages = (STAGES if FLAGS.stage == 'all'
            else tuple(s.strip() for s in FLAGS.stage.split(',')))
  method = build.method_class(config)
  if method.single_device and FLAGS.num_cpu_devices > 1:
    raise UserError(f'--base={config.base_name} runs on one device (its replay '
                    'buffer is not mirrored); drop --num_cpu_devices')
  if not method.has_latent and FLAGS.stage == 'all':
    stages = train_lib.STAGES  # No latent sampler to export.
  for s in stages:
    if s not in STAGES:
      raise UserError(f'unknown --stage {s!r}; choose all or one of '
                      f'{", ".join(STAGES)}')
  if registry.is_user_model(config) and FLAGS.stage == 'all':
    stages = tuple(s for s in STAGES if s != 'base')  # Pretrained already.
  suffix = '' if config.preset == 'paper' else f'_{config.preset}'
  name = registry.model_name(config)
  data_name = (os.path.splitext(os.path.basename(config.data_path))[0]
               if config.get('data_path') else config.dataset)
  workdir = cli.resolve_path(
      FLAGS.workdir or os.path.join('runs', f'{name}_{data_name}{suffix}'))
  cli.check_output_dir(workdir, '--workdir')
  if 'export' in stages and FLAGS.export_dir:
    cli.check_output_dir(cli.resolve_path(FLAGS.export_dir), '--export_dir')
  logging.info('run %s on %s, preset %s -> %s', config.base_name,
               config.dataset, config.preset, workdir)
  strategy = strategy_lib.make_strategy(FLAGS.num_cpu_devices)
  if FLAGS.base_from:
    _reuse_base(config, strategy_lib.worker_workdir(workdir, strategy))
  metrics = train_lib.run(config, workdir,
                          tuple(s for s in stages if s != 'export'), strategy)
  if metrics:
    print(cli.summary_table(metrics))
  if 'export' in stages and (strategy_lib.worker_workdir(workdir, strategy) !=
                             workdir):
    logging.info('export: left to the chief of this multi-worker run')
  elif 'export' in stages:
    export_dir = cli.resolve_path(FLAGS.export_dir or
                                  os.path.join(workdir, 'export'))
    if FLAGS.stage == 'all' and _exported_already(workdir, export_dir):
      logging.info('export: %s already holds this run\'s best energy',
                   export_dir)
    else:
      print('exported', export_lib.export_run(workdir, export_dir))


def _reuse_base(config, workdir):
  """--base_from: the other run's finished base copied into `workdir`
  (tilt_tf/runtime/base_reuse.py), or one line saying why not."""
  if not build.uses_base_stage(config):
    raise UserError(f'--base_from: {registry.model_name(config)} has no base '
                    'stage (nothing to reuse); drop --base_from')
  base_reuse.copy_base(cli.resolve_path(FLAGS.base_from), workdir,
                       build.identity(config, build.data_shape_of(config)),
                       config.base.steps)


def _exported_already(workdir, export_dir):
  """True if the newest version in export_dir came from this run's current
  best energy (so rerunning a finished command writes nothing new)."""
  latest = export_lib.next_version(export_dir) - 1
  if latest < 1:
    return False
  info = io_utils.read_run_json(os.path.join(
      export_dir, str(latest), 'assets.extra', 'tilt_export.json')) or {}
  ckpts = os.path.join(workdir, 'checkpoints')
  # The energy the export stage would restore: the best monitored, else the last.
  best = (tf.train.latest_checkpoint(os.path.join(ckpts, 'tilt_best')) or
          tf.train.latest_checkpoint(os.path.join(ckpts, 'tilt')))
  return bool(best) and info.get('energy_checkpoint') == best


if __name__ == '__main__':
  cli.run_main(main)
