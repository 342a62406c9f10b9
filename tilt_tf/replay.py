"""A replay buffer of chain states: the start points of persistent chains.

Persistent (PCD-style) chains start where earlier chains ended instead of
from scratch, so the negatives of maximum-likelihood EBM training have run
many more Langevin steps than one training step pays for. Used by the pixel
EBM (Du & Mordatch's buffer of images, tilt_tf/methods/pixel_ebm.py) and,
optionally, by the latent EBM (a buffer of latents z, `ebm.replay_buffer`;
tilt_tf/methods/latent_tilt.py):

  draw:  each start is a uniform draw from the buffer or, with probability
         `reinit_prob` (and always while the buffer is empty), a fresh start
         (uniform noise for pixels, a prior draw for latents);
  push:  the chains' end states overwrite the oldest entries (first in,
         first out).

Draws are stateless (a seed reproduces them); the buffer is variables, so
it goes into the training checkpoint and a resumed run continues it.
"""

import tensorflow as tf

from tilt_tf.errors import UserError

__all__ = ['ReplayBuffer']


class ReplayBuffer(tf.Module):
  """A fixed-size ring buffer of states [size, *shape] (float32).

  Args:
    size: capacity (states).
    shape: shape of one state, e.g. (H, W, C) or (latent_dim,).
    owner: who holds it, for the error under a multi-device strategy (the
      buffer is not mirrored, so it runs on one device).
  """

  def __init__(self, size, shape, owner='a replay buffer',
               name='replay_buffer'):
    if tf.distribute.get_strategy().num_replicas_in_sync > 1:
      raise UserError(f'{owner} runs on one device (its replay buffer is '
                      'not mirrored); drop --num_cpu_devices')
    super().__init__(name=name)
    self.size = int(size)
    self.shape = tuple(int(d) for d in shape)
    self.states = tf.Variable(tf.zeros((self.size,) + self.shape),
                              trainable=False, name='replay_buffer')
    self.filled = tf.Variable(0, dtype=tf.int32, trainable=False,
                              name='replay_filled')
    self.next = tf.Variable(0, dtype=tf.int32, trainable=False,
                            name='replay_next')

  def draw(self, n, seed, fresh, reinit_prob):
    """n chain starts: buffer entries, or `fresh(n, seed)` w.p. reinit_prob.

    Args:
      n: number of starts (int or scalar int32 tensor).
      seed: int32 [2] stateless seed.
      fresh: (n, seed) -> n fresh starts [n, *shape].
      reinit_prob: probability that a start is fresh (all are while the
        buffer is empty).

    Returns:
      [n, *shape] starts.
    """
    s_idx, s_mask, s_fresh = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3))
    n = tf.cast(n, tf.int32)
    filled = self.filled.read_value()
    idx = tf.random.stateless_uniform([n], seed=s_idx, minval=0,
                                      maxval=tf.maximum(filled, 1),
                                      dtype=tf.int32)
    replayed = tf.gather(self.states, idx)
    use_fresh = tf.logical_or(
        tf.random.stateless_uniform([n], seed=s_mask) < reinit_prob,
        tf.equal(filled, 0))
    mask = tf.reshape(use_fresh, [-1] + [1] * len(self.shape))
    return tf.where(mask, fresh(n, s_fresh), replayed)

  def push(self, x):
    """Writes x [n, *shape] over the oldest entries."""
    n = tf.shape(x)[0]
    pos = (self.next + tf.range(n)) % self.size
    self.states.scatter_nd_update(pos[:, None], x)
    self.next.assign((self.next + n) % self.size)
    self.filled.assign(tf.minimum(self.filled + n, self.size))

  def latest(self, n):
    """Up to n of the most recently pushed states (oldest first)."""
    filled = int(self.filled.numpy())
    n = min(n, filled)
    if not n:
      return self.states[:0]
    end = int(self.next.numpy()) or self.size
    idx = (tf.range(end - n, end) + self.size) % self.size
    return tf.gather(self.states, idx)
