"""The public API on models trained outside tilt_tf: a Keras 3 decoder on
real digits (scikit-learn's 8x8 set) and a TFP RealNVP flow on a 2-D toy
set; both must tilt to better samples, and both exports must serve through
`saved_model_cli run` the in-process samples for the same seed. (Every
model format through the CLI: tests/user_models_test.py.)"""

import os
import sys
from unittest import mock

import keras
import numpy as np
from sklearn import datasets
import tensorflow as tf
import tensorflow_probability as tfp

import tilt_tf
from tests import forkrun_testutil
from tests import serving_testutil
from tilt_tf import data as data_lib
from tilt_tf import figures
from tilt_tf import toy_metrics
from tilt_tf.errors import UserError
from tilt_tf.methods import latent_tilt

tfb, tfd = tfp.bijectors, tfp.distributions
# The train binary's and saved_model_cli's runs fork from it (setUpModule):
# forkrun_testutil, ~5 s of CPU less each than a new process.
_SERVER = None
LATENT = 8
# Enough EBM for a measurable gain in seconds: a small energy, 20-step chains.
EBM = dict(channels=(16, 32), blocks=1, stem_stride=1, batch_size=64,
           monitor_every=25, monitor_samples=300, validation=200,
           langevin_steps=20, sample_langevin_steps=20, learning_rate=1e-3)


def digits():
  """(train, test): scikit-learn's 8x8 digits in [0, 1], [N, 8, 8, 1]."""
  x = (datasets.load_digits().images / 16.0).astype(np.float32)[..., None]
  x = x[np.random.default_rng(0).permutation(len(x))]
  return x[:1500], x[1500:]


def train_keras_vae(images, steps=400):
  """A plain Keras 3 VAE written here, not in tilt_tf; returns its decoder."""
  keras.utils.set_random_seed(0)
  enc = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                          keras.layers.Dense(128, activation='relu'),
                          keras.layers.Dense(2 * LATENT)])
  dec = keras.Sequential([keras.Input((LATENT,)),
                          keras.layers.Dense(128, activation='relu'),
                          keras.layers.Dense(64, activation='sigmoid'),
                          keras.layers.Reshape((8, 8, 1))])
  opt = keras.optimizers.Adam(2e-3)
  params = enc.trainable_variables + dec.trainable_variables

  @tf.function
  def step(x, seed):
    with tf.GradientTape() as tape:
      mu, logvar = tf.split(enc(x), 2, -1)
      z = mu + tf.exp(0.5 * logvar) * tf.random.stateless_normal(
          tf.shape(mu), seed)
      xr, xf = tf.reshape(dec(z), [-1, 64]), tf.reshape(x, [-1, 64])
      rec = -tf.reduce_sum(xf * tf.math.log(xr + 1e-6) +
                           (1 - xf) * tf.math.log(1 - xr + 1e-6), -1)
      kl = 0.5 * tf.reduce_sum(tf.exp(logvar) + mu**2 - 1 - logvar, -1)
      loss = tf.reduce_mean(rec + kl)
    opt.apply_gradients(zip(tape.gradient(loss, params), params))

  for i in range(steps):
    idx = np.random.default_rng(i).integers(0, len(images), 64)
    step(tf.constant(images[idx]), tf.constant([0, i]))
  return dec


def train_toy_realnvp(data, steps=400):
  """A TFP RealNVP flow on 2-D points, fitted here by maximum likelihood.

  Returns (the flow, the Keras 3 coupling nets that own its weights).
  """
  keras.utils.set_random_seed(0)
  # Keras 3 layers take tensors only, so the coupling nets (x0 -> shift,
  # log scale) are called from lambdas, which no bijector tracks.
  nets = [keras.Sequential([keras.Input((1,)),
                            keras.layers.Dense(64, activation='relu'),
                            keras.layers.Dense(64, activation='relu'),
                            keras.layers.Dense(2)]) for _ in range(4)]
  layers = []
  for i, net in enumerate(nets):
    layers.append(tfb.RealNVP(
        num_masked=1, shift_and_log_scale_fn=lambda x, units, net=net:
        tuple(tf.split(net(x), 2, -1))))
    if i < 3:
      layers.append(tfb.Permute([1, 0]))
  flow = tfd.TransformedDistribution(
      tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2)),
      tfb.Chain(layers[::-1]))
  params = [w for net in nets for w in net.trainable_variables]
  opt = keras.optimizers.Adam(3e-3)

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(flow.log_prob(x))
    opt.apply_gradients(zip(tape.gradient(loss, params), params))

  for i in range(steps):
    step(tf.constant(data[np.random.default_rng(i).integers(0, 4000, 256)]))
  return flow, nets


def checkpoint_files(workdir):
  """{path: (size, mtime_ns)} of every file under workdir/checkpoints."""
  out = {}
  for root, _, names in os.walk(os.path.join(workdir, 'checkpoints')):
    for name in names:
      st = os.stat(os.path.join(root, name))
      out[os.path.join(root, name)] = (st.st_size, st.st_mtime_ns)
  return out


def energy_distance(samples, reference):
  return toy_metrics.energy_distance(
      np.asarray(samples).reshape(len(samples), -1),
      np.asarray(reference).reshape(len(reference), -1))


def setUpModule():
  global _SERVER  # pylint: disable=global-statement
  _SERVER = forkrun_testutil.ForkServer(
      dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))


def tearDownModule():
  _SERVER.close()


class KerasDecoderTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.train, cls.test = digits()
    cls.decoder = train_keras_vae(cls.train)

  def test_python_api_tilts_and_exports(self):
    workdir = self.create_tempdir().full_path
    gen = tilt_tf.generator_from_keras(self.decoder)
    self.assertEqual(gen.latent_dim, LATENT)
    tilted = tilt_tf.tilt(gen, self.train, workdir=workdir, steps=100,
                          preset='test', step_size=0.01, **EBM)
    out = tilted.sample(500, seed=1)
    self.assertEqual(out['samples'].shape, (500, 8, 8, 1))
    self.assertEqual(out['latents'].shape, (500, LATENT))
    base = energy_distance(out['base_samples'], self.test)
    tilted_score = energy_distance(out['samples'], self.test)
    self.assertLess(tilted_score, base)  # Closer to held-out real digits.
    # The same seed, the same samples; resuming the finished run reuses it.
    np.testing.assert_array_equal(tilted.sample(16, seed=1)['samples'],
                                  out['samples'][:16])
    checkpoints = checkpoint_files(workdir)
    self.assertNotEmpty(checkpoints)
    with mock.patch.object(latent_tilt.LatentTilt, 'train_step',
                           autospec=True,
                           side_effect=latent_tilt.LatentTilt.train_step
                           ) as train_step:
      again = tilt_tf.tilt(gen, self.train, workdir=workdir, steps=100,
                           preset='test', step_size=0.01, **EBM)
    # No training step was even traced, and no checkpoint file was written.
    self.assertEqual(train_step.call_count, 0)
    self.assertEqual(checkpoint_files(workdir), checkpoints)
    self.assertEqual(again.energy_checkpoint, tilted.energy_checkpoint)
    np.testing.assert_array_equal(again.sample(16, seed=1)['samples'],
                                  out['samples'][:16])
    path = tilted.export(os.path.join(workdir, 'export'))
    self._check_served(path, tilted)
    # A later session: the run folder and the generator give it back.
    loaded = tilt_tf.load(workdir, generator=gen)
    np.testing.assert_array_equal(loaded.sample(16, seed=1)['samples'],
                                  out['samples'][:16])

  def _check_served(self, path, tilted):
    """TF Serving's loader path (`saved_model_cli run`) and
    `tf.saved_model.load` answer with the in-process sampler's images for
    the same seed: seed [s, 1000] is batch 0 of `tilted.sample(n, seed=s)`
    (`Tilted.sample` draws batch i from [s, 1000 + i])."""
    n, s = 3, 1
    want = tilted.sample(n, seed=s)
    images = figures.to_uint8(want['samples'])
    self.assertEqual(images.shape, (n, 8, 8, 1))
    seed = f'[{s},1000]'
    outdir = self.create_tempdir().full_path
    result = serving_testutil.saved_model_cli_run(
        path, f'num_samples={n};seed={seed}', outdir=outdir, server=_SERVER)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertIn('Result for output key images', result.stdout)
    cli = serving_testutil.saved_outputs(outdir)
    self.assertEqual(sorted(cli), ['images', 'latents'])
    self.assertEqual(cli['images'].dtype, np.uint8)
    self.assertAllEqual(cli['images'], images)
    self.assertAllClose(cli['latents'], want['latents'], rtol=1e-5, atol=1e-5)

    signatures = tf.saved_model.load(path).signatures
    served = signatures['serving_default'](
        num_samples=tf.constant(n), seed=tf.constant([s, 1000]))
    self.assertEqual(served['images'].dtype, tf.uint8)
    self.assertAllEqual(served['images'], images)
    self.assertAllClose(served['latents'], want['latents'], rtol=1e-5,
                        atol=1e-5)
    other = signatures['serving_default'](
        num_samples=tf.constant(n), seed=tf.constant([s + 1, 1000]))
    self.assertNotAllClose(other['latents'], served['latents'])
    # The knobs: steps and temperature as Tilted.sample takes them, and the
    # base samples from the same starting latents.
    short = tilted.sample(n, seed=s, langevin_steps=5, temperature=0.8)
    served = signatures['sample_tilted'](
        num_samples=tf.constant(n), seed=tf.constant([s, 1000]),
        langevin_steps=tf.constant(5), temperature=tf.constant(0.8))
    self.assertAllEqual(served['images'], figures.to_uint8(short['samples']))
    self.assertAllClose(served['latents'], short['latents'], rtol=1e-5,
                        atol=1e-5)
    served = signatures['sample_base'](
        num_samples=tf.constant(n), seed=tf.constant([s, 1000]),
        temperature=tf.constant(1.0))
    self.assertAllEqual(served['images'],
                        figures.to_uint8(want['base_samples']))
    self.assertAllClose(served['latents'], want['base_latents'], rtol=1e-5,
                        atol=1e-5)

  def test_cli_refuses_a_keras_file_with_code_by_default(self):
    root = self.create_tempdir().full_path
    model = keras.Sequential([keras.Input((LATENT,)),
                              keras.layers.Lambda(lambda z: z * 0.5),
                              keras.layers.Dense(64, activation='sigmoid'),
                              keras.layers.Reshape((8, 8, 1))])
    path = os.path.join(root, 'lambda.keras')
    model.save(path)
    data_path = os.path.join(root, 'digits.npz')
    np.savez(data_path, images=(self.train * 255).round().astype(np.uint8))
    workdir = os.path.join(root, 'run')
    proc = _SERVER.run(
        'tilt_tf.train', [f'--generator={path}', f'--data={data_path}',
                          '--preset=test', f'--workdir={workdir}'],
        timeout=300)
    self.assertEqual(proc.returncode, 2, proc.stderr[-3000:])
    self.assertNotIn('Traceback', proc.stderr)
    errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
    self.assertLen(errors, 1)
    self.assertIn('--allow_unsafe_model', errors[0])
    self.assertFalse(os.path.exists(workdir))

  def test_bad_generators_are_one_line_errors(self):
    gen = tilt_tf.generator_from_keras(self.decoder)
    with self.assertRaisesRegex(UserError, 'does not fit the model'):
      tilt_tf.generator_from_keras(self.decoder, latent_dim=5)
    with self.assertRaisesRegex(UserError, r'shape \(8, 8, 1\), the data '
                                r'has shape \(28, 28, 1\)'):
      tilt_tf.tilt(gen, np.zeros((100, 28, 28, 1), np.uint8),
                   self.create_tempdir().full_path)
    shifted = tilt_tf.generator_from_function(
        lambda z: 2.0 * self.decoder(z) - 1.0, LATENT)
    with self.assertRaisesRegex(UserError, r'images must be in \[0, 1\]'):
      tilt_tf.tilt(shifted, self.train, self.create_tempdir().full_path)


class FlowTest(tf.test.TestCase):

  def test_realnvp_on_a_toy_set_tilts_closer_to_the_data(self):
    data = data_lib.toy_samples('25gaussians', 4000, 0)
    test = data_lib.toy_samples('25gaussians', 2000, 1)
    flow, nets = train_toy_realnvp(data)
    gen = tilt_tf.generator_from_bijector(flow, owners=nets)
    # Their weights are tracked for checkpoints and exports.
    self.assertLen(gen.variables, sum(len(n.weights) for n in nets))
    workdir = self.create_tempdir().full_path
    # 50 EBM steps: energy distance to held-out points 0.039 -> 0.019 here
    # (150 steps: 0.013, for ~6 s more CPU).
    tilted = tilt_tf.tilt(gen, data, workdir=workdir, steps=50,
                          preset='test', hidden=128, layers=3,
                          batch_size=256, langevin_steps=20,
                          sample_langevin_steps=40, step_size=0.01,
                          learning_rate=1e-3, monitor_every=50,
                          monitor_samples=500, validation=500)
    out = tilted.sample(2000, seed=3)
    base = toy_metrics.energy_distance(out['base_samples'], test)
    tilted_score = toy_metrics.energy_distance(out['samples'], test)
    self.assertLess(tilted_score, base)
    path = tilted.export(os.path.join(workdir, 'export'))
    # Served points are the in-process ones for the same seed (batch 0 of
    # seed 3 is [3, 1000]), through both loaders.
    want = tilted.sample(5, seed=3)
    outdir = self.create_tempdir().full_path
    result = serving_testutil.saved_model_cli_run(
        path, 'num_samples=5;seed=[3,1000]', outdir=outdir, server=_SERVER)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertIn('Result for output key samples', result.stdout)
    cli = serving_testutil.saved_outputs(outdir)
    self.assertEqual(sorted(cli), ['latents', 'samples'])
    served = tf.saved_model.load(path).signatures['serving_default'](
        num_samples=tf.constant(5), seed=tf.constant([3, 1000]))
    for got in (cli, {k: v.numpy() for k, v in served.items()}):
      self.assertAllClose(got['samples'], want['samples'], rtol=1e-5,
                          atol=1e-5)
      self.assertAllClose(got['latents'], want['latents'], rtol=1e-5,
                          atol=1e-5)


if __name__ == '__main__':
  tf.test.main()
