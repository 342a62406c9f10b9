"""The §5.3 quality monitor: an action of the training loop that scores
samples every few steps, keeps the best energy and can stop early.

The score never reads the test split: images are scored by FID against a
validation slice held out of the energy's training data (a feature space of
the data set's classifier, tilt_tf/fid.py), or, without a classifier, by the
energy distance to that slice in data space; toy points by the energy
distance to fresh draws. The test split is for the final evaluation only.
"""

import math

from absl import logging
import numpy as np
import tensorflow as tf

from tilt_tf import figures
from tilt_tf import io_utils
from tilt_tf import toy_metrics

__all__ = ['Monitor', 'fid_scorer', 'energy_distance_scorer', 'finite_rows']


def finite_rows(samples):
  """How many rows of `samples` [N, ...] are not all finite."""
  return int(np.sum(~np.isfinite(
      np.asarray(samples, np.float32).reshape(len(samples), -1)).all(1)))


def energy_distance_scorer(reference, seed=0):
  """Samples -> energy distance to `reference` (flattened), lower is better."""
  ref = np.asarray(reference, np.float32).reshape(len(reference), -1)
  if ref.max(initial=0) > 1.5 and np.asarray(reference).dtype == np.uint8:
    ref = ref / 255.0

  def score(samples):
    x = np.asarray(samples, np.float32).reshape(len(samples), -1)
    return toy_metrics.energy_distance(x, ref, seed=seed)

  score.name = 'energy_distance'
  return score


def fid_scorer(reference_images, dataset, data_dir=None, classifier_epochs=None):
  """Samples -> FID against `reference_images` in the data set's classifier
  feature space (built, or loaded from cache, on first use)."""
  state = {}

  def score(samples):
    from tilt_tf import fid  # pylint: disable=g-import-not-at-top
    if not state:
      state['extractor'] = fid.get_extractor(
          dataset, data_dir, classifier_epochs=classifier_epochs)
      state['real'] = fid.reference_activations(state['extractor'],
                                                reference_images)
    return fid.fid_from_activations(
        state['real'], fid.activations(samples, state['extractor']))

  score.name = 'fid'
  return score


class Monitor:
  """Every `every` steps (and at `total`): samples, scores, keeps the best.

  Its state (best score and step, checks since the best) lives in variables
  that the stage's checkpoint holds (`checkpoint_items`), so a resumed run
  goes on judging where it stopped; the curve goes to `monitor.json`.
  """

  def __init__(self, run_dir, method, score_fn, best_manager, every, total,
               num_samples, num_steps, seed, patience=0, grid=64,
               data_for_histograms=None):
    self.run_dir = run_dir
    self.method = method
    self.score_fn = score_fn
    self.best_manager = best_manager
    self.every, self.total, self.patience = every, total, patience
    self.num_samples, self.num_steps = num_samples, num_steps
    self.seed = tf.constant([seed, 7], tf.int32)
    self.grid = grid
    self.data = data_for_histograms
    self.best_score = tf.Variable(math.inf, dtype=tf.float64,
                                  name='best_score')
    self.best_step = tf.Variable(-1, dtype=tf.int64, name='best_step')
    self.checks_since_best = tf.Variable(0, dtype=tf.int64)
    self.curve = []
    self._sample = tf.function(method.sample, reduce_retracing=True)

  def checkpoint_items(self):
    return {'best_score': self.best_score, 'best_step': self.best_step,
            'checks_since_best': self.checks_since_best}

  @property
  def stopped(self):
    return bool(self.patience and
                int(self.checks_since_best.numpy()) >= self.patience)

  def resume(self, restored_step):
    """Drops checks after `restored_step` (a run killed before its
    checkpoint redoes them, with the same seeds and scores)."""
    self.curve = [m for m in io_utils.read_json(
        self.run_dir.path('monitor.json'), []) if m['step'] <= restored_step]

  def score(self, samples):
    """Lower is better; diverged chains (non-finite samples) score inf."""
    bad = finite_rows(samples)
    if bad:
      logging.warning('monitor: %d of %d samples are not finite (diverged '
                      'chains); this check scores inf', bad, len(samples))
      return math.inf
    return float(self.score_fn(samples))

  def __call__(self, step):
    """None if no check is due, else whether to stop (patience)."""
    if self.every <= 0 or (step % self.every and step != self.total):
      return None
    out = self._sample(tf.constant(self.num_samples), self.seed,
                       tf.constant(self.num_steps))
    score = self.score(out['x_tilted'].numpy())
    # The same chains' starting points, decoded: the untilted reference.
    base_score = self.score(out['x_base'].numpy())
    self._summaries(step, out)
    self.run_dir.scalars('monitor', step, {'score': score,
                                           'base_score': base_score})
    self.curve.append({'step': step, 'score': round(score, 6),
                       'base_score': round(base_score, 6)})
    if score < float(self.best_score.numpy()):
      self.best_score.assign(score)
      self.best_step.assign(step)
      self.checks_since_best.assign(0)
      self.best_manager.save(checkpoint_number=step)
    else:
      self.checks_since_best.assign_add(1)
    io_utils.write_json(self.run_dir.path('monitor.json'), self.curve)
    logging.info('tilt monitor step %d: %s %.5f (base %.5f; best %.5f at '
                 'step %d)', step, getattr(self.score_fn, 'name', 'score'),
                 score, base_score, float(self.best_score.numpy()),
                 int(self.best_step.numpy()))
    return self.stopped

  def _summaries(self, step, out):
    """Energy histograms of data vs base vs tilted samples, and the tilted
    samples as a picture."""
    x = out['x_tilted']
    with self.run_dir.writer.as_default(step=step):
      named = [('base_samples', out['x_base']), ('tilted_samples', x)]
      if self.data is not None:
        named.insert(0, ('data', tf.cast(self.data[:len(x)], tf.float32)))
      for name, v in named:
        tf.summary.histogram(f'energy/{name}', self.method.energy(v))
      if len(x.shape) == 2 and x.shape[-1] == 2:
        panels = ([self.data[:len(x)]] if self.data is not None else []) + [x]
        png = figures.toy_scatter_png(
            panels, (['data'] if self.data is not None else []) +
            [f'tilted, EBM step {step}'])
      elif len(x.shape) == 4:
        png = figures.grid_png([x[:self.grid]])
      else:
        return
      tf.summary.image('monitor/tilted_samples', tf.io.decode_png(png)[None])
