"""The §5.3 quality monitor: an action of the training loop that scores
samples every few steps, keeps the best energy and can stop early; its
condition and actions are in runtime/monitor_actions.py.

The score never reads the test split: images are scored by FID against a
validation slice held out of the energy's training data (a feature space of
the data set's classifier, tilt_tf/fid.py), or, without a classifier, by the
energy distance to that slice in data space; toy points by the energy
distance to fresh draws. The test split is for the final evaluation only.
"""

import dataclasses
import math
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tilt_tf import data as data_lib
from tilt_tf import toy_metrics
from tilt_tf import rng
from tilt_tf.runtime import monitor_actions as actions_lib

__all__ = ['Monitor', 'MonitorSettings', 'fid_scorer',
           'energy_distance_scorer', 'finite_rows']


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
  """When and how the monitor checks: every `every` steps (0: never),
  `num_samples` chains of `num_steps` Langevin steps; early stopping after
  `patience` checks without a new best (0: never); a `grid` x `grid`
  picture; `data` (training examples, floats) for the histograms."""
  every: int
  num_samples: int
  num_steps: int
  patience: int = 0
  grid: int = 64
  data: Optional[np.ndarray] = dataclasses.field(default=None, repr=False,
                                                  compare=False)

  @classmethod
  def from_config(cls, config, train) -> 'MonitorSettings':
    """A run config's monitor (its `ebm` section and sample.grid), with
    the first ebm.monitor_samples examples of `train` for the histograms."""
    e = config.ebm
    return cls(every=e.monitor_every, num_samples=e.monitor_samples,
               num_steps=e.sample_langevin_steps, patience=e.patience,
               grid=config.sample.grid,
               data=data_lib.as_float(train[:e.monitor_samples]))


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
  from tilt_tf import fid  # pylint: disable=g-import-not-at-top
  return fid.frechet_scorer(
      lambda: fid.get_extractor(dataset, data_dir,
                                classifier_epochs=classifier_epochs),
      reference_images, 'fid')


class Monitor:
  """Every `every` steps (and at `total`): a check that samples and scores,
  judged by a condition and handed to actions (runtime/monitor_actions.py).

  The check draws `num_samples` chains from seed rng.MONITOR ([seed, 7])
  and scores their tilted samples and, as the untilted reference, the same
  chains' decoded starting points. `NewBestMetric` keeps the best score (its state is in
  `checkpoint_items`, so a resumed run goes on judging where it stopped);
  then the histograms and picture, the best checkpoint (`best_manager`),
  the curve (monitor.json) and early stopping after `patience` checks
  without a new best (0: never).
  """

  def __init__(self, run_dir, method, score_fn: Callable[[np.ndarray], float],
               best_manager: tf.train.CheckpointManager, *,
               settings: MonitorSettings, total: int, seed: int):
    self.run_dir = run_dir
    self.method = method
    self.score_fn = score_fn
    self.best_manager = best_manager
    self.every, self.total = settings.every, total
    self.patience = settings.patience
    self.num_samples, self.num_steps = settings.num_samples, settings.num_steps
    self.seed = tf.constant(rng.stream(seed, rng.MONITOR), tf.int32)
    self.condition = actions_lib.NewBestMetric('score')
    self.early_stopping = actions_lib.EarlyStopping(self.condition,
                                                    settings.patience)
    self.curve_writer = actions_lib.CurveWriter(
        run_dir, getattr(score_fn, 'name', 'score'))
    self.actions = [
        actions_lib.SampleSummaries(run_dir, method, settings.data,
                                    settings.grid),
        actions_lib.SaveBest(best_manager),
        self.curve_writer,
    ]
    self._sample = method.compiled_sample

  @property
  def best_score(self):
    return self.condition.best_score

  @property
  def best_step(self):
    return self.condition.best_step

  @property
  def curve(self):
    return self.curve_writer.curve

  def checkpoint_items(self):
    return self.condition.checkpoint_items()

  @property
  def stopped(self):
    return self.early_stopping.stopped

  def resume(self, restored_step):
    """Drops checks after `restored_step` (a run killed before its
    checkpoint redoes them, with the same seeds and scores)."""
    self.curve_writer.resume(restored_step)

  def due(self, step):
    return self.every > 0 and (step % self.every == 0 or step == self.total)

  def score(self, samples):
    """Lower is better; diverged chains (non-finite samples) score inf."""
    bad = finite_rows(samples)
    if bad:
      logging.warning('monitor: %d of %d samples are not finite (diverged '
                      'chains); this check scores inf', bad, len(samples))
      return math.inf
    return float(self.score_fn(samples))

  def check(self, step):
    """Samples and scores: the output the condition and actions receive."""
    out = self._sample(tf.constant(self.num_samples), self.seed,
                       tf.constant(self.num_steps))
    score = self.score(out['x_tilted'].numpy())
    base_score = self.score(out['x_base'].numpy())
    return {'step': step, 'score': score, 'base_score': base_score,
            'samples': out}

  def __call__(self, step):
    """None if no check is due, else whether to stop (patience)."""
    if not self.due(step):
      return None
    output = self.check(step)
    output['new_best'] = self.condition(output)
    for action in self.actions:
      action(output)
    logging.info('tilt monitor step %d: %s %.5f (base %.5f; best %.5f at '
                 'step %d)', step, self.curve_writer.metric,
                 output['score'], output['base_score'],
                 float(self.best_score.numpy()), int(self.best_step.numpy()))
    return self.early_stopping(output)
