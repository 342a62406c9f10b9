"""A tilt method trained in a run folder: the one wiring that the Python API
(`tilt_tf.tilt`, api.py) and the pipeline's tilt stage (train_lib.py) share.

`monitor_scorer` picks the §5.3 monitor's score for the run's data;
`TiltTrainer` is the MethodTrainer of a tilt method set up from a run
config (its steps, checkpoints kept and monitor), and `TiltTrainer.tilt`
trains it on the tilt seed streams (rng.TILT_DATA, rng.TILT_STEPS), restores
the best monitored energy and chooses its sampling energy scale
(runtime/energy_scale.py: energy_scale.json).
"""

from typing import Callable, Optional

import numpy as np

from tilt_tf import data as data_lib
from tilt_tf import rng
from tilt_tf import user_features
from tilt_tf.runtime import energy_scale
from tilt_tf.runtime import loop as loop_lib
from tilt_tf.runtime import monitor as monitor_lib
from tilt_tf.runtime import training

__all__ = ['monitor_scorer', 'TiltTrainer']

# Fresh toy points the monitor scores against.
_TOY_REFERENCE = 2000


def monitor_scorer(*, train: np.ndarray, validation: Optional[np.ndarray],
                   data_shape, seed: int, dataset: Optional[str] = None,
                   data_dir: Optional[str] = None,
                   classifier_epochs: Optional[int] = None):
  """The §5.3 monitor's score function: samples -> float, lower is better.

  Args:
    train: the energy's training examples.
    validation: the examples held out of its training for the monitor.
    data_shape: the shape of one example.
    seed: the run's seed.
    dataset: the built-in data set the examples come from, or None (a user's
      own array). A toy: the energy distance to fresh draws of it
      (rng.MONITOR_TOY_REFERENCE); an image set: FID against `validation`
      in its classifier's feature space (`data_dir`, `classifier_epochs`:
      tilt_tf/fid.py's, None for its defaults).
  Returns:
    Without `dataset`: images, the Fréchet distance to `validation` in
    features fitted to `train` (tilt_tf/user_features.py,
    docs/user_monitor.md); vectors, the energy distance to `validation`.
  """
  if dataset and data_lib.is_toy(dataset):
    return monitor_lib.energy_distance_scorer(data_lib.toy_samples(
        dataset, _TOY_REFERENCE, rng.stream(seed, rng.MONITOR_TOY_REFERENCE)))
  if dataset:
    return monitor_lib.fid_scorer(validation, dataset, data_dir,
                                  classifier_epochs)
  if user_features.supports(data_shape):
    return user_features.feature_scorer(train, validation, seed)
  return monitor_lib.energy_distance_scorer(validation, seed)


class TiltTrainer(training.MethodTrainer):
  """The MethodTrainer of a tilt method, set up from a run config.

  `config.ebm.steps` steps at most, `config.keep_checkpoints` kept, the
  monitor of `MonitorSettings.from_config(config, train)` scoring with
  `score_fn`; `tilt()` trains it on `train`.

  Args:
    run_dir: a RunDir.
    strategy: the tf.distribute strategy.
    method: the tilt Method (its stage 'tilt').
    config: the run's config (configs/).
    train: the energy's training examples.
    score_fn: the monitor's score (`monitor_scorer`).
    seed: the run's seed.
    retry_hint: the setting to lower the learning rate with (messages).
  """

  def __init__(self, run_dir, strategy, method, config, *,
               train: np.ndarray, score_fn: Callable[[np.ndarray], float],
               seed: int, retry_hint: str = ''):
    super().__init__(
        run_dir, strategy, method, config.ebm.steps,
        keep=config.keep_checkpoints, score_fn=score_fn,
        monitor=monitor_lib.MonitorSettings.from_config(config, train),
        seed=seed, retry_hint=retry_hint)
    self.config, self.train, self.seed = config, train, seed
    self.score_fn = score_fn

  def tilt(self, *, batch_size: Optional[int] = None) -> str:
    """Trains (or resumes, or reuses a finished run) on the tilt seed
    streams, loads the best monitored energy and chooses its sampling
    energy scale among `ebm.energy_scale_grid` (none when it is empty).

    Args:
      batch_size: the training batch (default `ebm.batch_size`).
    Returns:
      The path of the energy checkpoint loaded.
    """
    e = self.config.ebm
    self.fit(self.train, e.batch_size if batch_size is None else batch_size,
             data_seed=rng.stream(self.seed, rng.TILT_DATA),
             loop_seed=rng.stream(self.seed, rng.TILT_STEPS),
             settings=loop_lib.LoopSettings.from_config(self.config,
                                                        e.log_every))
    which = self.restore_best()
    if e.energy_scale_grid:
      energy_scale.choose(self.run_dir, self.method, self.score_fn,
                          grid=e.energy_scale_grid,
                          num_samples=e.monitor_samples,
                          num_steps=e.sample_langevin_steps, seed=self.seed,
                          energy_checkpoint=which)
    return which
