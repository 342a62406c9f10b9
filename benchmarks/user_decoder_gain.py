"""The gain tilt_tf gives a decoder it did not train (issue #36), as a user.

Trains a small Keras 3 conv VAE outside tilt_tf (32-d latent; encoder two
stride-2 convs 32/64 -> dense; decoder dense -> 7x7x64 -> two stride-2
transposed convs 32/1, sigmoid) for 5 epochs on the first 20,000
Fashion-MNIST train images, saves its decoder with `decoder.save(...)`, then
runs the README's snippet:

    gen = tilt_tf.generator_from_keras(keras.saving.load_model(path))
    tilted = tilt_tf.tilt(gen, images, workdir=..., preset='small')
    out = tilted.sample(10_000, seed=0)

and scores base vs tilted samples with tilt_tf's Fashion-MNIST FID,
precision and recall against the test split (tilt_tf/fid.py, the eval
stage's scorer). The decoder is trained once and reused (`--out_dir`/
decoder.keras); each call tilts it into `--out_dir/<name>/`. Prints one JSON
object at the end (also written to `<out_dir>/<name>.json`).

  PYTHONPATH=. .venv/bin/python benchmarks/user_decoder_gain.py --name=ed
  PYTHONPATH=. .venv/bin/python benchmarks/user_decoder_gain.py --name=fid \
      --fid_monitor
  PYTHONPATH=. .venv/bin/python benchmarks/user_decoder_gain.py --name=short \
      --ebm=langevin_steps=20 --ebm=step_size=0.03 \
      --ebm=sample_langevin_steps=15 --ebm=sample_step_size=0.0667

`--keras=tf_keras` trains and saves the same design with tf_keras
(`tf_keras_decoder.keras`) instead of Keras 3.
`--fid_monitor` passes `fid_dataset='fashion_mnist'` (the monitor scores by
FID against the held-out images instead of the pixel-space energy distance);
`--ebm=key=value` passes `key=value` to `tilt()`. Everything else is the
README's call. Results (docs/user_decoder_gain.md) are for issue #36.
"""

import argparse
import json
import os
import time

import numpy as np

LATENT = 32


def keras_module(name):
  """The Keras a user brings: 'keras' (Keras 3) or 'tf_keras'."""
  if name == 'tf_keras':
    import tf_keras  # pylint: disable=g-import-not-at-top
    return tf_keras
  import keras  # pylint: disable=g-import-not-at-top
  return keras


def build_vae(keras, latent_dim=LATENT):
  """(encoder, decoder): functional models of `keras` (a module)."""
  layers = keras.layers
  x = keras.Input((28, 28, 1))
  h = layers.Conv2D(32, 3, strides=2, padding='same', activation='relu')(x)
  h = layers.Conv2D(64, 3, strides=2, padding='same', activation='relu')(h)
  h = layers.Flatten()(h)
  stats = layers.Dense(2 * latent_dim)(h)
  encoder = keras.Model(x, stats, name='encoder')
  z = keras.Input((latent_dim,))
  h = layers.Dense(7 * 7 * 64, activation='relu')(z)
  h = layers.Reshape((7, 7, 64))(h)
  h = layers.Conv2DTranspose(32, 3, strides=2, padding='same',
                             activation='relu')(h)
  out = layers.Conv2DTranspose(1, 3, strides=2, padding='same',
                               activation='sigmoid')(h)
  decoder = keras.Model(z, out, name='decoder')
  return encoder, decoder


def train_vae(keras, images, path, epochs=5, batch_size=128,
              learning_rate=1e-3, seed=0):
  """Trains the VAE (BCE + KL, Adam) on uint8 images; saves the decoder."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(seed)
  encoder, decoder = build_vae(keras)
  optimizer = keras.optimizers.Adam(learning_rate)
  variables = encoder.trainable_variables + decoder.trainable_variables
  x_all = images.astype(np.float32) / 255.0

  @tf.function
  def step(x, eps):
    with tf.GradientTape() as tape:
      stats = encoder(x, training=True)
      mean, logvar = tf.split(stats, 2, axis=-1)
      z = mean + tf.exp(0.5 * logvar) * eps
      recon = decoder(z, training=True)
      p = tf.clip_by_value(recon, 1e-6, 1 - 1e-6)
      bce = -tf.reduce_sum(x * tf.math.log(p) + (1 - x) * tf.math.log(1 - p),
                           axis=[1, 2, 3])
      kl = 0.5 * tf.reduce_sum(tf.exp(logvar) + tf.square(mean) - 1 - logvar,
                               axis=-1)
      loss = tf.reduce_mean(bce + kl)
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss, tf.reduce_mean(bce), tf.reduce_mean(kl)

  rng = np.random.default_rng(seed)
  t0 = time.time()
  history = []
  for epoch in range(epochs):
    order = rng.permutation(len(x_all))
    losses = []
    for s in range(0, len(order) - batch_size + 1, batch_size):
      x = x_all[order[s:s + batch_size]]
      eps = rng.standard_normal((len(x), LATENT)).astype(np.float32)
      losses.append([float(v) for v in step(tf.constant(x), tf.constant(eps))])
    loss, bce, kl = np.mean(losses, axis=0)
    history.append({'epoch': epoch + 1, 'loss': round(float(loss), 3),
                    'bce': round(float(bce), 3), 'kl': round(float(kl), 3)})
    print(f'vae epoch {epoch + 1}/{epochs}: loss {loss:.2f} (bce {bce:.2f}, '
          f'kl {kl:.2f}), {time.time() - t0:.0f} s', flush=True)
  decoder.save(path)
  # The encoder's posterior means: how the decoder's latent space is used
  # (the prior is N(0, I); a VAE's aggregate posterior rarely is).
  stats = encoder.predict(x_all[:5000], batch_size=500, verbose=0)
  mean, logvar = np.split(stats, 2, axis=-1)
  return {'seconds': round(time.time() - t0, 1), 'history': history,
          'posterior_mean_std_per_dim': [round(float(v), 3)
                                         for v in mean.std(0)],
          'posterior_sigma_mean': round(float(np.exp(0.5 * logvar).mean()), 4)}


def score(samples, name):
  from tilt_tf import fid  # pylint: disable=g-import-not-at-top
  t0 = time.time()
  r = fid.evaluate_images(samples, 'fashion_mnist', what=name)
  out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
         if k in ('fid', 'precision', 'recall', 'n', 'reference',
                  'feature_extractor')}
  out['seconds'] = round(time.time() - t0, 1)
  return out


def parse_value(v):
  for cast in (int, float):
    try:
      return cast(v)
    except ValueError:
      pass
  return v


def parse_args():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--out_dir', default='runs/issue36')
  p.add_argument('--name', default='ed', help='run folder under --out_dir')
  p.add_argument('--n_train', type=int, default=20_000)
  p.add_argument('--epochs', type=int, default=5)
  p.add_argument('--num_samples', type=int, default=10_000)
  p.add_argument('--preset', default='small')
  p.add_argument('--keras', default='keras', choices=('keras', 'tf_keras'),
                 help='the Keras that trains and saves the decoder')
  p.add_argument('--draws', type=int, default=3,
                 help='sample draws scored (seeds 0..N-1): recall at ~0.03 '
                 'varies by more between draws of the same sampler than '
                 'between base and tilted; only draw 0 is timed')
  p.add_argument('--record', action='store_true',
                 help='append the result to RESULTS_user_decoder_gain.jsonl')
  p.add_argument('--fid_monitor', action='store_true',
                 help="tilt(..., fid_dataset='fashion_mnist')")
  p.add_argument('--ebm', action='append', default=[],
                 help='key=value passed to tilt() (repeatable)')
  return p.parse_args()


def decoder_file(args, keras, images, result):
  """The decoder's path: trained and saved once, then reused."""
  prefix = '' if args.keras == 'keras' else 'tf_keras_'
  path = os.path.join(args.out_dir, f'{prefix}decoder.keras')
  vae_json = os.path.join(args.out_dir, f'{prefix}vae.json')
  if not os.path.exists(path):
    result['vae'] = train_vae(keras, images, path, epochs=args.epochs)
    with open(vae_json, 'w') as f:
      json.dump(result['vae'], f, indent=1)
  else:
    if os.path.exists(vae_json):
      with open(vae_json) as f:
        result['vae'] = json.load(f)
    result['vae_reused'] = path
  return path


def run_snippet(args, keras, path, images, kwargs, result):
  """The README's snippet, timed; returns `tilted.sample`'s output and
  the Tilted."""
  import tilt_tf  # pylint: disable=g-import-not-at-top
  workdir = os.path.join(args.out_dir, args.name)
  t0 = time.time()
  gen = tilt_tf.generator_from_keras(keras.saving.load_model(path))
  tilted = tilt_tf.tilt(gen, images, workdir=workdir, preset=args.preset,
                        **kwargs)
  result['tilt_seconds'] = round(time.time() - t0, 1)
  t0 = time.time()
  out = tilted.sample(args.num_samples, seed=0)
  result['sample_seconds'] = round(time.time() - t0, 1)
  result['samples_per_second'] = round(
      args.num_samples / result['sample_seconds'], 1)
  e = tilted.config.ebm
  result['ebm'] = {k: e[k] for k in (
      'steps', 'learning_rate', 'alpha', 'step_size', 'langevin_steps',
      'sample_langevin_steps', 'sample_step_size', 'monitor_every',
      'monitor_samples', 'validation', 'channels', 'stem_stride')}
  result['energy_checkpoint'] = tilted.energy_checkpoint
  result['tilt_plus_sample_minutes'] = round(
      (result['tilt_seconds'] + result['sample_seconds']) / 60, 2)
  result['monitor_best'] = tilted.monitor_best()
  with open(os.path.join(workdir, 'monitor.json')) as f:
    result['monitor'] = json.load(f)
  np.savez_compressed(
      os.path.join(workdir, 'user_samples.npz'),
      base=np.round(out['base_samples'] * 255).astype(np.uint8),
      tilted=np.round(out['samples'] * 255).astype(np.uint8),
      latents=out['latents'], base_latents=out['base_latents'])
  return out, tilted


def score_draws(tilted, args, result):
  """Base and tilted FID/precision/recall of draws 1..N-1 (seeds), beside
  draw 0's, and their means over all N draws, into result['draws']."""
  rows = [{'seed': 0, 'base': result['base'], 'tilted': result['tilted']}]
  for seed in range(1, args.draws):
    out = tilted.sample(args.num_samples, seed=seed, verbose=False)
    rows.append({'seed': seed, 'base': score(out['base_samples'], 'base'),
                 'tilted': score(out['samples'], 'tilted')})
  mean = {k: {m: round(float(np.mean([r[k][m] for r in rows])), 4)
              for m in ('fid', 'precision', 'recall')}
          for k in ('base', 'tilted')}
  result['draws'] = {'per_draw': rows, 'mean': mean}


def score_samples(out, result):
  """FID/precision/recall vs the test split, latent norms, and the old
  default monitor's pixel energy distance, into `result`."""
  from tilt_tf import data  # pylint: disable=g-import-not-at-top
  from tilt_tf.runtime import monitor as monitor_lib  # pylint: disable=g-import-not-at-top
  for key, z in (('tilted', out['latents']), ('base', out['base_latents'])):
    result[f'{key}_latent_norm_mean'] = round(
        float(np.linalg.norm(z, axis=1).mean()), 3)
  result['base'] = score(out['base_samples'], 'base samples')
  result['tilted'] = score(out['samples'], 'tilted samples')
  result['fid_ratio'] = round(result['tilted']['fid'] / result['base']['fid'],
                              4)
  ed = monitor_lib.energy_distance_scorer(
      data.load_images('fashion_mnist', 'test'), seed=0)
  result['energy_distance_test'] = {
      'base': round(ed(out['base_samples']), 5),
      'tilted': round(ed(out['samples']), 5)}


def main():
  args = parse_args()
  keras = keras_module(args.keras)
  from absl import logging  # pylint: disable=g-import-not-at-top
  from tilt_tf import data  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)  # Show tilt_tf's progress lines.

  os.makedirs(args.out_dir, exist_ok=True)
  images = data.load_images('fashion_mnist', 'train')[:args.n_train]
  result = {'benchmark': 'user_decoder_gain', 'name': args.name,
            'n_train': len(images), 'preset': args.preset,
            'keras': f'{args.keras} {keras.__version__}'}
  path = decoder_file(args, keras, images, result)
  kwargs = dict(kv.split('=', 1) for kv in args.ebm)
  kwargs = {k: parse_value(v) for k, v in kwargs.items()}
  if args.fid_monitor:
    kwargs['fid_dataset'] = 'fashion_mnist'
  result['tilt_kwargs'] = kwargs
  out, tilted = run_snippet(args, keras, path, images, kwargs, result)
  score_samples(out, result)
  score_draws(tilted, args, result)
  with open(os.path.join(args.out_dir, f'{args.name}.json'), 'w') as f:
    json.dump(result, f, indent=1)
  if args.record:  # The regression record (issue #36), without the curves.
    row = {k: v for k, v in result.items() if k not in ('vae', 'monitor')}
    with open(os.path.join(os.path.dirname(__file__),
                           'RESULTS_user_decoder_gain.jsonl'), 'a') as f:
      f.write(json.dumps(row) + '\n')
  print(json.dumps(result))


if __name__ == '__main__':
  main()
