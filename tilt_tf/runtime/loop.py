"""The training loop, separate from what it trains (Orbit's Controller and
Actions, in small): a compiled n-step loop over replicas, and `Controller.run`
which drives it to a step count with logging, TensorBoard scalars,
checkpoints, divergence rollback and actions (e.g. the quality monitor).

Every loop runs up to `steps_per_loop` steps inside one `tf.function` through
`strategy.run`; losses are scaled by the global batch by the step functions.
"""

import dataclasses
import math
import time
from typing import Callable, Optional, Sequence

from absl import logging
import tensorflow as tf

from tilt_tf import rng
from tilt_tf.errors import UserError

__all__ = ['LoopSettings', 'TrainState', 'Controller', 'make_step_loop',
           'fmt_eta', 'MAX_DIVERGENCE_RETRIES']

MAX_DIVERGENCE_RETRIES = 3


def fmt_eta(seconds):
  seconds = int(max(seconds, 0))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def make_step_loop(strategy, step_fn, step_var, seed):
  """A tf.function running n >= 1 steps of `step_fn(x, seed)` over replicas.

  Every replica gets the same seed, a function of (seed, step); the noise
  drawn from it is a function of the global example index too
  (`rng.batch_normal`), so N replicas compute what one device does.
  Returns loop(iterator, n) -> metrics averaged over the n steps.
  """

  def one_step(iterator):
    x = next(iterator)
    step_seed = tf.random.experimental.stateless_fold_in(
        tf.constant(rng.stream(seed, rng.TRAIN_STEPS), tf.int32),
        tf.cast(step_var, tf.int32))
    # Replica 0's seed in earlier versions, which folded the replica id in:
    # kept so single-device runs draw the same numbers as before.
    step_seed = tf.random.experimental.stateless_fold_in(step_seed, 0)
    per_replica = strategy.run(step_fn, args=(x, step_seed))
    metrics = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
               for k, v in per_replica.items()}
    step_var.assign_add(1)
    return metrics

  # Traced once, called for the first step (its metrics give the sums'
  # structure) and in the loop: inline, one_step was traced twice, which
  # doubled the loop's start-up (~5 s of CPU per training stage on the test
  # preset's GLF). The step keeps AutoGraph (a user's decoder may branch on
  # tensors); the loop needs none.
  step = tf.function(one_step)

  @tf.function(autograph=False)
  def loop(iterator, n):
    def body(i, total):
      metrics = step(iterator)
      return i + 1, {k: total[k] + metrics[k] for k in total}
    _, total = tf.while_loop(lambda i, _: i < n - 1, body,
                             (tf.constant(0), step(iterator)),
                             maximum_iterations=tf.maximum(n - 1, 0))
    return {k: v / tf.cast(n, v.dtype) for k, v in total.items()}

  return loop


@dataclasses.dataclass(frozen=True)
class LoopSettings:
  """How a training loop runs: at most `steps_per_loop` steps per compiled
  loop, a checkpoint every `checkpoint_every` steps, a log line (and the
  method's pictures) every `log_every` steps."""
  steps_per_loop: int
  checkpoint_every: int
  log_every: int

  @classmethod
  def from_config(cls, config, log_every: int) -> 'LoopSettings':
    """A run config's loop settings (its top-level steps_per_loop and
    checkpoint_every), logging every `log_every` steps (each stage's
    section has its own)."""
    return cls(steps_per_loop=int(config.steps_per_loop),
               checkpoint_every=int(config.checkpoint_every),
               log_every=int(log_every))


@dataclasses.dataclass
class TrainState:
  """What one training stage checkpoints and rolls back.

  step: int64 variable, the stage's step; clock: float64 variable, the wall
  seconds spent in the stage over all invocations; manager: its
  CheckpointManager (whose checkpoint holds step, clock, weights and the
  optimizer); optimizer: its learning rate is halved on divergence;
  retry_hint: the flag to lower the learning rate with, for the message.
  """
  name: str
  step: tf.Variable
  clock: tf.Variable
  manager: tf.train.CheckpointManager
  optimizer: object
  retry_hint: str = ''


class Controller:
  """Drives a step loop to `total` steps; see `run`."""

  def __init__(self, run_dir, settings: LoopSettings):
    self.run_dir = run_dir
    self.steps_per_loop = settings.steps_per_loop
    self.checkpoint_every = settings.checkpoint_every
    self.log_every = settings.log_every

  def _save(self, state, step, seconds):
    state.clock.assign(seconds)
    state.manager.save(checkpoint_number=step)

  def _roll_back(self, state, metrics, at_step, retries):
    """Restores the last checkpoint and halves the learning rate in use."""
    if retries > MAX_DIVERGENCE_RETRIES:
      raise UserError(
          f'{state.name} training diverged (non-finite {metrics}) '
          f'{MAX_DIVERGENCE_RETRIES} times even after lowering the learning '
          f'rate; lower it and rerun ({state.retry_hint})')
    # Half the rate in use, not the checkpoint's (restoring it would undo
    # earlier halvings and repeat the same diverging steps).
    lowered = float(state.optimizer.learning_rate.numpy()) * 0.5
    state.manager.checkpoint.restore(state.manager.latest_checkpoint)
    state.optimizer.learning_rate.assign(lowered)
    logging.warning('%s: non-finite metrics at step %d; rolled back to step '
                    '%d, learning rate -> %.3g', state.name, at_step,
                    int(state.step.numpy()), lowered)

  def run(self, state: TrainState, total: int,
          make_iterator: Callable[[int], object], loop, *,
          actions: Sequence[Callable[[int], Optional[bool]]] = (),
          periods: Sequence[int] = ()):
    """Runs `loop` until state.step == total.

    Each action is called after every loop with the step reached and
    returns None (nothing to keep), False (checkpoint now) or True
    (checkpoint and stop); `periods` are the steps actions want to see (a
    loop never runs past a multiple of one). Non-finite metrics roll back
    to the last checkpoint (a checkpoint of the starting point is written
    first, so there always is one) and halve the learning rate, at most
    MAX_DIVERGENCE_RETRIES times in a row.

    Returns (total seconds of the stage over all invocations, steps).
    """
    step = int(state.step.numpy())
    start_step, t0 = step, time.time()
    seconds_before = float(state.clock.numpy())
    elapsed = lambda: seconds_before + time.time() - t0
    if state.manager.latest_checkpoint is None and step < total:
      self._save(state, step, elapsed())  # Something to roll back to.
    iterator = make_iterator(step)
    retries = 0
    periods = tuple(p for p in (self.log_every, self.checkpoint_every) +
                    tuple(periods) if p > 0)
    while step < total:
      n = min(self.steps_per_loop, total - step,
              *[p - step % p for p in periods])
      metrics = {k: float(v) for k, v in loop(iterator, tf.constant(n)).items()}
      if not all(math.isfinite(v) for v in metrics.values()):
        retries += 1
        self._roll_back(state, metrics, step + n, retries)
        step = int(state.step.numpy())
        iterator = make_iterator(step)
        continue
      step = int(state.step.numpy())
      self.run_dir.scalars(state.name, step, metrics)
      if step % self.log_every == 0 or step == total:
        rate = (step - start_step) / max(time.time() - t0, 1e-9)
        shown = ' '.join(f'{k}={v:.4g}' for k, v in sorted(metrics.items()))
        logging.info('%s %d/%d %s | %.2f steps/s ETA %s', state.name, step,
                     total, shown, rate, fmt_eta((total - step) /
                                                 max(rate, 1e-9)))
      # A check is always checkpointed, so its state and the weights it
      # judged resume together.
      verdicts = [a(step) for a in actions]
      stop = any(v for v in verdicts)
      if (any(v is not None for v in verdicts) or
          step % self.checkpoint_every == 0 or step == total):
        self._save(state, step, elapsed())
        retries = 0  # A new good point: divergence counts start again.
      if stop:
        logging.info('%s: stopping early at step %d', state.name, step)
        break
    self.run_dir.writer.flush()
    return elapsed(), step
