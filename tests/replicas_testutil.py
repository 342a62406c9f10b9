"""The one MirroredStrategy over two logical CPU devices of a test process.

The tests that compare two replicas with one device (rng, vae, glf,
pixel_ebm, distribute: tests/replica_tests.py runs them in one process)
share it: several MirroredStrategy instances in one process reuse their
collective ops' keys ("Shape mismatch in the collective instance", seen
here). Call `two_replicas()` before anything else runs TensorFlow: logical
devices exist only if configured before TensorFlow initializes.
"""

import functools

from tilt_tf.runtime import strategy as strategy_lib


@functools.lru_cache(maxsize=None)
def two_replicas():
  """strategy.make_strategy(num_cpu_devices=2), built once per process."""
  strategy = strategy_lib.make_strategy(num_cpu_devices=2)
  if strategy.num_replicas_in_sync != 2:
    raise RuntimeError('TensorFlow started before two_replicas() could split '
                       'the CPU: call it first (in the test\'s __main__)')
  return strategy
