"""The §5.3 monitor's pieces (Orbit's condition and actions, in small).

A check (runtime/monitor.py's `Monitor.check`) samples and scores; its
output is a dict with 'step', 'score' and 'base_score' (floats, lower is
better), 'samples' (the method's `sample` dict) and, once `NewBestMetric`
has judged it, 'new_best'. Each action receives that output and does one
job: `SaveBest` saves the best weights, `EarlyStopping` says when to stop,
`CurveWriter` keeps monitor.json and the TensorBoard scalars,
`SampleSummaries` the TensorBoard histograms and picture.
"""

import math

import tensorflow as tf

from tilt_tf import figures
from tilt_tf import io_utils

__all__ = ['NewBestMetric', 'SaveBest', 'EarlyStopping', 'CurveWriter',
           'SampleSummaries']


class NewBestMetric:
  """The condition: is a check's `metric` lower than every earlier one?

  Its state (the best score and its step, the checks since) lives in
  variables that the stage's checkpoint holds under `checkpoint_items`'
  names, so a resumed run goes on judging where it stopped.
  """

  def __init__(self, metric='score'):
    self.metric = metric
    self.best_score = tf.Variable(math.inf, dtype=tf.float64,
                                  name='best_score')
    self.best_step = tf.Variable(-1, dtype=tf.int64, name='best_step')
    self.checks_since_best = tf.Variable(0, dtype=tf.int64)

  def checkpoint_items(self):
    return {'best_score': self.best_score, 'best_step': self.best_step,
            'checks_since_best': self.checks_since_best}

  def test(self, output):
    """Whether `output` beats the best so far (changes nothing)."""
    return output[self.metric] < float(self.best_score.numpy())

  def commit(self, output):
    """Makes `output` the best."""
    self.best_score.assign(output[self.metric])
    self.best_step.assign(output['step'])
    self.checks_since_best.assign(0)

  def __call__(self, output):
    """Tests and records `output`; returns whether it is a new best."""
    if self.test(output):
      self.commit(output)
      return True
    self.checks_since_best.assign_add(1)
    return False


class SaveBest:
  """Saves the best weights (numbered by step) when a check is a new best."""

  def __init__(self, manager):
    self.manager = manager

  def __call__(self, output):
    if output['new_best']:
      self.manager.save(checkpoint_number=output['step'])


class EarlyStopping:
  """Stop once `patience` checks in a row did not improve (0: never)."""

  def __init__(self, condition, patience=0):
    self.condition = condition
    self.patience = patience

  @property
  def stopped(self):
    return bool(self.patience and int(
        self.condition.checks_since_best.numpy()) >= self.patience)

  def __call__(self, output):
    del output  # The condition has counted it.
    return self.stopped


class CurveWriter:
  """The scores as TensorBoard scalars (`monitor/score`, `base_score`) and
  the curve of all checks in monitor.json, each entry naming its score
  (`metric`, e.g. 'fd_learned'; lower is better)."""

  def __init__(self, run_dir, metric='score'):
    self.run_dir = run_dir
    self.metric = metric
    self.curve = []

  def resume(self, restored_step):
    """Drops checks after `restored_step` (a run killed before its
    checkpoint redoes them, with the same seeds and scores)."""
    self.curve = [m for m in io_utils.read_json(
        self.run_dir.path('monitor.json'), []) if m['step'] <= restored_step]

  def __call__(self, output):
    step, score, base = output['step'], output['score'], output['base_score']
    self.run_dir.scalars('monitor', step, {'score': score,
                                           'base_score': base})
    self.curve.append({'step': step, 'metric': self.metric,
                       'score': round(score, 6), 'base_score': round(base, 6)})
    io_utils.write_json(self.run_dir.path('monitor.json'), self.curve)


class SampleSummaries:
  """Energy histograms of data vs base vs tilted samples, and the tilted
  samples as a picture (a scatter plot for 2-D points, a grid for images).

  Args:
    run_dir: a RunDir (its TensorBoard writer).
    method: the Method (its `energy`).
    data: data points for the histograms and the scatter plot, or None.
    grid: images in the picture.
  """

  def __init__(self, run_dir, method, data=None, grid=64):
    self.run_dir, self.method = run_dir, method
    self.data, self.grid = data, grid

  def __call__(self, output):
    step, out = output['step'], output['samples']
    x = out['x_tilted']
    with self.run_dir.writer.as_default(step=step):
      named = [('base_samples', out['x_base']), ('tilted_samples', x)]
      if self.data is not None:
        named.insert(0, ('data', tf.cast(self.data[:len(x)], tf.float32)))
      for name, v in named:
        tf.summary.histogram(f'energy/{name}', self.method.energy(v))
      png = self._picture(x, step)
      if png is not None:
        tf.summary.image('monitor/tilted_samples',
                         tf.io.decode_png(png)[None])

  def _picture(self, x, step):
    if len(x.shape) == 2 and x.shape[-1] == 2:
      panels = ([self.data[:len(x)]] if self.data is not None else []) + [x]
      return figures.toy_scatter_png(
          panels, (['data'] if self.data is not None else []) +
          [f'tilted, EBM step {step}'])
    if len(x.shape) == 4:
      return figures.grid_png([x[:self.grid]])
    return None
