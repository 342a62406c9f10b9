"""Image pipeline dry runs (test preset) for every image base on tiny IDX
files: VAE, GLF, GLOW, and the pixel EBM (no tilt stage)."""

import json
import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import configs
from tests import image_data_testutil
from tests import serving_testutil
from tilt_tf import export_lib
from tilt_tf import train_lib


class TrainImagesTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters('vae', 'glf', 'glow', 'pixel_ebm')
  def test_dry_run(self, base):
    data_dir = self.create_tempdir().full_path
    image_data_testutil.fake_fashion(data_dir)
    os.environ['TILT_TF_CACHE'] = self.create_tempdir().full_path
    config = configs.get_config(base, 'fashion_mnist', 'test')
    config.data_dir = data_dir
    workdir = self.create_tempdir().full_path
    metrics = train_lib.run(config, workdir)
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
      self._check_export(workdir)

  def _check_export(self, workdir):
    """An image export answers through saved_model_cli: shapes, the same
    images for the same seed, and a refusal of an absurd num_samples."""
    path = export_lib.export_run(workdir, self.create_tempdir().full_path)
    model = tf.saved_model.load(path)
    fn = model.signatures['serving_default']
    args = dict(num_samples=tf.constant(3), seed=tf.constant([4, 5]))
    first, second = fn(**args), fn(**args)
    self.assertEqual(first['images'].shape, (3, 28, 28, 1))
    self.assertEqual(first['images'].dtype, tf.uint8)
    self.assertEqual(first['latents'].shape, (3, 64))
    self.assertAllEqual(first['images'], second['images'])
    result = serving_testutil.saved_model_cli_run(path,
                                                  'num_samples=3;seed=[4,5]')
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertIn('Result for output key images', result.stdout)
    self.assertIn('Result for output key latents', result.stdout)
    refused = serving_testutil.saved_model_cli_run(
        path, 'num_samples=1000000000;seed=[4,5]')
    self.assertNotEqual(refused.returncode, 0)
    self.assertIn('num_samples must be <= 1024', refused.stderr)


if __name__ == '__main__':
  tf.test.main()
