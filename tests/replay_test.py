"""The replay buffer and the latent EBM's persistent chains."""

import numpy as np
import tensorflow as tf

import configs
from tilt_tf import replay
from tilt_tf.methods import latent_tilt
from tilt_tf.runtime import build


def _const(value):
  return lambda n, seed: tf.fill(tf.stack([n, 3]), value)


class ReplayBufferTest(tf.test.TestCase):

  def test_ring_buffer_and_latest(self):
    buf = replay.ReplayBuffer(5, (3,))
    self.assertEqual(buf.latest(4).shape, (0, 3))
    # Empty: every start is fresh, whatever reinit_prob says.
    self.assertAllEqual(buf.draw(4, tf.constant([0, 1]), _const(-1.), 0.0),
                        tf.fill([4, 3], -1.))
    for i in range(3):  # 3 x 2 > 5: the oldest entry is overwritten.
      buf.push(tf.fill([2, 3], float(i + 1)))
    self.assertEqual(int(buf.filled.numpy()), 5)
    self.assertAllEqual(buf.states[:, 0], [3., 1., 2., 2., 3.])
    self.assertAllEqual(buf.latest(3)[:, 0], [2., 3., 3.])  # Oldest first.
    self.assertAllEqual(buf.latest(9)[:, 0], [1., 2., 2., 3., 3.])
    drawn = buf.draw(50, tf.constant([2, 3]), _const(-1.), 0.0).numpy()
    self.assertTrue(set(drawn[:, 0]) <= {1., 2., 3.})
    self.assertAllEqual(drawn, np.repeat(drawn[:, :1], 3, axis=1))

  def test_reinit_fraction_and_stateless(self):
    buf = replay.ReplayBuffer(8, (3,))
    buf.push(tf.zeros([8, 3]))
    draw = lambda s: buf.draw(4000, tf.constant(s), _const(1.), 0.1).numpy()
    a = draw([5, 6])
    self.assertBetween(np.mean(a[:, 0] == 1.), 0.08, 0.12)
    self.assertAllEqual(a, draw([5, 6]))
    self.assertNotAllEqual(a, draw([5, 7]))


class PersistentLatentChainsTest(tf.test.TestCase):

  def _method(self, **ebm):
    config = configs.get_config('mlp_vae', '25gaussians', 'test')
    config.ebm.update(ebm)
    return latent_tilt.LatentTilt(build.make_generator(config, (2,), None),
                                  config.ebm, (2,))

  def test_training_chains_continue_from_the_buffer(self):
    method = self._method(replay_buffer=16, reinit_prob=0.0,
                          langevin_steps=2)
    opt = method.make_optimizer()
    x = tf.zeros([8, 2])
    method.train_step(x, tf.constant([0, 1]), opt, 8)
    first = method.replay.states.numpy()[:8]
    self.assertEqual(int(method.replay.filled.numpy()), 8)
    method.train_step(x, tf.constant([0, 2]), opt, 8)
    self.assertEqual(int(method.replay.filled.numpy()), 16)
    # With reinit_prob 0 the second batch's chains started at first-batch
    # end states, 2 steps of eps 0.01 (noise 0.1 per step) away from them.
    second = method.replay.states.numpy()[8:]
    nearest = np.min(np.linalg.norm(second[:, None] - first[None], axis=-1),
                     axis=1)
    self.assertLess(float(np.max(nearest)), 0.6)
    self.assertIn('replay_buffer', method.checkpoint_items())

  def test_default_is_short_run_without_a_buffer(self):
    method = self._method()
    self.assertIsNone(method.replay)
    self.assertNotIn('replay_buffer', method.checkpoint_items())

  def test_a_buffer_makes_another_run(self):
    config = configs.get_config('mlp_vae', '25gaussians', 'test')
    plain = build.identity(config, (2,))
    self.assertNotIn('replay_buffer', plain['ebm'])  # Older runs match.
    config.ebm.replay_buffer = 64
    self.assertNotEqual(build.identity(config, (2,)), plain)


if __name__ == '__main__':
  tf.test.main()
