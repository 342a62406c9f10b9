"""The pipeline under MirroredStrategy on 2 logical CPU devices."""

import os

import numpy as np
import tensorflow as tf

import configs
from tilt_tf import train_lib


class DistributeTest(tf.test.TestCase):

  def test_two_replicas_train_tilt_and_sample(self):
    strategy = train_lib.make_strategy(num_cpu_devices=2)
    self.assertEqual(strategy.num_replicas_in_sync, 2)
    config = configs.get_config('mlp_vae', '25gaussians', 'test')
    workdir = self.create_tempdir().full_path
    metrics = train_lib.run(config, workdir, strategy=strategy)
    self.assertTrue(np.isfinite(metrics['tilted']['energy_distance']))
    samples = np.load(os.path.join(workdir, 'samples_tilted.npz'))['samples']
    self.assertEqual(samples.shape, (500, 2))
    self.assertTrue(np.all(np.isfinite(samples)))


if __name__ == '__main__':
  tf.test.main()
