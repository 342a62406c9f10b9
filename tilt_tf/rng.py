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

Named seed streams: every use of a run's seed draws from its own stream,
listed once below (`STREAMS`), so two uses never share numbers by accident
and a value is changed in one place. `stream(seed, STREAM, index)` gives
  a pair stream:    the stateless seed [seed, value + index];
  an offset stream: the integer seed seed + value + index;
  a layer stream:   a Keras initializer seed seed * 100 + value + index.
The values are those the code always used (tests/rng_test.py pins them: a
change would change every run's samples and metrics).
"""

import dataclasses

import tensorflow as tf

__all__ = ['batch_normal', 'Stream', 'STREAMS', 'stream']


@dataclasses.dataclass(frozen=True)
class Stream:
  """One named use of a seed; see the module docstring for `form`."""
  name: str
  form: str  # 'pair', 'offset' or 'layer'.
  value: int


_PAIR, _OFFSET, _LAYER = 'pair', 'offset', 'layer'

# Integer seeds of the training stages' data order and step noise (the
# latter goes on through TRAIN_STEPS).
BASE_DATA = Stream('BASE_DATA', _OFFSET, 0)
BASE_STEPS = Stream('BASE_STEPS', _OFFSET, 1)
TILT_DATA = Stream('TILT_DATA', _OFFSET, 1000)
TILT_STEPS = Stream('TILT_STEPS', _OFFSET, 2)
DISTILL_DATA = Stream('DISTILL_DATA', _OFFSET, 77)
DISTILL_STEPS = Stream('DISTILL_STEPS', _OFFSET, 78)
# Toy points drawn as references: the monitor's, the evaluation's, the toy
# metrics' fresh draws and the test split of a toy set.
MONITOR_TOY_REFERENCE = Stream('MONITOR_TOY_REFERENCE', _OFFSET, 555)
EVAL_TOY_REFERENCE = Stream('EVAL_TOY_REFERENCE', _OFFSET, 31337)
TOY_METRICS_FRESH = Stream('TOY_METRICS_FRESH', _OFFSET, 424242)
TOY_TEST_SPLIT = Stream('TOY_TEST_SPLIT', _OFFSET, 1_000_003)
# The FID classifier's dropout layers (index: which one).
CLASSIFIER_DROPOUT = Stream('CLASSIFIER_DROPOUT', _OFFSET, 0)
# Stateless seeds: step noise (the step folded in; from a *_STEPS seed),
# the monitor's chains, the readiness check's prior draw, the sample stage's
# figures, sample batch i, a latent baseline's training steps and its image
# batch i, the energy's Fourier features, GLOW's test NLL batch i.
TRAIN_STEPS = Stream('TRAIN_STEPS', _PAIR, 0)
MONITOR = Stream('MONITOR', _PAIR, 7)
CHECK_READY = Stream('CHECK_READY', _PAIR, 11)
FIGURES = Stream('FIGURES', _PAIR, 99)
SAMPLE_BATCH = Stream('SAMPLE_BATCH', _PAIR, 1000)
BASELINE_TRAIN = Stream('BASELINE_TRAIN', _PAIR, 31)
BASELINE_BATCH = Stream('BASELINE_BATCH', _PAIR, 3000)
FOURIER_FEATURES = Stream('FOURIER_FEATURES', _PAIR, 31337)
NLL_BATCH = Stream('NLL_BATCH', _PAIR, 0)
# Keras initializer seeds (index: the layer): the FID classifier's layers,
# the distilled flow's coupling layers.
CLASSIFIER_INIT = Stream('CLASSIFIER_INIT', _LAYER, 0)
FLOW_INIT = Stream('FLOW_INIT', _LAYER, 0)

STREAMS = (BASE_DATA, BASE_STEPS, TILT_DATA, TILT_STEPS, DISTILL_DATA,
           DISTILL_STEPS, MONITOR_TOY_REFERENCE, EVAL_TOY_REFERENCE,
           TOY_METRICS_FRESH, TOY_TEST_SPLIT, CLASSIFIER_DROPOUT, TRAIN_STEPS,
           MONITOR, CHECK_READY, FIGURES, SAMPLE_BATCH, BASELINE_TRAIN,
           BASELINE_BATCH, FOURIER_FEATURES, NLL_BATCH, CLASSIFIER_INIT,
           FLOW_INIT)


def stream(seed, which, index=0):
  """The seed `which` (a Stream) derives from `seed`, element `index`.

  Args:
    seed: the run's seed, an int.
    which: one of STREAMS.
    index: e.g. the batch number of SAMPLE_BATCH (default 0).

  Returns:
    [seed, value + index] (a list: wrap it in tf.constant) for a pair
    stream, seed + value + index for an offset stream and
    seed * 100 + value + index for a layer stream.
  """
  if which.form == _PAIR:
    return [seed, which.value + index]
  if which.form == _OFFSET:
    return seed + which.value + index
  return seed * 100 + which.value + index


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
