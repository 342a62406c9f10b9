"""Exports a trained run as a SavedModel sampler TF Serving can load.

  ./bazelw run //tilt_tf:export -- --workdir=runs/glf_fashion_mnist_small \
      --export_dir=exports/glf
  .venv/bin/python -m tilt_tf.export --workdir=RUN --export_dir=DIR --version=3

Writes `DIR/<version>/` (default: the next free version), with signatures
`serving_default` (num_samples, seed), `sample_tilted` (num_samples, seed,
langevin_steps, temperature) and `sample_base` (num_samples, seed,
temperature); see tilt_tf/stages/export.py.

Errors end in one line `error: ...` and exit code 2; `--traceback` (or
TILT_TF_TRACEBACK=1) shows the full traceback.
"""

from tilt_tf import quiet  # pylint: disable=unused-import  # First: hides TF's start-up lines.
from absl import flags

from tilt_tf import cli
from tilt_tf.stages import export as export_lib
from tilt_tf.errors import UserError

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(cli)  # --traceback in --help.
flags.DEFINE_string('workdir', None, 'Run folder to export (holds run.json).')
flags.DEFINE_string('export_dir', None,
                    'TF Serving model folder; the SavedModel goes to '
                    '<export_dir>/<version>/.')
flags.DEFINE_integer('version', None,
                     'Version folder (default: 1 + the largest existing).')
flags.DEFINE_integer('max_samples', 1024,
                     'Largest num_samples one request may ask for.')


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {argv[1:]}; flags look like '
                    '--workdir=RUN --export_dir=DIR')
  if not FLAGS.workdir or not FLAGS.export_dir:
    raise UserError('pass --workdir=RUN (a training run) and '
                    '--export_dir=DIR (where versions go)')
  workdir = cli.check_input_dir(
      cli.resolve_path(FLAGS.workdir), '--workdir',
      'the folder of a training run (the one holding run.json)')
  export_dir = cli.check_output_dir(cli.resolve_path(FLAGS.export_dir),
                                    '--export_dir')
  path = export_lib.export_run(workdir, export_dir,
                               version=FLAGS.version,
                               max_samples=FLAGS.max_samples)
  print(path)


if __name__ == '__main__':
  cli.run_main(main)
