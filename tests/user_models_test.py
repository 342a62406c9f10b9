"""The generators users bring, each written inside the test by the library a
user would use (Keras 3, tf_keras, tf.saved_model.save, Keras' export, TFP,
a plain function), through the Python API and the CLI: tilt, load again,
export and serve through TF Serving's (TF1) loader. And a run folder belongs
to one generator: another or a retrained one is refused in one line and the
folder is left byte-identical.

The matrix (docs/your_model.md has it as a table):

  format                         Python API      CLI (--generator=)
  Keras 3 .keras / .h5           tilt/load/serve tilt/load/serve (.keras)
  tf_keras .keras / .h5          tilt/load/serve tilt/load/serve (.h5)
  SavedModel: tf.saved_model.save of a Keras 3 model, of a tf.Module;
    Keras 3 model.export; tf_keras model.save(folder)
                                 tilt/load/serve tilt/load/serve (tf.Module)
  TFP TransformedDistribution    tilt/load/serve (Python only)
  Python function                tilt/load/serve (Python only)

The CLI hands --generator to the loader the Python API tests on every
format (tilt_tf.generator_from_path); it runs one format per loader branch
(Keras 3 file, tf_keras file, SavedModel folder), ~10 s of CPU each.
"""

import os
import sys
from unittest import mock

from absl.testing import parameterized
import keras
import numpy as np
from sklearn import datasets
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

import tilt_tf
from tests import serving_testutil
from tests.folder_testutil import snapshot
from tests.forkrun_testutil import ForkServer
from tilt_tf.errors import UserError

tfb, tfd = tfp.bijectors, tfp.distributions
LATENT = 4


def digits(n=400):
  """Real 8x8 digits (scikit-learn) as uint8 [n, 8, 8, 1]."""
  x = datasets.load_digits().images[:n] / 16.0
  return (x * 255).round().astype(np.uint8)[..., None]


def _layers(lib, seed):
  init = lib.initializers.RandomNormal(stddev=0.5, seed=seed)
  return [lib.Input((LATENT,)),
          lib.layers.Dense(32, activation='tanh', kernel_initializer=init),
          lib.layers.Dense(64, activation='sigmoid', kernel_initializer=init),
          lib.layers.Reshape((8, 8, 1))]


def keras3_decoder(seed=0):
  return keras.Sequential(_layers(keras, seed))


def tf_keras_decoder(seed=0):
  return tf_keras.Sequential(_layers(tf_keras, seed))


class _Module(tf.Module):
  """A decoder as a plain tf.Module with a serving signature."""

  def __init__(self, seed):
    super().__init__()
    rng = np.random.default_rng(seed)
    self.w = tf.Variable(rng.normal(0, 0.5, (LATENT, 64)).astype(np.float32))

  @tf.function(input_signature=[tf.TensorSpec([None, LATENT], tf.float32)])
  def __call__(self, z):
    return tf.reshape(tf.sigmoid(z @ self.w), [-1, 8, 8, 1])


# How each format is written, as its library's users write it.
WRITERS = {
    'keras3_keras': lambda d, s: _save(keras3_decoder(s), d, 'g.keras'),
    'keras3_h5': lambda d, s: _save(keras3_decoder(s), d, 'g.h5'),
    'tf_keras_keras': lambda d, s: _save(tf_keras_decoder(s), d, 'g.keras'),
    'tf_keras_h5': lambda d, s: _save(tf_keras_decoder(s), d, 'g.h5'),
    'tf_keras_savedmodel': lambda d, s: _save(tf_keras_decoder(s), d, 'sm'),
    'saved_model_keras3': lambda d, s: _tf_save(keras3_decoder(s), d),
    'saved_model_module': lambda d, s: _tf_save(_Module(s), d),
    'keras3_export': lambda d, s: _export(keras3_decoder(s), d),
}
# Through the CLI: one per loader branch (see the module docstring).
CLI_FORMATS = ('keras3_keras', 'tf_keras_h5', 'saved_model_module')


def _save(model, folder, name):
  path = os.path.join(folder, name)
  model.save(path)
  return path


def _tf_save(obj, folder):
  path = os.path.join(folder, 'saved_model')
  tf.saved_model.save(obj, path)
  return path


def _export(model, folder):
  path = os.path.join(folder, 'exported')
  model.export(path, verbose=False)
  return path


def tf1_serve(path, signature, **feeds):
  """Runs a signature through the TF1 SavedModel loader (what
  `saved_model_cli run` and TF Serving use), in-process."""
  graph = tf.Graph()
  with tf.compat.v1.Session(graph=graph) as sess:
    meta = tf.compat.v1.saved_model.loader.load(sess, ['serve'], path)
    sig = meta.signature_def[signature]
    feed = {sig.inputs[k].name: v for k, v in feeds.items()}
    names = sorted(sig.outputs)
    values = sess.run([sig.outputs[k].name for k in names], feed)
  return dict(zip(names, values))


def tilt_quietly(gen, data, workdir):
  return tilt_tf.tilt(gen, data, workdir=workdir, preset='test', steps=4,
                      verbose=False)


class PythonApiTest(parameterized.TestCase, tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data = digits()

  def _check_tilt_load_serve(self, gen, regen):
    """tilt -> load with a fresh copy of the generator gives the same
    samples -> export served by the TF1 loader decodes its latents as G."""
    workdir = self.create_tempdir().full_path
    tilted = tilt_quietly(gen, self.data, workdir)
    out = tilted.sample(6, seed=3, verbose=False)
    self.assertEqual(out['samples'].shape, (6, 8, 8, 1))
    again = tilt_tf.load(workdir, generator=regen())
    self.assertAllClose(again.sample(6, seed=3, verbose=False)['samples'],
                        out['samples'], atol=1e-5)
    version = tilted.export(os.path.join(workdir, 'export'))
    served = tf1_serve(version, 'serving_default', num_samples=3,
                       seed=np.array([1, 2], np.int32))
    self.assertEqual(served['images'].shape, (3, 8, 8, 1))
    self.assertEqual(served['images'].dtype, np.uint8)
    # The served images are G(served latents): the export holds this G.
    decoded = regen().decode(tf.constant(served['latents'])).numpy()
    np.testing.assert_allclose(served['images'] / 255., decoded, atol=2 / 255.)
    return workdir

  @parameterized.named_parameters(*[(k, k) for k in WRITERS])
  def test_file_format(self, fmt):
    folder = self.create_tempdir().full_path
    path = WRITERS[fmt](folder, 0)
    gen = tilt_tf.generator_from_path(path)
    self.assertEqual(gen.latent_dim, LATENT)
    workdir = self._check_tilt_load_serve(
        gen, lambda: tilt_tf.generator_from_path(path))
    # The same file written again with other weights: refused, untouched.
    other = self.create_tempdir().full_path
    retrained = tilt_tf.generator_from_path(WRITERS[fmt](other, 1))
    before = snapshot(workdir)
    with self.assertRaisesRegex(UserError, 'holds a tilt of another '
                                'generator') as caught:
      tilt_quietly(retrained, self.data, workdir)
    self.assertNotIn('\n', str(caught.exception))
    with self.assertRaisesRegex(UserError, 'another generator'):
      tilt_tf.load(workdir, generator=retrained)
    self.assertEqual(snapshot(workdir), before)

  def test_tfp_flow_with_a_custom_prior(self):
    def flow():
      # A flow keeps the data's size: z [64] -> 8x8 images.
      shift = tf.Variable(np.linspace(-1., 1., 64).astype(np.float32))
      bijector = tfb.Chain([tfb.Reshape([8, 8, 1], [64]), tfb.Sigmoid(),
                            tfb.Shift(shift)])
      prior = tfd.MultivariateNormalDiag(tf.zeros(64), 0.8 * tf.ones(64))
      return tilt_tf.generator_from_bijector(
          tfd.TransformedDistribution(prior, bijector))
    gen = flow()
    self.assertLen(gen.variables, 1)  # The shift, tracked from the chain.
    self._check_tilt_load_serve(gen, flow)

  def test_function(self):
    w = np.random.default_rng(2).normal(0, 0.5, (LATENT, 64)).astype(
        np.float32)

    def fn(z):
      # A branch on a tensor: the training step and the export trace the
      # decoder with AutoGraph, as a user's tf.function would.
      if tf.reduce_mean(z) > 100.0:
        z = tf.zeros_like(z)
      return tf.reshape(tf.sigmoid(z @ w), [-1, 8, 8, 1])

    self._check_tilt_load_serve(
        tilt_tf.generator_from_function(fn, LATENT),
        lambda: tilt_tf.generator_from_function(fn, LATENT))


def _train_cli(server, path, data_path, workdir):
  """`python -m tilt_tf.train --generator=path ...`, forked from `server`."""
  return server.run(
      'tilt_tf.train', [f'--generator={path}', f'--data={data_path}',
                        '--preset=test', f'--workdir={workdir}',
                        '--stage=tilt,export'], timeout=240)


_SERVER = []  # _server(): started on first use, closed by tearDownModule.


def _server():
  """The binaries' and scripts' runs fork from one process that imported
  TensorFlow, both Kerases and TFP (forkrun_testutil): ~5 s of CPU less per run.
  (train_cli_test and install_test start plain processes.)"""
  if not _SERVER:
    _SERVER.append(ForkServer(
        dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))))
  return _SERVER[0]


def tearDownModule():
  for server in _SERVER:
    server.close()


class CliTest(parameterized.TestCase, tf.test.TestCase):

  @parameterized.named_parameters(*[(k, k) for k in CLI_FORMATS])
  def test_file_format(self, fmt):
    root = self.create_tempdir().full_path
    path = WRITERS[fmt](root, 0)
    data_path = os.path.join(root, 'digits.npz')
    np.savez(data_path, images=digits())
    workdir = os.path.join(root, 'run')
    proc = _train_cli(_server(), path, data_path, workdir)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    # A later process loads it again (from the run folder alone) and it
    # serves through saved_model_cli, decoding its latents as this G does.
    loaded = tilt_tf.load(workdir)
    self.assertEqual(loaded.generator.latent_dim, LATENT)
    # A pretrained generator: no base stage ran.
    self.assertFalse(os.path.exists(os.path.join(workdir, 'checkpoints',
                                                 'base')))
    if fmt in ('keras3_keras', 'saved_model_module'):  # Its loader, in
      # process below for every format; the binary forks from _server()
      # (export_test starts it as a plain process).
      result = serving_testutil.saved_model_cli_run(
          os.path.join(workdir, 'export', '1'), 'num_samples=2;seed=[1,2]',
          server=_server())
      self.assertEqual(result.returncode, 0, result.stderr[-3000:])
      self.assertIn('Result for output key images', result.stdout)
    served = tf1_serve(os.path.join(workdir, 'export', '1'),
                       'serving_default', num_samples=2,
                       seed=np.array([1, 2], np.int32))
    decoded = loaded.generator.decode(tf.constant(served['latents']))
    np.testing.assert_allclose(served['images'] / 255., decoded, atol=2 / 255.)
    if fmt != 'keras3_keras':
      return
    # The file overwritten by a retrained model: refused in one line.
    before = snapshot(workdir)
    os.remove(path)
    WRITERS[fmt](root, 1)
    proc = _train_cli(_server(), path, data_path, workdir)
    self.assertEqual(proc.returncode, 2, proc.stderr[-3000:])
    errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
    self.assertLen(errors, 1, proc.stderr[-3000:])
    self.assertIn('holds a tilt of another generator', errors[0])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertEqual(snapshot(workdir), before)
    with self.assertRaisesRegex(UserError, 'another generator'):
      tilt_tf.load(workdir)


_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf
import tilt_tf
w = np.random.default_rng(2).normal(0, 0.5, (4, 64)).astype(np.float32)
gen = tilt_tf.generator_from_function(
    lambda z: tf.reshape(tf.sigmoid(z @ w), [-1, 8, 8, 1]), 4)
verbose = {'default': None, 'quiet': False}[sys.argv[2]]
if verbose is None:
  # A SavedModel saved earlier in the process: TensorFlow leaves the absl
  # logger at WARNING, which must not hide the progress lines.
  tf.saved_model.save(tf.Module(), sys.argv[1] + '_module')
data = (np.random.default_rng(0).random((300, 8, 8, 1)) * 255).astype(np.uint8)
tilted = tilt_tf.tilt(gen, data, workdir=sys.argv[1], steps=4, preset='test',
                      verbose=verbose)
tilted.sample(40, seed=0, batch_size=20, verbose=verbose)
"""


class LibraryUserTest(tf.test.TestCase):
  """What a user of the Python API sees from a plain script."""

  def _run(self, mode):
    """The script as `python -c`, forked from _server(): it imports
    TensorFlow first, so it starts as it would in a process of its own."""
    workdir = self.create_tempdir().full_path
    proc = _server().run(None, [workdir, mode], code=_SCRIPT, timeout=240)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(workdir, 'monitor.json')) as f:
      self.curves.append(f.read())
    return proc.stderr

  def test_progress_is_shown_unless_asked_not_to(self):
    self.curves = []
    shown = self._run('default')
    self.assertRegex(shown, r'tilt 4/4 .*steps/s ETA')
    self.assertRegex(shown, r'sample: 40/40 tilted samples .*samples/s ETA')
    self.assertRegex(shown, r'kept the energy of step \d+: energy_distance')
    quiet = self._run('quiet')
    self.assertNotIn('ETA', quiet)
    self.assertNotIn('kept the energy', quiet)
    self.assertNotIn('Sharding callback', shown)  # TensorFlow's chatter.
    # Same seed, same run: the two processes' monitor curves agree.
    self.assertEqual(self.curves[0], self.curves[1])

  def test_preset_follows_the_machine(self):
    from tilt_tf import api  # pylint: disable=g-import-not-at-top
    for gpus, preset in (([], 'small'), (['/gpu:0'], 'paper')):
      with mock.patch.object(tf.config, 'list_physical_devices',
                             return_value=gpus):
        self.assertEqual(api.tilt_config().preset, preset)
    self.assertEqual(api.tilt_config('test').preset, 'test')

  def test_settings_are_checked_as_on_the_command_line(self):
    from tilt_tf import api  # pylint: disable=g-import-not-at-top
    for bad, message in (({'monitor_every': 0}, 'must be >= 1'),
                         ({'energy_scale_grid': (2, 0)}, 'must be > 0'),
                         ({'step_size': -1.0}, 'must be > 0'),
                         ({'langevin_step': 3}, 'unknown EBM setting')):
      with self.assertRaisesRegex(UserError, message):
        api.tilt_config('test', **bad)
    self.assertEqual(api.tilt_config('test', energy_scale_grid=[2, 4])
                     .ebm.energy_scale_grid, (2, 4))


if __name__ == '__main__':
  tf.test.main()
