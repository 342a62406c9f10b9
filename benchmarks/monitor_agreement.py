"""Does a monitor score for user data rank samples as the classifier FID
does? (issue #36, step 2; docs/user_monitor.md)

The setting of docs/user_decoder_gain.md: the first 20,000 Fashion-MNIST
train images, permuted by np.random.default_rng(0), the last 4,000 held out
(`build.split_validation(array, 10_000)`, as `tilt_tf.tilt` does). Every
score compares a set of 500 samples with those 4,000 held-out images:

  * the reference: `monitor_lib.fid_scorer(validation, 'fashion_mnist')`,
    the FID in tilt_tf's Fashion-MNIST classifier's features;
  * the pixel energy distance (`monitor_lib.energy_distance_scorer`, the
    old default for user data): the baseline;
  * `user_features.feature_scorer` with each objective of
    tilt_tf/user_features.py, fitted on the 16,000 training images only.

The sets (~25): test-split images and their corruptions (brightness, blur,
noise, fewer classes, mixed with decoder samples), samples of the user's
decoder (runs/issue36/decoder.keras) and their corruptions, and the four
energies of the docs' "Both scores on the same energies" table (regular
checkpoints of runs/issue36/ed and runs/issue36/fid, the monitor's 500
chains, seed [0, 7]). Per score: Spearman and Kendall rank correlation with
the FID over the sets, and the order it gives the four energies. Langevin
samples are cached in --sets_cache (drawing them takes minutes).

  PYTHONPATH=. nice -n 15 .venv/bin/python benchmarks/monitor_agreement.py

Prints one JSON object and appends it to
benchmarks/RESULTS_monitor_agreement.jsonl.
"""

import json
import os
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
from scipy import stats
import tensorflow as tf

from tilt_tf import data
from tilt_tf import user_features
from tilt_tf.runtime import build
from tilt_tf.runtime import monitor as monitor_lib

FLAGS = flags.FLAGS
flags.DEFINE_string('decoder', 'runs/issue36/decoder.keras',
                    'The user-trained Keras 3 decoder.')
flags.DEFINE_string('runs', 'runs/issue36', 'Folder of the ed/ and fid/ runs.')
flags.DEFINE_string('sets_cache', 'runs/issue36/agreement_sets.npz',
                    'Where the Langevin samples are cached.')
flags.DEFINE_list('objectives', list(user_features.OBJECTIVES),
                  'Feature-net objectives to compare.')
flags.DEFINE_integer('seed', 0, 'Seed of the feature nets.')
flags.DEFINE_integer('steps', user_features.DEFAULT_STEPS,
                     'Fitting steps of the feature nets.')
flags.DEFINE_integer('n', 500, 'Samples per set (the monitor draws 500).')
flags.DEFINE_string('results', 'benchmarks/RESULTS_monitor_agreement.jsonl',
                    'JSON lines file to append to ("" to skip).')

ENERGIES = (('a150', 'ed', 150), ('a200', 'ed', 200), ('b150', 'fid', 150),
            ('b200', 'fid', 200))
# Sampling energy scales of one energy (runs/issue36/preset1's): the choice
# the monitor makes after tilting (tilt_tf/runtime/energy_scale.py).
BETAS = (1.0, 2.0, 4.0, 8.0, 16.0)


def _energy_samples(n):
  """{name: [n, 28, 28, 1] float32}: base + the four energies' samples +
  the `preset1` energy's at each sampling energy scale of BETAS."""
  out = {}
  if os.path.exists(FLAGS.sets_cache):
    with np.load(FLAGS.sets_cache) as f:
      out = {k: f[k] for k in f.files}
  names = ('base',) + tuple(e[0] for e in ENERGIES) + tuple(
      f'beta{b:g}' for b in BETAS)
  if all(k in out for k in names):
    logging.info('Langevin samples from %s', FLAGS.sets_cache)
    return out
  import keras  # pylint: disable=g-import-not-at-top
  import tilt_tf  # pylint: disable=g-import-not-at-top
  gen = tilt_tf.generator_from_keras(keras.saving.load_model(FLAGS.decoder))
  t = tilt_tf.load(os.path.join(FLAGS.runs, 'preset1'), generator=gen)
  for b in BETAS:  # One energy, the monitor's chains, at each scale.
    out[f'beta{b:g}'] = t.method.sample(
        tf.constant(n), tf.constant([0, 7], tf.int32),
        tf.constant(t.config.ebm.sample_langevin_steps),
        energy_scale=tf.constant(b))['x_tilted'].numpy()
  for name, run, step in ENERGIES:
    workdir = os.path.join(FLAGS.runs, run)
    t = tilt_tf.load(workdir, generator=gen)
    ckpt = os.path.join(workdir, 'checkpoints', 'tilt', f'ckpt-{step}')
    tf.train.Checkpoint(energy=t.method.energy).read(ckpt).expect_partial()
    start = time.time()
    s = t.method.compiled_sample(
        tf.constant(n), tf.constant([0, 7], tf.int32),
        tf.constant(t.config.ebm.sample_langevin_steps))
    out[name] = s['x_tilted'].numpy()
    out['base'] = s['x_base'].numpy()  # The same chains' starts each time.
    logging.info('%s: %d samples in %.0f s', name, n, time.time() - start)
  np.savez_compressed(FLAGS.sets_cache, **out)
  return out


def _blur(x, sigma):
  r = int(np.ceil(2 * sigma))
  k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
  k = (k / k.sum()).astype(np.float32)
  kernel = tf.constant(np.outer(k, k)[:, :, None, None])
  return tf.nn.conv2d(x, kernel, 1, 'SAME').numpy()


def _sets(n):
  """[(name, float32 images [n, 28, 28, 1])] with known corruptions."""
  rng = np.random.default_rng(1)
  test, labels = data.load_images('fashion_mnist', 'test', with_labels=True)
  test = build.as_float(test)
  order = rng.permutation(len(test))
  real = test[order[:n]]
  classes = lambda c: test[order[np.isin(labels[order], c)][:n]]
  noise = lambda x, s: np.clip(x + s * rng.standard_normal(x.shape), 0, 1)
  e = _energy_samples(n)
  base = e['base']
  users = {r: np.load(os.path.join(FLAGS.runs, r, 'user_samples.npz'))
           for r in ('ed', 'fid')}
  sets = [
      ('real', real), ('real_other_draw', test[order[n:2 * n]]),
      ('real_brighter_0.05', np.clip(real + 0.05, 0, 1)),
      ('real_brighter_0.15', np.clip(real + 0.15, 0, 1)),
      ('real_darker_0.05', np.clip(real - 0.05, 0, 1)),
      ('real_blur_0.7', _blur(real, 0.7)), ('real_blur_1.5', _blur(real, 1.5)),
      ('real_noise_0.05', noise(real, 0.05)),
      ('real_noise_0.2', noise(real, 0.2)),
      ('real_5_classes', classes([0, 1, 2, 3, 4])),
      ('real_2_classes', classes([1, 8])), ('real_1_class', classes([7])),
      ('mix_real_base', np.concatenate([real[:n // 2], base[n // 2:]])),
      ('base', base),
      ('base_other_draw', build.as_float(users['ed']['base'][:n])),
      ('base_brighter_0.08', np.clip(base + 0.08, 0, 1)),
      ('base_blur_1.0', _blur(base, 1.0)), ('base_noise_0.1', noise(base, 0.1)),
  ]
  sets += [(name, e[name]) for name, _, _ in ENERGIES]
  sets += [(f'beta{b:g}', e[f'beta{b:g}']) for b in BETAS]
  for r, name in (('ed', 'a200_other_draw'), ('fid', 'b200_other_draw')):
    sets.append((name, build.as_float(users[r]['tilted'][:n])))
  return [(k, np.asarray(v, np.float32)) for k, v in sets]


def _decoder_set(name):
  """Whether a set holds the decoder's samples (base, energies and their
  corruptions): what a monitor compares during one tilt."""
  return name.startswith(('base', 'a1', 'a2', 'b1', 'b2', 'beta'))


def _agreement(fid, scores, names):
  """Spearman and Kendall rank correlation of `scores` with `fid`."""
  a = [fid[k] for k in names]
  b = [scores[k] for k in names]
  return (round(float(stats.spearmanr(a, b)[0]), 4),
          round(float(stats.kendalltau(a, b)[0]), 4))


def _energy_order(scores):
  """'b200 < b150 < ...' for the four energies."""
  return ' < '.join(sorted((e[0] for e in ENERGIES), key=scores.get))


def main(argv):
  del argv
  images = data.load_images('fashion_mnist', 'train')[:20_000]
  array = images[np.random.default_rng(0).permutation(len(images))]
  train, validation = build.split_validation(array, 10_000)
  sets = _sets(FLAGS.n)
  scorers = [('fid_classifier', monitor_lib.fid_scorer(validation,
                                                       'fashion_mnist')),
             ('energy_distance', monitor_lib.energy_distance_scorer(
                 validation, 0))]
  fits = {}
  for objective in FLAGS.objectives:
    start = time.time()
    cpu = time.process_time()
    extractor = user_features.extractor(train, seed=FLAGS.seed,
                                        objective=objective,
                                        steps=FLAGS.steps)
    fits[objective] = {'seconds_this_call': round(time.time() - start, 1),
                       'cpu_seconds_this_call': round(
                           time.process_time() - cpu, 1),
                       **extractor.info}
    scorers.append((f'fd_{objective}', user_features.feature_scorer(
        train, validation, seed=FLAGS.seed, objective=objective,
        steps=FLAGS.steps)))
  table = {}
  for name, score in scorers:
    table[name] = {k: round(float(score(x)), 5) for k, x in sets}
    logging.info('%s: %s', name, table[name])
  fid = table['fid_classifier']
  names = [k for k, _ in sets]
  decoder = [k for k in names if _decoder_set(k)]
  rows = {}
  for name, scores in table.items():
    spearman, kendall = _agreement(fid, scores, names)
    spearman_decoder, kendall_decoder = _agreement(fid, scores, decoder)
    rows[name] = {
        'spearman': spearman, 'kendall': kendall,
        'spearman_decoder_sets': spearman_decoder,
        'kendall_decoder_sets': kendall_decoder,
        'energy_order': _energy_order(scores),
        'energies_as_fid': _energy_order(scores) == _energy_order(fid),
        'b200_beats_b150': scores['b200'] < scores['b150'],
        'a150_beats_base': scores['a150'] < scores['base'],
        'beta_chosen': min(BETAS, key=lambda b: scores[f'beta{b:g}']),
        'beta_order': ' < '.join(f'{b:g}' for b in sorted(
            BETAS, key=lambda b: scores[f'beta{b:g}'])),
    }
  record = {'benchmark': 'monitor_agreement', 'n_per_set': FLAGS.n,
            'n_sets': len(sets), 'n_decoder_sets': len(decoder),
            'n_reference': int(len(validation)),
            'n_feature_train': int(len(train)), 'seed': FLAGS.seed,
            'steps': FLAGS.steps,
            'agreement': rows, 'feature_fits': fits, 'scores': table,
            'cores': os.cpu_count(),
            'load_average': [round(x, 2) for x in os.getloadavg()]}
  print(json.dumps(record))
  if FLAGS.results:
    with open(FLAGS.results, 'a') as f:
      f.write(json.dumps(record) + '\n')


if __name__ == '__main__':
  app.run(main)
