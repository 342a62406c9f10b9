"""The run's compute precision (tilt_tf/precision.py): bf16 energy and
decoders with float32 variables, outputs and Langevin chains."""

import os
import re
from unittest import mock

import numpy as np
import tensorflow as tf

import configs
import tilt_tf
from tilt_tf import precision
from tilt_tf.errors import UserError
from tilt_tf.runtime import build

_SHAPE = (8, 8, 1)


def _supported(ok):
  return mock.patch.object(precision, 'bf16_support',
                           return_value=(ok, 'a test machine'))


def _built(base, prec):
  config = configs.get_config(base, 'fashion_mnist', 'test',
                              overrides=[f'precision={prec}'])
  generator = build.make_generator(config, _SHAPE)
  return generator, build.make_method(config, generator, _SHAPE)


def _cpuinfo_bf16_flags():
  """The bf16 flags /proc/cpuinfo lists for every processor (read here
  independently of tilt_tf.precision); empty where there is no such file."""
  if not os.path.exists('/proc/cpuinfo'):
    return set()
  with open('/proc/cpuinfo') as f:
    per_cpu = [set(m.group(1).split()) for m in
               re.finditer(r'^flags\s*:(.*)$', f.read(), re.MULTILINE)]
  if not per_cpu:
    return set()
  return set.intersection(*per_cpu) & {'avx512_bf16', 'amx_bf16'}


class PrecisionTest(tf.test.TestCase):

  def test_real_hardware_check_agrees_with_cpuinfo(self):
    # The one test that runs the real check (the others mock it).
    precision.bf16_support.cache_clear()
    ok, what = precision.bf16_support()
    if tf.config.list_physical_devices('GPU'):
      self.assertIn('GPUs of compute capability', what)
      return
    flags = _cpuinfo_bf16_flags()
    self.assertEqual(ok, bool(flags), what)
    if flags:
      self.assertEqual(what, 'CPU with ' + ', '.join(sorted(flags)))
      self.assertEqual(precision.policy('bf16').compute_dtype, 'bfloat16')
    else:
      self.assertEqual(what, 'a CPU without avx512_bf16 or amx_bf16')
      with self.assertRaisesRegex(UserError, 'bfloat16 hardware'):
        precision.policy('bf16')

  def test_unknown_precision_is_refused_in_one_line(self):
    with self.assertRaisesRegex(UserError, "'fp8' is not one of float32, bf16"):
      configs.get_config('glf', 'fashion_mnist', 'test',
                         overrides=['precision=fp8'])

  def test_bf16_without_hardware_is_refused(self):
    with _supported(False), self.assertRaisesRegex(
        UserError, 'bfloat16 hardware.*--set=precision=float32'):
      precision.policy('bf16')
    self.assertEqual(precision.policy('float32').compute_dtype, 'float32')

  def test_bf16_computes_in_bf16_and_returns_float32(self):
    for base in ('vae', 'glf'):
      with self.subTest(base=base), _supported(True):
        ref_gen, ref_method = _built(base, 'float32')
        gen, method = _built(base, 'bf16')
        # The same float32 variables: a float32 checkpoint restores exactly.
        path = tf.train.Checkpoint(g=ref_gen, e=ref_method.energy).write(
            self.create_tempdir().full_path + '/ckpt')
        tf.train.Checkpoint(g=gen, e=method.energy).read(
            path).assert_consumed()
        for v in list(gen.trainable_variables) + method.energy.trainable_variables:
          self.assertEqual(v.dtype, tf.float32, v.name)
        self.assertEqual(gen.decoder.layers[0].compute_dtype, 'bfloat16')
        self.assertEqual(method.energy.stem.compute_dtype, 'bfloat16')
        if base == 'glf':  # The flow stays float32.
          self.assertEqual(gen.coupling_nets[0].layers[0].compute_dtype,
                           'float32')
        z = ref_gen.prior_sample(16, tf.constant([0, 1]))
        x_ref, x = ref_gen.decode(z), gen.decode(z)
        self.assertEqual(x.dtype, tf.float32)
        self.assertAllClose(x_ref, x, atol=0.03)
        self.assertNotAllEqual(x_ref, x)  # It did compute in bfloat16.
        e_ref, e = ref_method.energy(x_ref), method.energy(x_ref)
        self.assertEqual(e.dtype, tf.float32)
        self.assertAllClose(e_ref, e, atol=0.05 * float(
            tf.reduce_max(tf.abs(e_ref))) + 1e-3)
        out = method.sample(16, tf.constant([3, 4]), 5)
        self.assertEqual(out['z_tilted'].dtype, tf.float32)
        self.assertAllEqual(tf.math.is_finite(out['z_tilted']),
                            tf.ones_like(out['z_tilted'], tf.bool))

  def test_bf16_training_step_updates_float32_variables(self):
    with _supported(True):
      gen, method = _built('glf', 'bf16')
    opt = method.make_optimizer()
    before = [v.numpy() for v in method.energy.trainable_variables]
    x = tf.random.stateless_uniform((4,) + _SHAPE, seed=[1, 2])
    out = method.train_step(x, tf.constant([5, 6]), opt, 4)
    self.assertTrue(bool(tf.math.is_finite(out['loss'])))
    after = method.energy.trainable_variables
    self.assertTrue(any((b != a.numpy()).any() for b, a in zip(before, after)))
    del gen

  def test_a_bf16_run_restores_in_float32_without_the_hardware(self):
    w = tf.random.stateless_normal([4, 64], seed=[1, 1])
    gen = tilt_tf.generator_from_function(
        lambda z: tf.sigmoid(tf.reshape(z @ w, [-1, 8, 8, 1])), 4)
    data = np.random.default_rng(0).uniform(size=(200, 8, 8, 1))
    workdir = self.create_tempdir().full_path
    with _supported(True):
      tilted = tilt_tf.tilt(gen, data.astype(np.float32), workdir, steps=2,
                            preset='test', precision='bf16')
    self.assertEqual(tilted.energy.stem.compute_dtype, 'bfloat16')
    with _supported(False):
      with self.assertRaisesRegex(UserError, 'bfloat16 hardware'):
        tilt_tf.tilt(gen, data, workdir, steps=2, preset='test',
                     precision='bf16')
      loaded = tilt_tf.load(workdir, generator=gen)
    self.assertEqual(loaded.energy.stem.compute_dtype, 'float32')
    self.assertEqual(loaded.energy_checkpoint, tilted.energy_checkpoint)
    x = tf.constant(data[:8], tf.float32)
    self.assertAllClose(loaded.energy(x), tilted.energy(x), atol=0.05)


if __name__ == '__main__':
  tf.test.main()
