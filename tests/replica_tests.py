"""The tests that compare two replicas on two logical CPU devices with one
device, in one process (tests/BUILD's `replica_tests`), sharing one
MirroredStrategy (tests/replicas_testutil.py). Each module is a test file of
its own, runnable alone (`python tests/vae_test.py`).
"""

from absl.testing import absltest
import tf_keras

from tests import replicas_testutil
from tests import unit_tests

MODULES = ('distribute', 'glf', 'pixel_ebm', 'rng', 'vae')
load_tests = unit_tests.loading(MODULES)


if __name__ == '__main__':
  replicas_testutil.two_replicas()
  tf_keras.utils.set_random_seed(0)  # As vae_test's and glf_test's own.
  absltest.main()
