"""Trains a base model, tilts it with a latent EBM, samples and evaluates.

  ./bazelw run //tilt_tf:train -- --base=mlp_vae --dataset=25gaussians
  ./bazelw run //tilt_tf:train -- --base=glf --preset=small
  ./bazelw run //tilt_tf:train -- --base=glow --preset=small
  ./bazelw run //tilt_tf:train -- --base=pixel_ebm --preset=small  # EBM on data
  .venv/bin/python -m tilt_tf.train --base=mlp_vae --dataset=swissroll

Stages: base -> tilt -> sample -> eval (`--stage=tilt` runs one; rerunning the
same command resumes from the last checkpoint in --workdir). Any config field
can be set with `--set=section.field=value` (repeatable), e.g.
`--set=ebm.step_size=0.3 --set=ebm.alpha=0.01`.
"""

from tilt_tf import quiet  # pylint: disable=unused-import  # First: hides TF's start-up lines.
import os

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

import configs
from tilt_tf import cli
from tilt_tf import export_lib
from tilt_tf import io_utils
from tilt_tf import train_lib
from tilt_tf.errors import UserError

STAGES = train_lib.STAGES + ('export',)

FLAGS = flags.FLAGS
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
flags.DEFINE_integer('tilt_steps', None, 'Maximum EBM training steps (paper: 200 GLOW/GLF, 1000 VAE).')
flags.DEFINE_integer('base_steps', None, 'Base model training steps.')
flags.DEFINE_integer('num_samples', None, 'Samples to draw for evaluation (paper: 10000).')
flags.DEFINE_multi_string('set', [], 'Config field override section.field=value, repeatable, e.g. --set=ebm.step_size=0.3 --set=ebm.channels=64,128 (any field of configs/<base>.py; values parse as the field\'s type).')
flags.DEFINE_integer('num_cpu_devices', 0, 'Mirror over this many logical CPU devices (testing).')


# flag -> (config path, smallest allowed value).
_OVERRIDES = {
    'seed': (('seed',), 0),
    'langevin_steps': (('ebm', 'langevin_steps'), 0),
    'sample_langevin_steps': (('ebm', 'sample_langevin_steps'), 0),
    'tilt_steps': (('ebm', 'steps'), 0),
    'base_steps': (('base', 'steps'), 0),
    'num_samples': (('sample', 'num'), 1),
}


# Flags of the tilt stage, which --base=pixel_ebm does not have.
_NO_TILT_FLAGS = ('langevin_steps', 'tilt_steps')


def choose_preset():
  """(preset, source): --preset, else paper with a GPU and small without."""
  gpu = not FLAGS.preset and bool(tf.config.list_physical_devices('GPU'))
  return configs.choose_preset(FLAGS.preset, gpu)


def build_config():
  """Config from --base/--dataset/--preset plus flag overrides, validated."""
  preset, source = choose_preset()
  config = configs.get_config(FLAGS.base, FLAGS.dataset, preset,
                              overrides=FLAGS.set)
  if source != 'flag':  # One line says so; run.json records it.
    logging.info('%s', configs.preset_announcement(FLAGS.base, preset, source))
    with config.unlocked():
      config.preset_source = source
  for flag, (path, minimum) in _OVERRIDES.items():
    value = FLAGS[flag].value
    if value is None:
      continue
    if config.base_name == 'pixel_ebm' and flag in _NO_TILT_FLAGS:
      raise UserError(f'--{flag} does not apply to --base=pixel_ebm (it has '
                      'no tilt stage; --base_steps sets its training steps, '
                      '--sample_langevin_steps its sampling chains)')
    if value < minimum:
      raise UserError(f'--{flag}={value} is out of range; it must be >= '
                      f'{minimum}')
    node = config
    for key in path[:-1]:
      node = node[key]
    node[path[-1]] = value
  if FLAGS.data_dir:
    config.data_dir = cli.resolve_path(FLAGS.data_dir)
  return config


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {argv[1:]}; flags look like --base=glf')
  config = build_config()
  stages = (STAGES if FLAGS.stage == 'all'
            else tuple(s.strip() for s in FLAGS.stage.split(',')))
  if config.base_name == 'pixel_ebm':
    if FLAGS.num_cpu_devices > 1:
      raise UserError('--base=pixel_ebm runs on one device (its replay buffer '
                      'is not mirrored); drop --num_cpu_devices')
    if FLAGS.stage == 'all':
      stages = train_lib.STAGES  # No latent sampler to export.
  for s in stages:
    if s not in STAGES:
      raise UserError(f'unknown --stage {s!r}; choose all or one of '
                      f'{", ".join(STAGES)}')
  suffix = '' if config.preset == 'paper' else f'_{config.preset}'
  workdir = cli.resolve_path(
      FLAGS.workdir or os.path.join('runs', f'{config.base_name}_{config.dataset}{suffix}'))
  logging.info('run %s on %s, preset %s -> %s', config.base_name,
               config.dataset, config.preset, workdir)
  strategy = train_lib.make_strategy(FLAGS.num_cpu_devices)
  metrics = train_lib.run(config, workdir,
                          tuple(s for s in stages if s != 'export'), strategy)
  if metrics:
    print(cli.summary_table(metrics))
  if 'export' in stages and (train_lib.worker_workdir(workdir, strategy) !=
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


def _exported_already(workdir, export_dir):
  """True if the newest version in export_dir came from this run's current
  best energy (so rerunning a finished command writes nothing new)."""
  latest = export_lib.next_version(export_dir) - 1
  if latest < 1:
    return False
  info = io_utils.read_json(os.path.join(
      export_dir, str(latest), 'assets.extra', 'tilt_export.json'), {})
  ckpts = os.path.join(workdir, 'checkpoints')
  # The energy the export stage would restore: the best monitored, else the last.
  best = (tf.train.latest_checkpoint(os.path.join(ckpts, 'tilt_best')) or
          tf.train.latest_checkpoint(os.path.join(ckpts, 'tilt')))
  return bool(best) and info.get('energy_checkpoint') == best


if __name__ == '__main__':
  cli.run_main(main)
