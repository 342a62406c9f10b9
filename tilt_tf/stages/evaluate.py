"""The eval stage: base vs tilted (vs distilled, when the distill stage ran)
samples of a run, scored the same way.

Image data sets: FID, precision and recall against the test split in the
data set's classifier feature space (tilt_tf/fid.py). Toy sets: energy
distance to fresh draws and the mode figures (tilt_tf/toy_metrics.py);
with a 2-D latent also 'tilted_exact', the same figures for exact samples
of the tilted density (a grid over z, no Langevin chains).
A user's own data: the energy distance to the held-out test data given;
images also the Fréchet distance ('fd_learned'), precision and recall in
features fitted to the training images (tilt_tf/user_features.py).
Writes metrics.json (quality figures only: the same seed, the same file)
and eval_* TensorBoard scalars.
"""

import os
import time
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tilt_tf import data as data_lib
from tilt_tf import io_utils
from tilt_tf import rng
from tilt_tf import toy_metrics
from tilt_tf import user_features
from tilt_tf.runtime import monitor as monitor_lib

__all__ = ['evaluate']


def _score(name, samples, dataset, seed, data_dir, extractor, test_data):
  if dataset in data_lib.TOY_DATASETS:
    return toy_metrics.toy_metrics(dataset, samples, seed)
  if dataset in data_lib.IMAGE_DATASETS:
    from tilt_tf import fid  # pylint: disable=g-import-not-at-top
    return fid.evaluate_images(samples, dataset, data_dir=data_dir,
                               extractor=extractor, what=f'{name} samples')
  score = monitor_lib.energy_distance_scorer(test_data, seed)
  flat = np.asarray(samples)
  if flat.dtype == np.uint8:
    flat = flat.astype(np.float32) / 255.0
  result = {'energy_distance': score(flat), 'n': int(len(samples))}
  if extractor is not None:  # Learned features of the user's images.
    result.update(user_features.evaluate_images(samples, extractor, test_data))
  return result


def evaluate(run_dir, dataset: str, seed: int, *, header: dict,
             data_dir: Optional[str] = None,
             classifier_epochs: Optional[int] = None, has_latent: bool = True,
             tilt: Optional[dict] = None, base_model=None,
             test_data: Optional[np.ndarray] = None,
             exact_tilted: Optional[Callable[[int], np.ndarray]] = None,
             train_data: Optional[np.ndarray] = None) -> dict:
  """Scores samples_base.npz and samples_tilted.npz of `run_dir`.

  Args:
    run_dir: a RunDir.
    dataset: a built-in data set name, or anything else for a user's data
      (scored by energy distance to `test_data`).
    seed: the run's seed.
    header: fields that head metrics.json (e.g. dataset, base_name, preset).
    data_dir: local data files.
    classifier_epochs: the FID classifier's budget if it must train.
    has_latent: False: both files hold the same samples (pixel EBM).
    tilt: dict for metrics['tilt'] (steps, best step, monitor curve).
    base_model: a generator with `test_metrics(test_images)` (GLOW's
      bits/dim), or None.
    test_data: the held-out data of a user's data set.
    exact_tilted: toys: n -> n exact samples of the tilted density
      (`toy_metrics.exact_tilted_samples`), scored as 'tilted_exact'.
    train_data: a user's training images: the learned features are fitted
      to them (or loaded from the cache the monitor filled).
  Returns:
    The metrics dict.
  """
  t0 = time.time()
  base = np.load(run_dir.path('samples_base.npz'))
  tilted = np.load(run_dir.path('samples_tilted.npz'))
  metrics = dict(header)
  extractor = _extractor(dataset, seed, data_dir=data_dir,
                         classifier_epochs=classifier_epochs,
                         test_data=test_data, train_data=train_data)
  score = lambda name, samples: _score(name, samples, dataset, seed, data_dir,
                                       extractor, test_data)
  key = 'samples' if 'samples' in base.files else 'images'
  if dataset in data_lib.TOY_DATASETS:
    ref = data_lib.toy_samples(dataset, len(base[key]),
                               rng.stream(seed, rng.EVAL_TOY_REFERENCE))
    metrics['data'] = toy_metrics.toy_metrics(dataset, ref, seed)
  for name, arr in (('base', base), ('tilted', tilted)):
    if name == 'tilted' and not has_latent:
      metrics[name] = dict(metrics['base'])  # The same samples.
      continue
    metrics[name] = score(name, arr[key])
  metrics.update(_more_metrics(
      run_dir, key, len(base[key]), score, dataset=dataset, seed=seed,
      data_dir=data_dir, has_latent=has_latent, exact_tilted=exact_tilted,
      base_model=base_model))
  _count_diverged(metrics, base, tilted)
  if tilt is not None:
    metrics['tilt'] = tilt
  io_utils.write_json(run_dir.path('metrics.json'), metrics)
  run_dir.record_time('eval', time.time() - t0)
  _report(run_dir, metrics, (tilt or {}).get('steps', 0))
  return metrics


def _extractor(dataset, seed, *, data_dir, classifier_epochs, test_data,
               train_data):
  """The feature extractor the samples are scored in: the data set's
  classifier (FID), learned features of a user's images, or None."""
  if dataset in data_lib.IMAGE_DATASETS:
    from tilt_tf import fid  # pylint: disable=g-import-not-at-top
    return fid.get_extractor(dataset, data_dir,
                             classifier_epochs=classifier_epochs)
  if (train_data is not None and test_data is not None and
      dataset not in data_lib.TOY_DATASETS and
      user_features.supports(np.shape(test_data)[1:])):
    return user_features.extractor(train_data, seed)
  return None


def _more_metrics(run_dir, key, n, score, *, dataset, seed, data_dir,
                  has_latent, exact_tilted, base_model):
  """Where there are some: the distilled samples' scores, those of `n`
  exact samples of the tilted density (toys) and the base model's own
  test figures (GLOW's bits/dim)."""
  out = {}
  distilled_path = run_dir.path('samples_distilled.npz')
  if has_latent and os.path.exists(distilled_path):
    with np.load(distilled_path) as distilled:
      out['distilled'] = score('distilled', distilled[key])
  if exact_tilted is not None and dataset in data_lib.TOY_DATASETS:
    out['tilted_exact'] = toy_metrics.toy_metrics(dataset, exact_tilted(n),
                                                  seed)
  if base_model is not None and hasattr(base_model, 'test_metrics'):
    test = data_lib.load_images(dataset, 'test', data_dir)
    out['base_model'] = {k: round(v, 6) for k, v in
                         base_model.test_metrics(test).items()}
  return out


def _count_diverged(metrics, base, tilted):
  """Counts the samples of diverged chains in metrics[name]."""
  for name, arr in (('base', base), ('tilted', tilted)):
    # A chain that diverged has a non-finite latent; its sample was stored
    # (images: black) and scored with the others. Counted, not hidden.
    if 'latents' in arr.files:
      bad = monitor_lib.finite_rows(arr['latents'])
      if bad:
        metrics[name]['non_finite_latents'] = bad
        logging.warning(
            'eval: %d of %d %s samples come from diverged chains (non-finite '
            'latents) and are scored as they were stored; a smaller '
            '--set=ebm.step_size avoids this', bad, len(arr['latents']), name)


def _report(run_dir, metrics, step):
  """The metrics as TensorBoard scalars (at the tilt's `step`) and log
  lines."""
  with run_dir.writer.as_default(step=step):
    for name in ('base', 'tilted', 'distilled', 'tilted_exact', 'base_model'):
      for k, v in metrics.get(name, {}).items():
        if isinstance(v, (int, float)):
          tf.summary.scalar(f'eval_{name}/{k}', v)
  run_dir.writer.flush()
  logging.info('eval: base %s', metrics['base'])
  logging.info('eval: tilted %s', metrics['tilted'])
  if 'distilled' in metrics:
    logging.info('eval: distilled (no chain) %s', metrics['distilled'])
  if 'tilted_exact' in metrics:
    logging.info('eval: tilted density, exact %s', metrics['tilted_exact'])
