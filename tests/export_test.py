"""SavedModel export of a toy run: signatures, determinism, refusals, layout,
the TF1 loader path (`saved_model_cli run`) and a TF Serving PredictRequest."""

import json
import os
import shutil

import numpy as np
import tensorflow as tf

import configs
from tests import serving_testutil
from tilt_tf import train_lib
from tilt_tf.runtime import build
from tilt_tf.stages import export as export_lib
from tilt_tf.errors import UserError

_TRAINED_STEPS = 5  # sample_langevin_steps of the toy `test` preset.


class ExportTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = os.path.join(os.environ.get('TEST_TMPDIR', '/tmp'),
                        f'export_test_{os.getpid()}')
    shutil.rmtree(root, ignore_errors=True)
    cls.workdir = os.path.join(root, 'run')
    cls.export_dir = os.path.join(root, 'exports')
    cls.config = configs.get_config('mlp_vae', '25gaussians', 'test')
    train_lib.run(cls.config, cls.workdir)
    cls.path = export_lib.export_run(cls.workdir, cls.export_dir)
    cls.model = tf.saved_model.load(cls.path)

  def _call(self, signature='serving_default', **inputs):
    fn = self.model.signatures[signature]
    out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}

  def _tilted(self, n=4, seed=(1, 2), steps=_TRAINED_STEPS, temperature=1.0):
    return self._call('sample_tilted', num_samples=np.int32(n),
                      seed=np.array(seed, np.int32),
                      langevin_steps=np.int32(steps),
                      temperature=np.float32(temperature))

  def test_signatures_and_shapes(self):
    # The pipeline ran the distill stage: its flow is exported too.
    self.assertEqual(set(self.model.signatures),
                     set(export_lib.SIGNATURES) | {'sample_distilled'})
    inputs = {
        'sample_distilled': {'num_samples', 'seed'},
        'serving_default': {'num_samples', 'seed'},
        'sample_tilted': {'num_samples', 'seed', 'langevin_steps',
                          'temperature'},
        'sample_base': {'num_samples', 'seed', 'temperature'},
    }
    for name, expected in inputs.items():
      _, kwargs = self.model.signatures[name].structured_input_signature
      self.assertEqual(set(kwargs), expected, name)
    out = self._call(num_samples=np.int32(4), seed=np.array([1, 2], np.int32))
    self.assertEqual(set(out), {'samples', 'latents'})
    self.assertEqual(out['samples'].shape, (4, 2))
    self.assertEqual(out['samples'].dtype, np.float32)
    self.assertEqual(out['latents'].shape, (4, 2))
    base = self._call('sample_base', num_samples=np.int32(7),
                      seed=np.array([1, 2], np.int32),
                      temperature=np.float32(1.0))
    self.assertEqual(base['samples'].shape, (7, 2))
    self.assertEqual(int(self.model.trained_langevin_steps.numpy()),
                     _TRAINED_STEPS)
    self.assertEqual(int(self.model.max_samples.numpy()), 1024)

  def test_determinism(self):
    a = self._tilted(seed=(3, 4))
    b = self._tilted(seed=(3, 4))
    c = self._tilted(seed=(3, 5))
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
      self.assertFalse(np.array_equal(a[k], c[k]), k)
    # serving_default = the trained steps at temperature 1.
    d = self._call(num_samples=np.int32(4), seed=np.array([3, 4], np.int32))
    np.testing.assert_array_equal(a['samples'], d['samples'])
    # Both chains start from the same z0: 0 Langevin steps = the base.
    zero = self._tilted(seed=(3, 4), steps=0)
    base = self._call('sample_base', num_samples=np.int32(4),
                      seed=np.array([3, 4], np.int32),
                      temperature=np.float32(1.0))
    np.testing.assert_array_equal(zero['latents'], base['latents'])

  def test_matches_the_runs_own_samples(self):
    # The sample stage drew its first batch (250) with seed [seed, 1000].
    n = self.config.sample.batch_size
    seed = np.array([self.config.seed, 1000], np.int32)
    out = self._call(num_samples=np.int32(n), seed=seed)
    base = self._call('sample_base', num_samples=np.int32(n), seed=seed,
                      temperature=np.float32(1.0))
    tilted_npz = np.load(os.path.join(self.workdir, 'samples_tilted.npz'))
    base_npz = np.load(os.path.join(self.workdir, 'samples_base.npz'))
    np.testing.assert_array_equal(out['samples'], tilted_npz['samples'][:n])
    np.testing.assert_array_equal(out['latents'], tilted_npz['latents'][:n])
    np.testing.assert_array_equal(base['samples'], base_npz['samples'][:n])

  def test_uses_the_latest_invocations_config(self):
    # Same run, later stages invoked with another step size (--set): the
    # export samples with that one, not the first invocation's.
    copy = os.path.join(self.create_tempdir().full_path, 'run')
    shutil.copytree(self.workdir, copy)
    changed = configs.get_config('mlp_vae', '25gaussians', 'test',
                                 overrides=['ebm.step_size=0.123'])
    self.assertNotEqual(self.config.ebm.step_size, 0.123)
    train_lib.run(changed, copy, stages=())
    self.assertEqual(build.restore(copy).config.ebm.step_size, 0.123)
    # A rerun with the same config leaves run.json as it is.
    before = os.stat(os.path.join(copy, 'run.json')).st_mtime_ns
    train_lib.run(changed, copy, stages=())
    self.assertEqual(os.stat(os.path.join(copy, 'run.json')).st_mtime_ns,
                     before)

  def test_samples_with_the_sampling_step_size(self):
    copy = os.path.join(self.create_tempdir().full_path, 'run')
    shutil.copytree(self.workdir, copy)
    changed = configs.get_config('mlp_vae', '25gaussians', 'test',
                                 overrides=['ebm.sample_step_size=0.05'])
    train_lib.run(changed, copy, stages=())
    restored = build.restore(copy)
    self.assertEqual(restored.method.sample_step_size, 0.05)
    model = tf.saved_model.load(
        export_lib.export_run(copy, os.path.join(copy, 'exports')))
    out = model.signatures['sample_tilted'](
        num_samples=tf.constant(8), seed=tf.constant([9, 8]),
        langevin_steps=tf.constant(_TRAINED_STEPS),
        temperature=tf.constant(1.0))
    ref = restored.method.sample(tf.constant(8), tf.constant([9, 8]),
                                 tf.constant(_TRAINED_STEPS))
    np.testing.assert_allclose(out['latents'].numpy(), ref['z_tilted'].numpy(),
                               atol=1e-6)
    trained_eps = self._tilted(n=8, seed=(9, 8))
    self.assertFalse(np.allclose(trained_eps['latents'],
                                 out['latents'].numpy()))

  def test_matches_in_process_sampler(self):
    restored = build.restore(self.workdir)
    sample = tf.function(restored.method.sample)
    for steps in (_TRAINED_STEPS, 12):
      ref = sample(tf.constant(16), tf.constant([9, 8]), tf.constant(steps))
      out = self._tilted(n=16, seed=(9, 8), steps=steps)
      np.testing.assert_array_equal(out['samples'], ref['x_tilted'].numpy())
      np.testing.assert_array_equal(out['latents'], ref['z_tilted'].numpy())
    base = self._call('sample_base', num_samples=np.int32(16),
                      seed=np.array([9, 8], np.int32),
                      temperature=np.float32(1.0))
    np.testing.assert_array_equal(base['samples'], ref['x_base'].numpy())
    # Temperature scales z0 exactly as the in-process chain does.
    hot = restored.method.latent_ebm.sample_latents(
        16, tf.constant([9, 8]), self.config.ebm.step_size, 3,
        temperature=1.5)
    out = self._tilted(n=16, seed=(9, 8), steps=3, temperature=1.5)
    np.testing.assert_allclose(out['latents'], hot['z'].numpy(), atol=1e-6)

  def test_refusals(self):
    cases = [
        (dict(n=1_000_000_000), 'num_samples must be <= 1024'),
        (dict(n=0), 'num_samples must be >= 1'),
        (dict(steps=-1), 'langevin_steps must be >= 0'),
        (dict(steps=10 * _TRAINED_STEPS + 1), 'langevin_steps must be <= 50'),
        (dict(temperature=0.0), 'temperature must be > 0'),
        (dict(temperature=float('nan')), 'temperature must be'),
    ]
    for kwargs, message in cases:
      with self.subTest(**kwargs):
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, message):
          self._tilted(**kwargs)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                'num_samples must be <= 1024'):
      self._call(num_samples=np.int32(1_000_000_000),
                 seed=np.array([1, 2], np.int32))
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                'num_samples must be >= 1'):
      self._call('sample_base', num_samples=np.int32(-3),
                 seed=np.array([1, 2], np.int32), temperature=np.float32(1))
    # Wrong shapes or dtypes never reach the graph.
    with self.assertRaises((TypeError, ValueError,
                            tf.errors.InvalidArgumentError)):
      self._call(num_samples=np.int32(4), seed=np.array([1, 2, 3], np.int32))
    with self.assertRaises((TypeError, ValueError,
                            tf.errors.InvalidArgumentError)):
      self._call(num_samples=np.float32(4), seed=np.array([1, 2], np.int32))

  def test_versioned_layout_and_user_errors(self):
    export_dir = self.create_tempdir().full_path
    first = export_lib.export_run(self.workdir, export_dir, max_samples=8)
    second = export_lib.export_run(self.workdir, export_dir, max_samples=8)
    self.assertEqual(first, os.path.join(export_dir, '1'))
    self.assertEqual(second, os.path.join(export_dir, '2'))
    self.assertEqual(sorted(os.listdir(export_dir)), ['1', '2'])  # No temp.
    for path in (first, second):
      self.assertTrue(os.path.exists(os.path.join(path, 'saved_model.pb')))
    self.assertEqual(export_lib.next_version(export_dir), 3)
    with self.assertRaisesRegex(UserError, 'exists'):
      export_lib.export_run(self.workdir, export_dir, version=2)
    small = tf.saved_model.load(second)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                'num_samples must be <= 8'):
      small.signatures['serving_default'](num_samples=tf.constant(9),
                                          seed=tf.constant([1, 2]))
    with self.assertRaisesRegex(UserError, 'no run'):
      export_lib.export_run(self.create_tempdir().full_path, export_dir)
    # A run whose tilt stage never ran.
    base_only = self.create_tempdir().full_path
    shutil.copy(os.path.join(self.workdir, 'run.json'), base_only)
    shutil.copytree(os.path.join(self.workdir, 'checkpoints', 'base'),
                    os.path.join(base_only, 'checkpoints', 'base'))
    with self.assertRaisesRegex(UserError, 'no tilt checkpoint'):
      export_lib.export_run(base_only, export_dir)
    # A pixel-space EBM (--base=pixel_ebm) has no latent sampler.
    pixel = self.create_tempdir().full_path
    with open(os.path.join(self.workdir, 'run.json')) as f:
      run = json.load(f)
    run['identity']['base_name'] = 'pixel_ebm'
    run['config']['method'] = 'pixel_ebm'
    with open(os.path.join(pixel, 'run.json'), 'w') as f:
      json.dump(run, f)
    with self.assertRaisesRegex(UserError, 'no latent sampler to export'):
      export_lib.export_run(pixel, export_dir)
    self.assertEqual(sorted(os.listdir(export_dir)), ['1', '2'])

  def test_saved_model_cli_run(self):
    """The TF1 loader path TF Serving uses."""
    result = serving_testutil.saved_model_cli_run(
        self.path, 'num_samples=3;seed=[1,2]')
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertIn('Result for output key samples', result.stdout)
    self.assertIn('Result for output key latents', result.stdout)
    # The printed values are the ones tf.saved_model.load gives.
    out = self._call(num_samples=np.int32(3), seed=np.array([1, 2], np.int32))
    printed = result.stdout.split('Result for output key samples:')[1]
    numbers = np.array(printed.replace('[', ' ').replace(']', ' ').split()[:6],
                       np.float32)
    np.testing.assert_allclose(numbers, out['samples'].ravel(), rtol=1e-5)

  def test_rest_body_through_loaded_model(self):
    """The README's REST body (columnar `inputs`), typed as TF Serving does:
    by the signature's input dtypes."""
    body = json.loads('{"signature_name": "sample_tilted", "inputs": '
                      '{"num_samples": 3, "seed": [1, 2], '
                      '"langevin_steps": 5, "temperature": 1.0}}')
    fn = self.model.signatures[body['signature_name']]
    _, specs = fn.structured_input_signature
    out = fn(**{k: tf.constant(v, specs[k].dtype)
                for k, v in body['inputs'].items()})
    ref = self._tilted(n=3, seed=(1, 2))
    np.testing.assert_array_equal(out['samples'].numpy(), ref['samples'])

  def test_predict_request_through_loaded_model(self):
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
    request = predict_pb2.PredictRequest()
    request.model_spec.name = 'tilt'
    request.model_spec.signature_name = 'sample_tilted'
    request.inputs['num_samples'].CopyFrom(tf.make_tensor_proto(5, tf.int32))
    request.inputs['seed'].CopyFrom(tf.make_tensor_proto([1, 2], tf.int32))
    request.inputs['langevin_steps'].CopyFrom(
        tf.make_tensor_proto(_TRAINED_STEPS, tf.int32))
    request.inputs['temperature'].CopyFrom(
        tf.make_tensor_proto(1.0, tf.float32))
    request = predict_pb2.PredictRequest.FromString(
        request.SerializeToString())  # As it travels over gRPC.
    fn = self.model.signatures[request.model_spec.signature_name]
    out = fn(**{k: tf.constant(tf.make_ndarray(v))
                for k, v in request.inputs.items()})
    ref = self._tilted(n=5, seed=(1, 2))
    np.testing.assert_array_equal(out['samples'].numpy(), ref['samples'])
    # The response TF Serving would build from it.
    response = predict_pb2.PredictResponse()
    for k, v in out.items():
      response.outputs[k].CopyFrom(tf.make_tensor_proto(v))
    self.assertEqual(tf.make_ndarray(response.outputs['samples']).shape,
                     (5, 2))
    # The warmup request TF Serving replays at load runs too.
    warmup = os.path.join(self.path, 'assets.extra',
                          'tf_serving_warmup_requests')
    records = list(tf.data.TFRecordDataset(warmup).as_numpy_iterator())
    self.assertLen(records, 1)
    log = prediction_log_pb2.PredictionLog.FromString(records[0])
    req = log.predict_log.request
    fn = self.model.signatures[req.model_spec.signature_name]
    out = fn(**{k: tf.constant(tf.make_ndarray(v))
                for k, v in req.inputs.items()})
    self.assertEqual(out['samples'].shape, (1, 2))


if __name__ == '__main__':
  tf.test.main()
