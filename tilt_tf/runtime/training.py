"""One training stage: a model, its optimizer, step, clock and checkpoint
folder, and `fit` that trains it on an array through the Controller.

Checkpoint layout (one for every run): checkpoints/<stage>/ holds the
model's items (`generator` for a base, `energy` plus the monitor's state for
the tilt, `model` for the pixel EBM), `optimizer`, `step` and `seconds`.
"""

import os
from typing import Callable, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from tilt_tf import data as data_lib
from tilt_tf.errors import UserError
from tilt_tf.runtime import checkpoints
from tilt_tf.runtime import energy_scale
from tilt_tf.runtime import loop as loop_lib
from tilt_tf.runtime import monitor as monitor_lib

__all__ = ['TrainingStage', 'MethodTrainer']


class TrainingStage:
  """See the module docstring. Build it inside the strategy's scope."""

  def __init__(self, run_dir, name: str, items, optimizer, *, keep: int = 2,
               retry_hint: str = ''):
    self.run_dir = run_dir
    self.name = name
    self.optimizer = optimizer
    self.step = tf.Variable(0, dtype=tf.int64, name=f'{name}_step')
    # Wall seconds spent in the stage over all invocations (a resumed run
    # reports its whole cost, up to the last checkpoint before a kill).
    self.clock = tf.Variable(0.0, dtype=tf.float64, name=f'{name}_seconds')
    self.checkpoint = tf.train.Checkpoint(
        optimizer=optimizer, step=self.step, seconds=self.clock, **items)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, run_dir.path('checkpoints', name), max_to_keep=keep)
    self.state = loop_lib.TrainState(name, self.step, self.clock,
                                     self.manager, optimizer, retry_hint)

  def restore(self):
    """Restores the newest readable checkpoint, if any; returns its path.

    Damaged checkpoints are moved aside with a warning and older ones tried
    (runtime/checkpoints.py); UserError if none is readable."""
    path = checkpoints.restore_readable(self.checkpoint, self.manager,
                                        self.name, partial=False)
    if path is not None:
      logging.info('%s: restored step %d from %s', self.name,
                   int(self.step.numpy()), path)
    return path

  def fit(self, strategy, step_fn: Callable, array: np.ndarray,
          batch_size: int, *, total: int, data_seed: int, loop_seed: int,
          settings: loop_lib.LoopSettings,
          actions: Sequence[Callable[[int], Optional[bool]]] = (),
          periods: Sequence[int] = ()):
    """Trains to `total` steps on batches of `array`; resumable.

    step_fn(x, seed) runs inside `strategy.run`; batch k is a function of
    (data_seed, k) (`data.make_dataset`), so a resumed run sees the same
    batches; the step noise comes from `loop_seed` (rng.TRAIN_STEPS).
    Records the stage's time in timings.json; returns (seconds, steps).
    """

    def make_iterator(step):
      ds = data_lib.make_dataset(array, batch_size, seed=data_seed,
                                 start_step=step)
      return iter(strategy.experimental_distribute_dataset(ds))

    loop = loop_lib.make_step_loop(strategy, step_fn, self.step, loop_seed)
    controller = loop_lib.Controller(self.run_dir, settings)
    seconds, steps = controller.run(self.state, total, make_iterator, loop,
                                    actions=actions, periods=periods)
    self.run_dir.record_time(self.name, seconds, steps=steps,
                             steps_per_s=round(steps / max(seconds, 1e-9), 3))
    return seconds, steps


class MethodTrainer:
  """Trains a Method (methods/base.py) in its stage, with the §5.3 monitor
  when a score function is given; resumable; restores its best weights.

  Args:
    run_dir: a RunDir.
    strategy: the tf.distribute strategy (optimizer slots in its scope).
    method: the Method.
    steps: training steps (the maximum when the monitor may stop early).
    keep: checkpoints to keep.
    score_fn: samples -> score (lower is better), or None for no monitor.
    monitor: a MonitorSettings for runtime/monitor.py's Monitor (None: no
      monitor).
    seed: the run's seed.
    retry_hint: the setting to lower the learning rate with (messages).
  """

  def __init__(self, run_dir, strategy, method, steps: int, *, keep: int = 2,
               score_fn: Optional[Callable[[np.ndarray], float]] = None,
               monitor: Optional[monitor_lib.MonitorSettings] = None,
               seed: int = 0, retry_hint: str = ''):
    self.run_dir, self.strategy, self.method = run_dir, strategy, method
    self.steps = steps
    with strategy.scope():
      optimizer = method.make_optimizer()
      self.monitor = None
      items = dict(method.checkpoint_items())
      self.best_ckpt = tf.train.Checkpoint(**method.checkpoint_items())
      self.best_manager = tf.train.CheckpointManager(
          self.best_ckpt, run_dir.path('checkpoints', f'{method.stage}_best'),
          max_to_keep=1)
      if score_fn is not None and monitor is not None and monitor.every > 0:
        self.monitor = monitor_lib.Monitor(
            run_dir, method, score_fn, self.best_manager, settings=monitor,
            total=steps, seed=seed)
        items.update(self.monitor.checkpoint_items())
      self.stage = TrainingStage(run_dir, method.stage, items, optimizer,
                                 keep=keep, retry_hint=retry_hint)

  @property
  def step(self):
    return int(self.stage.step.numpy())

  def done(self):
    return self.step >= self.steps or bool(self.monitor and
                                           self.monitor.stopped)

  def fit(self, array: np.ndarray, batch_size: int, *, data_seed: int,
          loop_seed: int, settings: loop_lib.LoopSettings):
    """Trains (or resumes) to `steps`; returns (seconds, steps), or None if
    it had finished already."""
    self.stage.restore()
    if self.done():
      logging.info('%s: done (%d steps%s), reusing the checkpoint',
                   self.method.stage, self.step,
                   ', stopped by the monitor' if self.step < self.steps else '')
      return None
    replicas = self.strategy.num_replicas_in_sync
    if batch_size % replicas:
      raise UserError(
          f'the {self.method.stage} batch size {batch_size} does not split '
          f'evenly over {replicas} replicas; use a multiple of {replicas}')
    self.method.check_ready()
    actions, periods = [], []
    if self.monitor is not None:
      self.monitor.resume(self.step)
      actions.append(self.monitor)
      periods.append(self.monitor.every)
    log_every = settings.log_every

    def pictures(step):
      if step % log_every == 0 or step == self.steps:
        self.method.after_train_step(self.run_dir, step)
      return None

    actions.append(pictures)

    def step_fn(x, seed):
      return self.method.train_step(x, seed, self.stage.optimizer, batch_size)

    return self.stage.fit(self.strategy, step_fn, array, batch_size,
                          total=self.steps, data_seed=data_seed,
                          loop_seed=loop_seed, settings=settings,
                          actions=actions, periods=periods)

  def restore_best(self):
    """Loads the best monitored weights (else the latest); returns the
    checkpoint path; UserError if the stage never ran."""
    stage = self.method.stage
    latest = checkpoints.restore_readable(self.stage.checkpoint,
                                          self.stage.manager, stage)
    best = checkpoints.restore_readable(self.best_ckpt, self.best_manager,
                                        f'{stage} (best)')
    if latest is None and best is None:
      raise UserError(f'no {stage} checkpoint in {self.run_dir.workdir}; run '
                      f'the {stage} stage first')
    # The sampling energy scale chosen for this energy, if any.
    energy_scale.apply(self.run_dir.workdir, self.method, best or latest,
                       default=getattr(self.method, 'cfg', {}).get(
                           'sample_energy_scale', 1.0))
    return best or latest


def checkpoint_step(path):
  """The training step of a checkpoint path '.../ckpt-<step>' (the loop and
  the monitor number their checkpoints by step)."""
  return int(os.path.basename(path).rsplit('-', 1)[1])
