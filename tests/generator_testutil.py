"""Shared checks for the image generators' tests (VAE, GLF, GLOW)."""

import numpy as np
import tensorflow as tf
import tf_keras

from tests import replicas_testutil

__all__ = ['assert_mirrored_matches_one_device', 'blobs', 'decode_gradients',
           'mirrored_vs_one_device', 'sync_batch_norm']


def blobs(n, shape):
  """n smooth images in [0, 1]: one Gaussian blob each, per-channel tint."""
  h, w, c = shape
  yy, xx = np.mgrid[0:h, 0:w] / h
  out = []
  for i in range(n):
    cy, cx = 0.25 + 0.5 * (i % 2), 0.25 + 0.5 * (i // 2 % 2)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
    tint = np.linspace(1.0, 0.5, c) if i % 3 else np.linspace(0.5, 1.0, c)
    out.append(blob[..., None] * tint)
  return tf.constant(np.stack(out), tf.float32)


def sync_batch_norm(gen):
  """Makes the generator's batch norms use the global batch's statistics.

  tf_keras' BatchNormalization normalizes each replica's slice by that
  slice's own statistics, so two replicas of a model with batch norm do not
  compute the one-device step (measured on the VAE and GLF test models:
  0.3-5% apart in loss after 1-3 steps). Synchronized (and so unfused) batch
  norm computes the global statistics on any number of replicas; with it
  the comparison isolates what `train_step` owns. Returns how many batch
  norms it changed.
  """
  count = 0
  for module in gen.submodules:
    if isinstance(module, tf_keras.layers.BatchNormalization):
      module.synchronized = True
      module.fused = False
      count += 1
  return count


def mirrored_vs_one_device(make_generator, shape, steps=2, n=4,
                           learning_rate=1e-3):
  """`steps` train steps of one model on 1 device and on 2 replicas.

  The same initial weights, global batch (n distinct `blobs`) and seeds on
  both sides; MirroredStrategy over the first 2 logical CPU devices. Batch
  norm is synchronized on both sides (`sync_batch_norm`). Plain SGD, so the
  weights move by the learning rate times the global gradient: Adam divides
  out a gradient's scale and turns gradients of rounding size (e.g. a bias
  that a batch norm cancels) into steps of learning-rate size.

  Args:
    make_generator: () -> (generator, config).
    shape: (H, W, C).
    steps: train steps.
    n: the global batch.
    learning_rate: the SGD step.

  Returns:
    (one, two, moved): for each side a dict with 'metrics' (a list, per
    step, of {name: float}, the SUM over replicas of `train_step`'s
    outputs) and 'weights' (every variable of the generator after the
    steps, trainable or not, as numpy); `moved` is the largest change of
    any weight on one device.
  """
  x = blobs(n, shape)
  two_replicas = replicas_testutil.two_replicas()
  # Random state as in a fresh process, whatever ran before in this one:
  # after distribute_test's, glf_test's and pixel_ebm_test's cases the VAE's
  # two sides parted at step 1 (kl 5.739 vs 5.756); from seeds 0-6 set here
  # they agree within the tolerance below.
  tf_keras.utils.set_random_seed(0)
  init = None
  out = []
  for strategy in (tf.distribute.get_strategy(), two_replicas):
    gen, opt = _generator_and_sgd(strategy, make_generator, learning_rate)
    if init is None:
      init = [v.numpy() for v in gen.variables]
    else:
      assert [w.shape for w in init] == [v.shape for v in gen.variables]
      for v, w in zip(gen.variables, init):
        v.assign(w)
    metrics = _train_steps(strategy, gen, opt, x, n, steps)
    out.append({'metrics': metrics,
                'weights': [v.numpy() for v in gen.variables]})
  moved = max(float(np.max(np.abs(w - w0)))
              for w, w0 in zip(out[0]['weights'], init))
  return out[0], out[1], moved


def _generator_and_sgd(strategy, make_generator, learning_rate):
  """A new generator (batch norm synchronized) and its SGD, in `strategy`."""
  with strategy.scope():
    gen, _ = make_generator()
    if not sync_batch_norm(gen):
      raise RuntimeError('no batch norm found to synchronize')
    opt = tf_keras.optimizers.SGD(learning_rate)
    opt.build(gen.trainable_variables)
  return gen, opt


def _train_steps(strategy, gen, opt, x, n, steps):
  """`steps` compiled train steps on the global batch x (n images).

  Returns a list, per step, of {name: float}: `train_step`'s outputs summed
  over the replicas.
  """
  data = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(x).repeat())

  @tf.function
  def step(batch, seed, strategy=strategy, gen=gen, opt=opt):
    res = strategy.run(gen.train_step, args=(batch, seed, opt, n))
    return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, None)
            for k, v in res.items()}

  it = iter(data)
  return [{k: float(v) for k, v in
           step(next(it), tf.constant([0, i])).items()}
          for i in range(steps)]


def assert_mirrored_matches_one_device(test, make_generator, shape):
  """2 replicas compute the one-device train step (`mirrored_vs_one_device`).

  What `train_step` owns under a strategy: per-replica losses scaled by the
  global batch (a per-replica mean would double every loss), the gradient
  all-reduce (without it each replica applies its half: the weights move
  half as far, `grad_norm` halves), and noise drawn per global example
  (`rng.batch_normal`). The two sides differ by float rounding only
  (measured: <= 2e-5 relative after 3 steps); the tolerance is 1e-4.
  """
  one, two, moved = mirrored_vs_one_device(make_generator, shape)
  test.assertGreater(moved, 1e-3)  # The steps really train.
  for i, (a, b) in enumerate(zip(one['metrics'], two['metrics'])):
    test.assertEqual(sorted(a), sorted(b))
    for k in a:
      test.assertAllClose(a[k], b[k], rtol=1e-4, atol=0,
                          msg=f'step {i}: {k}')
  for i, (a, b) in enumerate(zip(one['weights'], two['weights'])):
    test.assertAllClose(a, b, rtol=1e-4, atol=1e-5, msg=f'variable {i}')


def decode_gradients(gen, n):
  """d sum(decode(z)^2) / dz for n prior draws, compiled and eager.

  Langevin needs this gradient; the eager one also shows that no bijector
  cache cuts it. Returns (compiled, eager), each [n, latent_dim].
  """

  def grad(z):
    with tf.GradientTape() as tape:
      tape.watch(z)
      e = tf.reduce_sum(tf.square(gen.decode(z)))
    return tape.gradient(e, z)

  z = gen.prior_sample(n, tf.constant([0, 1]))
  return tf.function(grad)(z), grad(z)
