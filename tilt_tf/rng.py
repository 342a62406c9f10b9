"""Stateless noise that does not depend on how a batch is split over replicas.

Under a tf.distribute strategy with N replicas, each replica sees its own
slice of the global batch: `experimental_distribute_dataset` gives replica r
the rows [r * n, (r + 1) * n) of every global batch of N * n examples
(tests/rng_test.py checks this). `batch_normal` draws the noise for the
whole global batch from the shared seed and returns this replica's rows, so
example i of the global batch gets the same noise on 1 device as on N: the
random numbers are a function of (seed, global example index) only.

A stateless normal draw of shape [N * n, ...] starts with the draw of shape
[n, ...] for the same seed (Philox fills the flat output in order), so on
one device (the default strategy, a cross-replica context, or a strategy
with one replica) `batch_normal` is exactly `tf.random.stateless_normal`.

The extra cost is drawing N times the noise a replica needs: negligible next
to the decoder and energy the noise feeds.
"""

import tensorflow as tf

__all__ = ['batch_normal']


def batch_normal(shape, seed, dtype=tf.float32):
  """N(0, 1) noise for this replica's rows of the global batch.

  Args:
    shape: the local shape [n, ...] (a list or an int tensor); dimension 0
      is the batch.
    seed: int32 [2] stateless seed, the same on every replica.
    dtype: a floating dtype.

  Returns:
    A [n, ...] tensor: rows [r * n, (r + 1) * n) of
    `tf.random.stateless_normal([N * n, ...], seed)` inside replica r of N
    replicas; `tf.random.stateless_normal(shape, seed)` otherwise.
  """
  ctx = tf.distribute.get_replica_context()
  replicas = ctx.num_replicas_in_sync if ctx is not None else 1
  if replicas == 1:
    return tf.random.stateless_normal(shape, seed=seed, dtype=dtype)
  shape = tf.convert_to_tensor(shape, tf.int32)
  n = shape[0]
  noise = tf.random.stateless_normal(
      tf.concat([[n * replicas], shape[1:]], 0), seed=seed, dtype=dtype)
  start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * n
  return tf.reshape(noise[start:start + n], shape)
