"""The models' and stages' tests that need no special process set-up, in
one process (tests/BUILD's `model_tests`; tests/unit_tests.py has the fast
unit tests). Each module is a test file of its own, runnable alone
(`python tests/glow_test.py`, `bazel test //tests:glow_test`).

The tests that compare two replicas on two logical CPUs (set up before
TensorFlow starts) run in tests/replica_tests.py, sharing one strategy.
"""

from absl.testing import absltest
from tests import unit_tests

MODULES = ('distill', 'evaluate', 'export', 'glow', 'rollback')
load_tests = unit_tests.loading(MODULES)


if __name__ == '__main__':
  absltest.main()
