"""The fast unit tests, in one process (tests/BUILD's `unit_tests`).

Each module below is a test file of its own, runnable alone
(`python tests/data_test.py`, `bazel test //tests:data_test`); run together
they pay TensorFlow's import and Bazel's start (~7 s per process) once
instead of once each. A module that changes process-wide state (a
mixed-precision policy, absl flags of a binary) runs in tests/model_tests.py
or alone; the ones on two logical CPU devices in tests/replica_tests.py.
"""

import importlib

from absl.testing import absltest

MODULES = (
    'adapters', 'baselines', 'build_deps', 'checkpoints', 'cli', 'configs',
    'data', 'ebm', 'energy_scale', 'figures_io', 'langevin', 'latent_tilt',
    'loading', 'monitor', 'precision', 'quiet', 'readme', 'replay',
    'runtime', 'sample', 'strategy', 'tensorboard', 'toy_metrics', 'training',
    'user_features')


def loading(modules):
  """unittest's `load_tests` hook for a grouped runner: every TestCase of
  tests/<name>_test.py for each name in `modules`, instead of the runner's
  own (none)."""

  def load_tests(loader, tests, pattern):
    del tests, pattern
    suite = absltest.unittest.TestSuite()
    for name in modules:
      module = importlib.import_module(f'tests.{name}_test')
      suite.addTests(loader.loadTestsFromModule(module))
    return suite
  return load_tests


load_tests = loading(MODULES)


if __name__ == '__main__':
  absltest.main()
