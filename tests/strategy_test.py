"""runtime.strategy's GPU check: one warning line when a machine has an NVIDIA
driver but TensorFlow sees no GPU (driver and device list mocked)."""

import os
import stat
from unittest import mock

import tensorflow as tf

from tilt_tf.runtime import strategy as strategy_lib

_GPU = tf.config.PhysicalDevice('/physical_device:GPU:0', 'GPU')


class GpuWarningTest(tf.test.TestCase):

  def _warning(self, driver=True, gpus=(), cuda_build=True, missing=(),
               visible=None):
    env = {} if visible is None else {'CUDA_VISIBLE_DEVICES': visible}
    with mock.patch.object(strategy_lib, 'nvidia_driver',
                           return_value=driver), \
        mock.patch.object(tf.config, 'list_physical_devices',
                          return_value=list(gpus)), \
        mock.patch.object(tf.test, 'is_built_with_cuda',
                          return_value=cuda_build), \
        mock.patch.object(strategy_lib, '_missing_cuda_packages',
                          return_value=list(missing)), \
        mock.patch.dict(os.environ, env):
      if visible is None:
        os.environ.pop('CUDA_VISIBLE_DEVICES', None)
      return strategy_lib.gpu_warning()

  def test_silent_without_driver_or_with_a_gpu(self):
    self.assertIsNone(self._warning(driver=False))
    self.assertIsNone(self._warning(gpus=[_GPU]))

  def test_silent_when_the_user_hides_the_gpus(self):
    for visible in ('', '-1'):
      self.assertIsNone(self._warning(visible=visible), visible)

  def test_missing_cuda_libraries_name_the_install(self):
    line = self._warning(missing=['nvidia-cudnn-cu12', 'nvidia-nccl-cu12'])
    self.assertIn('NVIDIA driver found but TensorFlow sees no GPU', line)
    self.assertIn('nvidia-cudnn-cu12 and 1 more', line)
    self.assertIn(f"pip install 'tensorflow[and-cuda]=={tf.__version__}'",
                  line)
    self.assertIn('tilt_tf[gpu]', line)
    self.assertNotIn('\n', line)

  def test_cpu_only_build_and_unknown_cause(self):
    line = self._warning(cuda_build=False)
    self.assertIn('no CUDA support', line)
    self.assertIn('tensorflow[and-cuda]', line)
    line = self._warning()
    self.assertIn('could not load CUDA', line)
    self.assertIn('TF_CPP_MIN_LOG_LEVEL=0', line)
    self.assertNotIn('\n', line)

  def test_missing_cuda_packages_reads_tensorflow_metadata(self):
    requires = ['numpy>=1.26.0',
                'nvidia-cublas-cu12<13.0,>=12.5.3.2; extra == "and-cuda"',
                'absl-py; extra == "and-cuda"']
    with mock.patch.object(strategy_lib.metadata, 'requires',
                           return_value=requires):
      self.assertEqual(strategy_lib._missing_cuda_packages(),
                       ['nvidia-cublas-cu12'])  # absl-py is installed.

  def test_nvidia_driver(self):
    tmp = self.create_tempdir().full_path
    empty = os.path.join(tmp, 'empty')
    os.mkdir(empty)
    with mock.patch.dict(os.environ, {'PATH': empty}):
      self.assertFalse(strategy_lib.nvidia_driver(os.path.join(tmp, 'no')))
      self.assertTrue(strategy_lib.nvidia_driver(tmp))  # The /proc folder.
    smi = os.path.join(tmp, 'nvidia-smi')
    with open(smi, 'w') as f:
      f.write('#!/bin/sh\n')
    os.chmod(smi, os.stat(smi).st_mode | stat.S_IXUSR)
    with mock.patch.dict(os.environ, {'PATH': tmp}):
      self.assertTrue(strategy_lib.nvidia_driver(os.path.join(tmp, 'no')))


if __name__ == '__main__':
  tf.test.main()
