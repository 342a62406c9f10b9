"""Console entry points of `pip install .` (pyproject.toml): tilt-train,
tilt-evaluate, tilt-export, tilt-table1.

Each holds TensorFlow's start-up lines (tilt_tf/quiet.py) before importing its
binary module, then runs that module's `main(argv)` as the binary does
(`cli.run_main`: absl flags, one-line errors).
"""

import importlib
import sys

from tilt_tf import quiet

__all__ = ['train', 'evaluate', 'export', 'table1']


def _run(module_name):
  quiet.start()
  from absl import flags  # pylint: disable=g-import-not-at-top
  from tilt_tf import cli  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(module_name)
  # --help shows the binary's docstring and flags, as `python -m` does.
  sys.modules['__main__'].__doc__ = module.__doc__
  for flag in flags.FLAGS.get_key_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  cli.run_main(module.main)


def train():
  _run('tilt_tf.train')


def evaluate():
  _run('tilt_tf.evaluate')


def export():
  _run('tilt_tf.export')


def table1():
  _run('tilt_tf.table1')
