"""batch_normal: the same noise per global example on 1 device and on 2."""

import numpy as np
import tensorflow as tf

from tests.replicas_testutil import two_replicas
from tilt_tf import langevin
from tilt_tf import rng


def _concat(per_replica):
  strategy = two_replicas()
  return np.concatenate(
      [v.numpy() for v in strategy.experimental_local_results(per_replica)])


class BatchNormalTest(tf.test.TestCase):

  def test_one_device_is_stateless_normal(self):
    for shape, dtype in (([5, 3], tf.float32), ([4, 2, 2, 3], tf.float64)):
      self.assertAllEqual(
          rng.batch_normal(shape, [3, 4], dtype),
          tf.random.stateless_normal(shape, seed=[3, 4], dtype=dtype))
    # A dynamic shape, compiled.
    draw = tf.function(lambda x: rng.batch_normal(tf.shape(x), [1, 2]))
    self.assertAllEqual(draw(tf.zeros([7, 2])),
                        tf.random.stateless_normal([7, 2], seed=[1, 2]))

  def test_cross_replica_context_is_stateless_normal(self):
    with two_replicas().scope():
      self.assertAllEqual(rng.batch_normal([6, 2], [0, 9]),
                          tf.random.stateless_normal([6, 2], seed=[0, 9]))

  def test_distribute_dataset_splits_global_batch_in_order(self):
    # batch_normal's offset: replica r holds rows [r * n, (r + 1) * n).
    strategy = two_replicas()
    ds = tf.data.Dataset.range(24).batch(8)
    for i, batch in enumerate(strategy.experimental_distribute_dataset(ds)):
      self.assertAllEqual(_concat(batch), np.arange(8 * i, 8 * i + 8))

  def test_two_replicas_draw_the_global_batch(self):
    strategy = two_replicas()

    @tf.function
    def draw(x):
      return strategy.run(lambda x: rng.batch_normal(tf.shape(x), [5, 6]),
                          args=(x,))

    x = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(tf.zeros([10, 3])))
    got = _concat(draw(next(iter(x))))
    self.assertAllEqual(got, tf.random.stateless_normal([10, 3], seed=[5, 6]))
    # Static local shapes survive.
    static = strategy.run(
        tf.function(lambda: rng.batch_normal([4, 3], [5, 6])))
    self.assertAllEqual(_concat(static),
                        tf.random.stateless_normal([8, 3], seed=[5, 6]))

  def test_langevin_on_two_replicas_runs_the_one_device_chains(self):
    strategy = two_replicas()
    mu = tf.constant([1.0, -1.0])

    def potential(z):
      return 0.5 * tf.reduce_sum(tf.square(z - mu), -1) + tf.reduce_sum(
          tf.sin(3.0 * z), -1)

    z0 = tf.random.stateless_normal([16, 2], seed=[0, 1])
    one = tf.function(lambda z: langevin.langevin(
        potential, z, seed=[7, 8], num_steps=30))(z0)['z']
    dist = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(z0))
    two = tf.function(lambda z: strategy.run(
        lambda z: langevin.langevin(potential, z, seed=[7, 8],
                                    num_steps=30)['z'], args=(z,)))(
                                        next(iter(dist)))
    # Row-wise math on a smaller batch: equal up to kernel rounding.
    self.assertAllClose(_concat(two), one, atol=1e-6, rtol=1e-6)



class StreamsTest(tf.test.TestCase):
  """Every named seed stream's value, pinned: a change here changes every
  run's samples and metrics for the same seed, so it must be deliberate."""

  # name -> (seed 5, index 0), (seed 5, index 3).
  PINNED = {
      'BASE_DATA': (5, 8),
      'BASE_STEPS': (6, 9),
      'TILT_DATA': (1005, 1008),
      'TILT_STEPS': (7, 10),
      'DISTILL_DATA': (82, 85),
      'DISTILL_STEPS': (83, 86),
      'MONITOR_TOY_REFERENCE': (560, 563),
      'EVAL_TOY_REFERENCE': (31342, 31345),
      'TOY_METRICS_FRESH': (424247, 424250),
      'TOY_TEST_SPLIT': (1_000_008, 1_000_011),
      'CLASSIFIER_DROPOUT': (5, 8),
      'TRAIN_STEPS': ([5, 0], [5, 3]),
      'MONITOR': ([5, 7], [5, 10]),
      'CHECK_READY': ([5, 11], [5, 14]),
      'FIGURES': ([5, 99], [5, 102]),
      'SAMPLE_BATCH': ([5, 1000], [5, 1003]),
      'BASELINE_TRAIN': ([5, 31], [5, 34]),
      'BASELINE_BATCH': ([5, 3000], [5, 3003]),
      'FOURIER_FEATURES': ([5, 31337], [5, 31340]),
      'NLL_BATCH': ([5, 0], [5, 3]),
      'CLASSIFIER_INIT': (500, 503),
      'FLOW_INIT': (500, 503),
  }

  def test_every_stream_is_pinned(self):
    self.assertCountEqual([s.name for s in rng.STREAMS], self.PINNED)
    for stream in rng.STREAMS:
      self.assertIs(getattr(rng, stream.name), stream)
      self.assertEqual(
          (rng.stream(5, stream), rng.stream(5, stream, 3)),
          self.PINNED[stream.name], stream.name)


if __name__ == '__main__':
  two_replicas()
  tf.test.main()
