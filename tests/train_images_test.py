"""Image pipeline dry runs (test preset) for VAE and GLF on tiny IDX files."""

import json
import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import configs
from tests import image_data_testutil
from tilt_tf import train_lib


class TrainImagesTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters('vae', 'glf')
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
    self.assertEqual(tilted['latents'].shape[0], 128)
    for key in ('base', 'tilted'):
      for field in ('fid', 'precision', 'recall', 'feature_extractor'):
        self.assertIn(field, metrics[key])
      self.assertTrue(np.isfinite(metrics[key]['fid']))
    with open(os.path.join(workdir, 'monitor.json')) as f:
      self.assertLen(json.load(f), 2)


if __name__ == '__main__':
  tf.test.main()
