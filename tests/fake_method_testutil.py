"""Fakes for the runtime's and stages' unit tests: a one-variable Method and
a scripted scorer."""

import tensorflow as tf
import tf_keras

from tilt_tf.methods import base

__all__ = ['OneVariableMethod', 'scripted_scorer']


class OneVariableMethod(base.Method):
  """E(x) = w * |x|^2 on 2-D points; training pulls w towards the batch
  mean of x[:, 0]. Samples: x_base ~ N(0, I) from the seed, x_tilted =
  x_base + w * num_steps / 10 (the same chains' start and end)."""

  stage = 'tilt'

  def __init__(self, w=0.0, learning_rate=0.1):
    super().__init__(name='one_variable')
    self.w = tf.Variable(w, dtype=tf.float32, name='w')
    self.learning_rate = learning_rate

  @property
  def energy(self):
    return lambda x: self.w * tf.reduce_sum(tf.square(x), axis=-1)

  def checkpoint_items(self):
    return {'energy': self.w}

  def make_optimizer(self):
    opt = tf_keras.optimizers.SGD(self.learning_rate)
    opt.build([self.w])
    return opt

  def train_step(self, x, seed, optimizer, global_batch_size):
    del seed
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.square(self.w - x[:, 0])) / global_batch_size
    optimizer.apply_gradients([(tape.gradient(loss, self.w), self.w)])
    return {'loss': loss}

  def sample(self, n, seed, num_steps, record_every=0):
    x0 = tf.random.stateless_normal([n, 2], seed)
    x = x0 + self.w * tf.cast(num_steps, tf.float32) / 10.0
    out = {'z_base': x0, 'x_base': x0, 'z_tilted': x, 'x_tilted': x,
           'grad_norm': tf.constant(0.0)}
    if record_every:
      out['trajectory'] = tf.stack([x0, x])
    return out


def scripted_scorer(scores, name='scripted'):
  """Samples -> the next of `scores` (a check scores tilted, then base)."""
  it = iter(scores)

  def score(samples):
    del samples
    return next(it)

  score.name = name
  return score
