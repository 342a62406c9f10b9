"""GLOW generator: latent size, invertibility, log-dets, ActNorm init,
checkpoints, a training step, gradients and bounded memory."""

import ctypes

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

import configs
from tests import generator_testutil
from tests import glow_testutil
from tilt_tf.generators import glow
from tilt_tf.generators import registry

tfb = tfp.bijectors
GlowLib = tfp.bijectors.glow  # The module (ActivationNormalization, Expand).


def images(n, shape, seed=0):
  """n quantized blob images k/255 in [0, 1] with pixel noise."""
  rng = np.random.default_rng(seed)
  h, w, c = shape
  yy, xx = np.mgrid[0:h, 0:w] / h
  out = []
  for i in range(n):
    cy, cx = rng.uniform(0.3, 0.7, 2)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.03)
    out.append(np.repeat(blob[..., None], c, -1) +
               0.1 * rng.uniform(size=(h, w, c)))
  k = np.round(255 * np.clip(np.stack(out), 0, 1))
  return tf.constant(k / 255., tf.float32)


def make_glow(shape=(28, 28, 1), steps=2, width=8, preprocess='logit',
              seed=0, clamp=4.0):
  cfg = ml_collections.ConfigDict(dict(
      num_blocks=2, steps_per_block=steps, width=width, preprocess=preprocess,
      logit_alpha=0.05, flow_seed=seed, learning_rate=5e-4,
      coupling_clamp=clamp))
  return registry.make_generator('glow', cfg, shape), cfg


def randomize(gen, seed=0, scale=0.05):
  """Non-trivial coupling/exit nets (their last convs start at zero)."""
  rng = np.random.default_rng(seed)
  for v in gen.trainable_variables:
    if len(v.shape) == 4:
      v.assign(v + scale * rng.standard_normal(v.shape).astype(np.float32))


def actnorms(gen):
  return [m for m in gen.flow.submodules
          if isinstance(m, GlowLib.ActivationNormalization)]


_MALLINFO_FIELDS = ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
                    'fsmblks', 'uordblks', 'fordblks', 'keepcost')


class _MallInfo2(ctypes.Structure):  # glibc >= 2.33: size_t fields.
  _fields_ = [(n, ctypes.c_size_t) for n in _MALLINFO_FIELDS]


class _MallInfo(ctypes.Structure):  # Older glibc: int fields.
  _fields_ = [(n, ctypes.c_int) for n in _MALLINFO_FIELDS]


def heap_mb():
  """MB that malloc has handed out and not got back (glibc's mallinfo2, or
  mallinfo before glibc 2.33: in-use arena bytes + mmapped blocks). Unlike
  the resident set size, it grows with a leak even when freed heap pages
  that are still resident absorb it (a 60 KB-per-call leak over 100 eager
  decodes moved RSS by 0.9 MB only)."""
  libc = ctypes.CDLL('libc.so.6')
  new = hasattr(libc, 'mallinfo2')
  call = libc.mallinfo2 if new else libc.mallinfo
  call.restype = _MallInfo2 if new else _MallInfo
  info = call()
  return (info.uordblks + info.hblkhd) / 2**20


_CALLS = 100
_EAGER_CALLS = 20


class GlowTest(tf.test.TestCase):

  def test_latent_is_the_full_flow_latent(self):
    gen, _ = make_glow()
    self.assertIsInstance(gen, glow.Glow)
    self.assertEqual(gen.latent_dim, 784)
    self.assertEqual(gen.flow.inverse_event_shape((28, 28, 1)), (784,))
    # Configs: the paper's 28x28 GLOW and CIFAR-10's 3-level one.
    paper = configs.get_config('glow', 'fashion_mnist', 'paper')
    self.assertEqual((paper.base.num_blocks, paper.base.steps_per_block,
                      paper.base.width, paper.base.batch_size),
                     (2, 16, 64, 64))
    self.assertEqual(paper.base.steps, 128 * (60_000 // 64))
    cifar = configs.get_config('glow', 'cifar10', 'paper')
    self.assertEqual((cifar.base.num_blocks, cifar.base.steps_per_block,
                      cifar.base.width), (3, 32, 256))
    self.assertEqual(cifar.base.steps, 256 * (50_000 // 64))
    small = glow.Glow((32, 32, 3), num_blocks=3, steps_per_block=1, width=4)
    self.assertEqual(small.latent_dim, 3072)

  def test_decode_inverts_encode(self):
    for preprocess in glow.PREPROCESS:
      gen, _ = make_glow(preprocess=preprocess)
      x = images(6, (28, 28, 1))
      gen.build(x)
      randomize(gen)
      z = gen.encode(x)
      self.assertEqual(z.shape, (6, 784))
      # Half a quantization bin: decoding recovers k / 255 exactly.
      self.assertAllClose(gen.decode(z), x, atol=0.5 / 255, rtol=0)
      u, samples = gen.sample(3, tf.constant([1, 2]))
      self.assertEqual(u.shape, (3, 784))
      self.assertAllInRange(samples, 0.0, 1.0)

  def test_log_det_matches_autodiff_jacobian(self):
    shape = (8, 8, 1)  # 64 dims: a Jacobian we can afford.
    gen, _ = make_glow(shape)
    x = images(4, shape)
    gen.build(x)
    randomize(gen, scale=0.1)
    # Flow: log|det dy/dz| from the bijector vs slogdet of the Jacobian.
    z = tf.random.stateless_normal([2, 64], seed=[0, 3])
    with tf.GradientTape() as tape:
      tape.watch(z)
      y = tf.reshape(gen.flow.forward(tf.identity(z)), [2, 64])
    _, logdet = tf.linalg.slogdet(tape.batch_jacobian(y, z))
    fldj = gen.flow.forward_log_det_jacobian(tf.identity(z), event_ndims=1)
    self.assertAllClose(fldj, logdet, atol=1e-3, rtol=1e-4)
    # The whole density: x_deq -> (pre-processing, flow^-1) -> z.
    x_deq = gen.dequantize(x[:2], tf.constant([5, 5]))
    with tf.GradientTape() as tape:
      tape.watch(x_deq)
      y, _ = gen._to_flow_space(x_deq)
      z = gen.flow.inverse(tf.identity(y))
    jac = tape.batch_jacobian(z, x_deq)
    _, logdet = tf.linalg.slogdet(tf.reshape(jac, [2, 64, 64]))
    log_px = (-0.5 * tf.reduce_sum(z * z, -1) - 32. * np.log(2 * np.pi) +
              logdet)
    nll = gen.nll(x[:2], tf.constant([5, 5]))
    self.assertAllClose(nll, -log_px + 64 * np.log(256.), atol=2e-2,
                        rtol=1e-4)
    loss, metrics = gen.per_example_loss(x[:2], tf.constant([5, 5]))
    self.assertAllClose(loss, nll)
    self.assertAllClose(metrics['bits_per_dim'], nll / (64 * np.log(2.)))

  def test_actnorm_data_init(self):
    gen, _ = make_glow(steps=2)
    layers = actnorms(gen)
    self.assertLen(layers, 2 * 2)
    self.assertFalse(any(bool(a._initialized.numpy()) for a in layers))
    x = images(16, (28, 28, 1))
    gen.build(x)
    self.assertTrue(all(bool(a._initialized.numpy()) for a in layers))
    # The first ActNorm of the inverse pass sees the squeezed, pre-processed
    # data: it standardizes that batch per channel.
    y, _ = gen._to_flow_space(gen.dequantize(x, tf.constant([0, 0])))
    squeezed = GlowLib.Expand(input_shape=[14, 14, 4]).inverse(y)
    standardized = [a._bijector.inverse(squeezed) for a in layers
                    if a._m.shape == (4,)]
    best = min(float(tf.reduce_max(tf.abs(tf.math.reduce_mean(s, [0, 1, 2]))))
               + float(tf.reduce_max(tf.abs(
                   tf.math.reduce_std(s, [0, 1, 2]) - 1.)))
               for s in standardized)
    self.assertLess(best, 1e-3)
    # Initialized once: another batch leaves the parameters alone.
    before = [a._m.numpy().copy() for a in layers]
    gen.build(images(16, (28, 28, 1), seed=1))
    for a, m in zip(layers, before):
      self.assertAllEqual(a._m.numpy(), m)

  def test_clamped_couplings_keep_decoding_finite(self):
    # Scale logits of -60 everywhere: TFP's couplings then divide by
    # sigmoid(-58) ~ 1e-25 when decoding, the clamped ones by at most 8.4.
    z = None
    for clamp, finite in ((4.0, True), (0.0, False)):
      gen, _ = make_glow(clamp=clamp)
      gen.build(images(4, (28, 28, 1)))
      nets = [m for m in gen.flow.submodules
              if isinstance(m, (glow.ClampedCouplingNetwork,
                                tfb.GlowDefaultNetwork))]
      self.assertNotEmpty(nets)
      for net in nets:
        last = [l for l in net.layers
                if isinstance(l, tf_keras.layers.Conv2D)][-1]
        c = last.bias.shape[0] // 2
        last.bias.assign(tf.concat([tf.fill([c], -60.), last.bias[c:]], 0))
      if z is None:
        z = 3. * gen.prior_sample(16, tf.constant([0, 3]))
      x = gen.decode(z)
      self.assertEqual(bool(np.all(np.isfinite(x.numpy()))), finite, clamp)

  def test_matmul_inverse_decodes_as_tfp(self):
    # Decoding inverts each 1x1 convolution by one matmul with W^-1
    # (glow.MatmulInverseOneByOneConv) instead of TFP's per-pixel LU solve:
    # on the same weights, the same images, flow outputs and latent
    # gradients up to float32 round-off, compiled and eager.
    tf_keras.utils.set_random_seed(0)
    gen, _ = make_glow(steps=2)
    x = images(8, (28, 28, 1))
    gen.build(x)
    randomize(gen)
    convs = [m for m in gen.flow.submodules
             if isinstance(m, tfb.glow.OneByOneConv)]
    self.assertLen(convs, 2 * 2)
    self.assertTrue(all(isinstance(m, glow.MatmulInverseOneByOneConv)
                        for m in convs))
    glow_testutil.perturb_one_by_one_convs(convs, seed=3)
    z = tf.concat([gen.encode(x[:4]),
                   gen.prior_sample(4, tf.constant([0, 5]))], 0)
    cotangent = tf.random.stateless_normal([8, 28, 28, 1], seed=[4, 4])

    def outputs(z=z):  # 4 encoded images, then 4 prior draws.
      return glow_testutil.decode_outputs(gen, z, cotangent, n_encoded=4)

    compiled = tf.function(outputs)
    new, new_compiled = outputs(), compiled()
    self.assertEqual(glow.use_matmul_inverse(gen.flow, enabled=False), 4)
    self.assertFalse(any(isinstance(m, glow.MatmulInverseOneByOneConv)
                         for m in convs))
    old, old_compiled = outputs(), tf.function(outputs)()
    # Round-off of the flow itself: TFP's decode of z vs of z with one
    # float32 ulp of relative noise (the couplings amplify any round-off).
    ulp_noise = 2.**-24 * tf.random.stateless_uniform(z.shape, [0, 7], -1, 1)
    y_jittered = outputs(z * (1. + ulp_noise))[1]
    ulp_effect = float(tf.reduce_max(tf.abs(y_jittered - old[1])))
    for a, b in ((new, old), (new_compiled, old_compiled), (new_compiled, old)):
      images_new, y_new, grad_new = a
      images_old, y_old, grad_old = b
      self.assertAllClose(images_new, images_old, atol=1e-5, rtol=0)
      self.assertAllClose(y_new, y_old, atol=5e-5, rtol=1e-5)
      self.assertLessEqual(float(tf.reduce_max(tf.abs(y_new - y_old))),
                           4 * ulp_effect + 1e-6)
      self.assertAllClose(grad_new, grad_old, atol=1e-4, rtol=1e-4)
    self.assertGreater(float(tf.reduce_max(tf.abs(old[2]))), 1e-2)
    # The encode direction and the log-dets are TFP's either way, and a
    # checkpoint written with TFP's class restores into the new one.
    path = tf.train.Checkpoint(generator=gen).save(
        self.create_tempdir().full_path + '/ckpt')
    other, _ = make_glow(steps=2, seed=1)
    other.build(images(8, (28, 28, 1), seed=2))
    tf.train.Checkpoint(generator=other).restore(path).assert_consumed()
    self.assertAllClose(other.decode(z), old[0], atol=1e-5, rtol=0)
    self.assertAllClose(other.nll(x, tf.constant([1, 1])),
                        gen.nll(x, tf.constant([1, 1])), atol=0, rtol=0)

  def test_variables_tracked_and_checkpoint_round_trip(self):
    gen, cfg = make_glow()
    x = images(8, (28, 28, 1))
    gen.build(x)
    n_nets = sum(len(m.trainable_variables) for m in gen.flow.submodules
                 if isinstance(m, (glow.ClampedCouplingNetwork,
                                   tfb.GlowDefaultExitNetwork)))
    self.assertGreater(n_nets, 0)
    self.assertEqual(len(gen.trainable_variables),
                     n_nets + 3 * len(actnorms(gen)))  # m, log s, 1x1 LU.
    opt = gen.make_optimizer(cfg)
    for i in range(2):
      gen.train_step(x, tf.constant([0, i]), opt, 8)
    path = tf.train.Checkpoint(generator=gen).save(
        self.create_tempdir().full_path + '/ckpt')
    other, _ = make_glow(seed=1)
    other.build(images(8, (28, 28, 1), seed=2))
    z = gen.prior_sample(4, tf.constant([7, 7]))
    self.assertNotAllClose(gen.decode(z), other.decode(z))
    tf.train.Checkpoint(generator=other).restore(path).assert_consumed()
    self.assertAllClose(gen.decode(z), other.decode(z), atol=0, rtol=0)
    self.assertAllClose(gen.encode(x), other.encode(x), atol=0, rtol=0)

  def test_train_steps_lower_the_loss(self):
    gen, cfg = make_glow()
    x = images(8, (28, 28, 1))
    gen.build(x)
    opt = gen.make_optimizer(cfg)
    step = tf.function(lambda s: gen.train_step(x, s, opt, 8))
    out = [step(tf.constant([0, i])) for i in range(15)]
    bpd = [float(o['bits_per_dim']) for o in out]
    self.assertTrue(np.all(np.isfinite(bpd)))
    self.assertLess(np.mean(bpd[-3:]), bpd[0] - 0.2)
    self.assertAllClose(float(out[0]['loss']),
                        bpd[0] * 784 * np.log(2.), rtol=1e-5)
    metrics = gen.test_metrics(np.uint8(255 * x.numpy()), batch_size=4)
    self.assertLess(metrics['test_bits_per_dim'], bpd[0])

  def test_decode_differentiable_in_z(self):
    gen, _ = make_glow()
    gen.build(images(4, (28, 28, 1)))
    randomize(gen)
    g, g_eager = generator_testutil.decode_gradients(gen, 3)
    self.assertEqual(g.shape, (3, 784))
    self.assertGreater(float(tf.reduce_sum(tf.abs(g))), 0.0)
    self.assertAllClose(g_eager, g, rtol=1e-4, atol=1e-5)

  def test_unknown_batch_size(self):
    # Samplers are traced with the number of samples as a tensor.
    gen, _ = make_glow()
    x = images(6, (28, 28, 1))
    gen.build(x)
    decode = tf.function(gen.decode, input_signature=[
        tf.TensorSpec([None, 784], tf.float32)])
    encode = tf.function(gen.encode, input_signature=[
        tf.TensorSpec([None, 28, 28, 1], tf.float32)])
    nll = tf.function(gen.nll, input_signature=[
        tf.TensorSpec([None, 28, 28, 1], tf.float32),
        tf.TensorSpec([2], tf.int32)])
    z = encode(x)
    self.assertEqual(z.shape, (6, 784))
    self.assertAllClose(decode(z), x, atol=0.5 / 255, rtol=0)
    self.assertAllClose(nll(x, tf.constant([1, 2])),
                        gen.nll(x, tf.constant([1, 2])), rtol=1e-5)

  def test_memory_bounded_over_repeated_calls(self):
    # Heap growth (heap_mb) over 100 compiled calls and 20 eager decodes
    # (~0.13 s each): a leak of 10 KB per compiled call crosses the 1 MB
    # bound, one of 25 KB per eager decode the 0.5 MB one (none measured:
    # < 0.1 MB; a 60 KB-per-call leak added to decode failed it with 2.3 MB).
    # tensorflow/probability#1177 reports RSS growing while training a
    # tfb.Glow: repeated compiled train steps, compiled decode (+ input
    # gradient, as in a Langevin step) and eager decode calls must not
    # grow it.
    gen, cfg = make_glow()
    x = images(4, (28, 28, 1))
    gen.build(x)
    opt = gen.make_optimizer(cfg)
    train = tf.function(lambda s: gen.train_step(x, s, opt, 4))
    for i in range(10):
      train(tf.constant([0, i]))
    start = heap_mb()
    for i in range(_CALLS):
      train(tf.constant([1, i]))
    training = heap_mb() - start

    @tf.function
    def step(z):
      with tf.GradientTape() as tape:
        tape.watch(z)
        e = tf.reduce_sum(gen.decode(z))
      return tape.gradient(e, z)

    z = gen.prior_sample(8, tf.constant([0, 1]))
    for _ in range(10):  # Warm up: trace, allocator pools.
      step(z)
      gen.decode(z)
    start = heap_mb()
    for _ in range(_CALLS):
      step(z)
    compiled = heap_mb() - start
    start = heap_mb()
    for _ in range(_EAGER_CALLS):
      gen.decode(z)
    eager = heap_mb() - start
    print(f'Heap growth: train steps {training:.2f} MB and compiled decode '
          f'{compiled:.2f} MB over {_CALLS} calls, eager decode {eager:.2f} '
          f'MB over {_EAGER_CALLS}')
    self.assertLess(training, 1.0)
    self.assertLess(compiled, 1.0)
    self.assertLess(eager, 0.5)


if __name__ == '__main__':
  tf.test.main()
