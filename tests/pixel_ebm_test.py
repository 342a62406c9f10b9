"""Pixel-space EBM (Du & Mordatch): chain, replay buffer, training,
checkpoints; tiny shapes."""

import ml_collections
import numpy as np
import tensorflow as tf

import configs
from tests import replicas_testutil
from tilt_tf.errors import UserError
from tilt_tf.methods import base as method_base
from tilt_tf.methods import pixel_ebm

SHAPE = (8, 8, 1)


def make(buffer_size=32, langevin_steps=5, **overrides):
  cfg = ml_collections.ConfigDict(dict(
      channels=(4, 4), blocks=1, stem_stride=2, buffer_size=buffer_size,
      reinit_prob=0.05, langevin_steps=langevin_steps, step_size=10.0,
      noise=0.005, grad_clip=0.01, alpha=1.0, beta_1=0.0, learning_rate=1e-3,
      batch_size=8))
  cfg.update(overrides)
  return pixel_ebm.make(cfg, SHAPE), cfg


def data(n, seed=0):
  """Bright squares on dark backgrounds, [n, 8, 8, 1] in [0, 1]."""
  rng = np.random.default_rng(seed)
  x = np.zeros((n,) + SHAPE, np.float32)
  for i in range(n):
    r, c = rng.integers(0, 4, 2)
    x[i, r:r + 4, c:c + 4] = 1.0
  return tf.constant(x)


class ReplayLangevinTest(tf.test.TestCase):

  def test_step_is_clipped_and_stays_in_the_unit_box(self):
    w = tf.constant(np.linspace(-5, 5, 64).reshape((1,) + SHAPE), tf.float32)
    energy = lambda x: tf.reduce_sum(w * x, axis=[1, 2, 3])
    x0 = tf.fill((2,) + SHAPE, 0.5)
    out = pixel_ebm.replay_langevin(energy, x0, tf.constant([0, 1]), 1,
                                    step_size=10.0, noise=0.0, grad_clip=0.01)
    # |dE/dx| = |w| >> 0.01: every pixel moves by 10 * 0.01 against w.
    self.assertAllClose(out['x'], 0.5 - 0.1 * np.sign(w) * np.ones_like(x0))
    out = pixel_ebm.replay_langevin(energy, x0, tf.constant([0, 1]), 10,
                                    step_size=10.0, noise=0.0, grad_clip=0.01)
    self.assertAllInRange(out['x'], 0.0, 1.0)
    self.assertAllClose(out['x'], np.where(w.numpy() > 0, 0., 1.) *
                        np.ones_like(x0))

  def test_chain_descends_the_energy_and_is_reproducible(self):
    # dE/dx = 0.04 (x - 0.3): clipped far from 0.3, a 0.6 contraction near.
    energy = lambda x: 0.02 * tf.reduce_sum(tf.square(x - 0.3), [1, 2, 3])
    x0 = tf.random.stateless_uniform((4,) + SHAPE, seed=[1, 1])
    run = lambda seed: pixel_ebm.replay_langevin(
        energy, x0, tf.constant(seed), 60, record_every=20)
    a, b, c = run([3, 4]), run([3, 4]), run([3, 5])
    self.assertAllEqual(a['x'], b['x'])
    self.assertNotAllClose(a['x'], c['x'])
    self.assertAllClose(a['x'], tf.fill(a['x'].shape, 0.3), atol=0.03)
    self.assertEqual(a['trajectory'].shape, (4, 4) + SHAPE)
    self.assertAllEqual(a['trajectory'][0], x0)
    self.assertGreater(float(a['grad_norm']), 0.0)


class PixelEBMTest(tf.test.TestCase):

  def test_empty_buffer_gives_noise_then_ring_buffer(self):
    gen, _ = make(buffer_size=12)
    self.assertIsInstance(gen, pixel_ebm.PixelEBM)
    # A Method without a latent, trained in the base stage; not a Generator.
    self.assertIsInstance(gen, method_base.Method)
    self.assertFalse(gen.has_latent)
    self.assertEqual(gen.stage, 'base')
    starts = gen.draw_starts(6, tf.constant([0, 1]), 0.0)
    self.assertAllInRange(starts, 0.0, 1.0)
    self.assertGreater(float(tf.math.reduce_std(starts)), 0.2)  # U[0, 1].
    for i in range(3):  # 3 x 5 > 12: wraps around, oldest overwritten.
      gen.push(tf.fill((5,) + SHAPE, float(i + 1) / 10))
    self.assertEqual(int(gen.buffer_filled.numpy()), 12)
    self.assertEqual(int(gen.buffer_next.numpy()), 3)
    firsts = gen.buffer.numpy()[:, 0, 0, 0]
    self.assertAllClose(firsts, [.3] * 3 + [.1] * 2 + [.2] * 5 + [.3] * 2)
    replayed = gen.draw_starts(20, tf.constant([2, 3]), 0.0).numpy()
    for s in replayed:  # Each start is a whole buffer entry.
      self.assertIn(round(float(s[0, 0, 0]), 4), (0.1, 0.2, 0.3))
      self.assertAllClose(s, np.full(SHAPE, s[0, 0, 0]))

  def test_reinit_fraction(self):
    gen, _ = make(buffer_size=16)
    gen.push(tf.fill((16,) + SHAPE, 0.5))
    starts = gen.draw_starts(4000, tf.constant([5, 6]), 0.05).numpy()
    fresh = np.mean(np.any(starts != 0.5, axis=(1, 2, 3)))
    self.assertBetween(fresh, 0.04, 0.06)

  def test_training_lowers_the_loss_and_fills_the_buffer(self):
    gen, cfg = make(buffer_size=64, langevin_steps=10)
    x = data(8)
    opt = gen.make_optimizer()
    step = tf.function(lambda s: gen.train_step(x, s, opt, 8))
    out = [step(tf.constant([0, i])) for i in range(12)]
    self.assertEqual(int(gen.buffer_filled.numpy()), 64)  # 12 x 8, capped.
    loss = [float(o['loss']) for o in out]
    gap = [float(o['energy_samples'] - o['energy_data']) for o in out]
    self.assertTrue(np.all(np.isfinite(loss + gap)))
    # The chains start out finding energies below the data's; the updates
    # close that gap and lower the loss.
    self.assertLess(np.mean(loss[-3:]), loss[0])
    self.assertGreater(np.mean(gap[-3:]), gap[0])
    for key in ('loss', 'energy_data', 'energy_samples', 'grad_norm',
                'langevin_grad_norm'):
      self.assertIn(key, out[-1])
    loss, metrics = gen.per_example_loss(x, tf.constant([1, 1]))
    self.assertEqual(loss.shape, (8,))
    self.assertEqual(set(metrics), {'energy_data', 'energy_samples'})

  def test_parameter_clip_known_answer(self):
    v = [tf.Variable(tf.zeros(3))]
    first = pixel_ebm.clip_to_history([tf.constant([5., -5., 0.])], v, 0,
                                      k=3.0)
    self.assertAllClose(first[0], [5., -5., 0.])  # Step 0: no history.
    self.assertAllClose(v[0], 0.001 * np.array([25., 25., 0.]))
    # v / (1 - 0.999) = [25, 25, 0]: bounds 3 * 5 + 0.1 and 0.1.
    out = pixel_ebm.clip_to_history([tf.constant([100., -1., 7.])], v,
                                    tf.constant(1, tf.int64), k=3.0)
    self.assertAllClose(out[0], [15.1, -1., 0.1], atol=1e-3)

  def test_training_with_the_parameter_clip(self):
    gen, _ = make(buffer_size=64, langevin_steps=10, param_clip=3.0)
    opt = gen.make_optimizer()
    x = data(8)
    out = [gen.train_step(x, tf.constant([0, i]), opt, 8) for i in range(4)]
    self.assertEqual(int(opt.iterations.numpy()), 4)  # The clip's steps.
    for o in out:
      self.assertLessEqual(float(o['grad_norm_clipped']),
                           float(o['grad_norm']) + 1e-5)
    path = tf.train.Checkpoint(generator=gen).save(
        self.create_tempdir().full_path + '/ckpt')
    other, _ = make(buffer_size=64, param_clip=3.0)
    tf.train.Checkpoint(generator=other).restore(path).assert_consumed()
    self.assertAllEqual(other.grad_sq[0], gen.grad_sq[0])

  def test_checkpoint_holds_the_buffer(self):
    gen, cfg = make(buffer_size=16)
    x = data(8)
    opt = gen.make_optimizer()
    for i in range(2):
      gen.train_step(x, tf.constant([0, i]), opt, 8)
    path = tf.train.Checkpoint(generator=gen).save(
        self.create_tempdir().full_path + '/ckpt')
    other, _ = make(buffer_size=16)
    tf.train.Checkpoint(generator=other).restore(path).assert_consumed()
    self.assertAllEqual(other.buffer, gen.buffer)
    self.assertEqual(int(other.buffer_filled.numpy()), 16)
    seed = tf.constant([4, 4])
    a = gen.sample_chains(5, seed, 3)
    b = other.sample_chains(5, seed, 3)
    self.assertAllEqual(a['x'], b['x'])
    self.assertEqual(a['x'].shape, (5,) + SHAPE)
    out = gen.sample(5, seed, 3)  # The Method contract: one set, twice.
    self.assertAllEqual(out['x_base'], a['x'])
    self.assertAllEqual(out['x_tilted'], a['x'])

  def test_configs_and_refusals(self):
    paper = configs.get_config('pixel_ebm', 'fashion_mnist', 'paper')
    self.assertEqual((paper.base.steps, paper.base.step_size,
                      paper.base.noise, paper.base.grad_clip,
                      paper.base.langevin_steps, paper.base.reinit_prob,
                      paper.base.buffer_size),
                     (20_000, 10.0, 0.005, 0.01, 60, 0.05, 10_000))
    self.assertEqual(
        configs.get_config('pixel_ebm', 'cifar10', 'paper').base.steps,
        100_000)
    with self.assertRaisesRegex(UserError, 'buffer_size'):
      make(buffer_size=4)
    # The clip joined the config later: in a run's identity only when set.
    from tilt_tf.runtime import build  # pylint: disable=g-import-not-at-top
    small = configs.get_config('pixel_ebm', 'fashion_mnist', 'small')
    self.assertNotIn('param_clip', build.identity(small, (28, 28, 1))['base'])
    small.base.param_clip = 3.0
    self.assertEqual(
        build.identity(small, (28, 28, 1))['base']['param_clip'], 3.0)
    with self.assertRaisesRegex(UserError, 'must be >= 0'):
      configs.check_bounds('base.param_clip', -1.0, '--set=base.param_clip')
    with replicas_testutil.two_replicas().scope():
      with self.assertRaisesRegex(UserError, 'one device'):
        make()


if __name__ == '__main__':
  replicas_testutil.two_replicas()
  tf.test.main()
