"""Image pipeline dry runs (test preset) for every image base on tiny IDX
files: VAE, GLF, GLOW, and the pixel EBM (no tilt stage)."""

import json
import os
import shutil
import tempfile
from unittest import mock

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import configs
from tests import forkrun_testutil
from tests import image_data_testutil
from tests import serving_testutil
from tilt_tf import data as data_lib
from tilt_tf import train_lib
from tilt_tf.runtime import monitor as monitor_lib
from tilt_tf.stages import export as export_lib


class TrainImagesTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # One FID classifier for the four runs (the same fake data): the first
    # run trains and caches it, the others load it (fid_test covers both).
    cls._cache = tempfile.mkdtemp(dir=os.environ.get('TEST_TMPDIR'))
    cls._env = mock.patch.dict(os.environ, {'TILT_TF_CACHE': cls._cache})
    cls._env.start()

  @classmethod
  def tearDownClass(cls):
    cls._env.stop()
    shutil.rmtree(cls._cache, ignore_errors=True)
    super().tearDownClass()

  @parameterized.parameters('vae', 'glf', 'glow', 'pixel_ebm')
  def test_dry_run(self, base):
    data_dir = self.create_tempdir().full_path
    image_data_testutil.fake_fashion(data_dir)
    config = configs.get_config(base, 'fashion_mnist', 'test')
    config.data_dir = data_dir
    if base == 'glow':  # One coupling step per level (2 levels, as the
      config.base.steps_per_block = 1  # preset's): its graphs trace in half.
    workdir = self.create_tempdir().full_path
    references = []
    real_scorer = monitor_lib.fid_scorer

    def recording_scorer(reference_images, *args, **kwargs):
      references.append(np.asarray(reference_images))
      return real_scorer(reference_images, *args, **kwargs)

    with mock.patch.object(monitor_lib, 'fid_scorer', recording_scorer):
      metrics = train_lib.run(config, workdir)
    if base != 'pixel_ebm':
      self._check_monitor_reference(config, workdir, references)
    for name in ('samples_base.npz', 'samples_tilted.npz', 'samples.png',
                 'langevin_chain.png', 'metrics.json'):
      self.assertTrue(os.path.exists(os.path.join(workdir, name)), name)
    tilted = np.load(os.path.join(workdir, 'samples_tilted.npz'))
    self.assertEqual(tilted['images'].shape, (128, 28, 28, 1))
    self.assertEqual(tilted['images'].dtype, np.uint8)
    for key in ('base', 'tilted'):
      for field in ('fid', 'precision', 'recall', 'feature_extractor'):
        self.assertIn(field, metrics[key])
      self.assertTrue(np.isfinite(metrics[key]['fid']))
    if base == 'pixel_ebm':
      # No latent: no tilt stage, and both sample files hold its samples.
      base_npz = np.load(os.path.join(workdir, 'samples_base.npz'))
      self.assertAllEqual(base_npz['images'], tilted['images'])
      self.assertNotIn('latents', tilted)
      self.assertEqual(metrics['base'], metrics['tilted'])
      self.assertNotIn('tilt', metrics)
      self.assertFalse(os.path.exists(os.path.join(workdir, 'monitor.json')))
      self.assertFalse(os.path.exists(
          os.path.join(workdir, 'checkpoints', 'tilt')))
      return
    self.assertEqual(tilted['latents'].shape[0], 128)
    if base == 'glow':
      self.assertEqual(tilted['latents'].shape, (128, 784))
      self.assertBetween(metrics['base_model']['test_bits_per_dim'], 0., 20.)
    with open(os.path.join(workdir, 'monitor.json')) as f:
      self.assertLen(json.load(f), 2)
    if base == 'glf':
      self._check_export(workdir, data_dir)

  def _check_monitor_reference(self, config, workdir, references):
    """The §5.3 monitor scores against the held-out end of the train split:
    never the test split the final FID reads, never the energy's batches."""
    self.assertLen(references, 1)
    ref = references[0]
    train = data_lib.load(config.dataset, 'train', config.data_dir,
                          n=config.n_train or None)
    test = data_lib.load_images(config.dataset, 'test', config.data_dir)
    self.assertLen(ref, config.ebm.validation)
    self.assertAllEqual(ref, train[-len(ref):])
    test_rows = {t.tobytes() for t in test}
    self.assertFalse(any(r.tobytes() in test_rows for r in ref))
    with open(os.path.join(workdir, 'run.json')) as f:
      self.assertIn('held out of the energy', json.load(f)['monitor_reference'])

  def _check_export(self, workdir, data_dir):
    """An image export answers through saved_model_cli: shapes, the same
    images for the same seed, and a refusal of an absurd num_samples. It is
    made from a copy of the run, with the data folder gone."""
    copy = os.path.join(self.create_tempdir().full_path, 'run')
    shutil.copytree(workdir, copy)
    shutil.rmtree(data_dir)
    path = export_lib.export_run(copy, self.create_tempdir().full_path)
    model = tf.saved_model.load(path)
    fn = model.signatures['serving_default']
    args = dict(num_samples=tf.constant(3), seed=tf.constant([4, 5]))
    first, second = fn(**args), fn(**args)
    self.assertEqual(first['images'].shape, (3, 28, 28, 1))
    self.assertEqual(first['images'].dtype, tf.uint8)
    self.assertEqual(first['latents'].shape, (3, 64))
    self.assertAllEqual(first['images'], second['images'])
    # Both saved_model_cli runs fork from one process that imported
    # TensorFlow once (forkrun_testutil): the same module, args and loader.
    server = forkrun_testutil.ForkServer(os.environ, preload=('tensorflow',))
    self.addCleanup(server.close)
    result = serving_testutil.saved_model_cli_run(
        path, 'num_samples=3;seed=[4,5]', server=server, timeout=100)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertIn('Result for output key images', result.stdout)
    self.assertIn('Result for output key latents', result.stdout)
    refused = serving_testutil.saved_model_cli_run(
        path, 'num_samples=1000000000;seed=[4,5]', server=server,
        timeout=100)  # Seconds each; inside the target's 300 s (medium).
    self.assertNotEqual(refused.returncode, 0)
    self.assertIn('num_samples must be <= 1024', refused.stderr)


if __name__ == '__main__':
  tf.test.main()
