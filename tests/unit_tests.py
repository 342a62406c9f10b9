"""The fast unit tests, in one process (tests/BUILD's `unit_tests`).

Each module below is a test file of its own, runnable alone
(`python tests/rng_test.py`, `bazel test //tests:rng_test`); run together
they pay TensorFlow's import (~5 s of CPU) once instead of once each.
A module that changes process-wide state (logical devices, a
mixed-precision policy, absl flags of a binary) stays a target of its own.
"""

import importlib

from absl.testing import absltest

MODULES = (
    'adapters', 'baselines', 'build_deps', 'checkpoints', 'configs', 'data',
    'ebm', 'energy_scale', 'figures_io', 'langevin', 'latent_tilt',
    'loading', 'monitor', 'replay', 'runtime', 'sample', 'strategy',
    'toy_metrics', 'training')


def load_tests(loader, tests, pattern):
  """unittest's hook: every TestCase of the modules above."""
  del tests, pattern
  suite = absltest.unittest.TestSuite()
  for name in MODULES:
    module = importlib.import_module(f'tests.{name}_test')
    suite.addTests(loader.loadTestsFromModule(module))
  return suite


if __name__ == '__main__':
  absltest.main()
