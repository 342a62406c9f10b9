"""The sample stage (tilt_tf/stages/sample.py) and the one batched sampler
(tilt_tf/stages/batches.py) on a one-variable method: the rows and seeds of
the loops it replaced, a half-drawn set resumed to the same samples."""

import math
import os
from unittest import mock

import ml_collections
import numpy as np
import tensorflow as tf

from tests import fake_method_testutil as fakes
from tilt_tf import io_utils
from tilt_tf.runtime import run_dir as run_dir_lib
from tilt_tf.stages import batches
from tilt_tf.stages import sample as sample_lib

KEYS = ('z_base', 'x_base', 'z_tilted', 'x_tilted')


def old_loop(draw, n, batch_size, seed):
  """The loop `Tilted._sample_batches`, `draw_samples` and `draw_distilled`
  each ran before stages/batches.py (their common part)."""
  parts = []
  for i in range(int(math.ceil(n / batch_size))):
    m = min(batch_size, n - i * batch_size)
    out = draw(tf.constant(m), tf.constant([seed, 1000 + i]))
    parts.append({k: out[k].numpy() for k in KEYS})
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class DrawBatchesTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    method = fakes.OneVariableMethod(w=0.5)
    sampler = tf.function(method.sample, reduce_retracing=True)
    self.draw = lambda m, s: sampler(m, s, tf.constant(3))

  def test_same_rows_as_the_old_loops(self):
    for n, bs in ((7, 3), (6, 3), (2, 5)):
      with self.subTest(n=n, batch_size=bs):
        new = batches.draw_batches(self.draw, n, bs, seed=5, keys=KEYS)
        old = old_loop(self.draw, n, bs, 5)
        self.assertEqual(sorted(new.arrays), sorted(old))
        for k in old:
          np.testing.assert_array_equal(new.arrays[k], old[k])
    # Batch i from [seed, 1000 + i]: the last batch's first row.
    self.assertAllEqual(new.arrays['x_base'][:2],
                        tf.random.stateless_normal([2, 2], [5, 1000]))

  def test_progress_every_batch_or_every_few_seconds(self):
    shown = []
    batches.draw_batches(self.draw, 7, 3, 0, keys=KEYS, log=shown.append)
    self.assertEqual([(p.batch, p.batches, p.done, p.n) for p in shown],
                     [(1, 3, 3, 7), (2, 3, 6, 7), (3, 3, 7, 7)])
    self.assertEqual(shown[-1].eta, 0.0)
    self.assertGreater(shown[0].rate, 0)
    shown = []
    batches.draw_batches(self.draw, 7, 3, 0, keys=KEYS, log=shown.append,
                         log_seconds=60)
    self.assertEqual([p.batch for p in shown], [3])  # The last only.

  def test_kept_parts_are_loaded_not_drawn(self):
    parts_dir = self.create_tempdir().full_path
    first = batches.draw_batches(self.draw, 7, 3, 0, keys=KEYS,
                                 parts_dir=parts_dir)
    self.assertLen(os.listdir(parts_dir), 3)
    fail = mock.Mock(side_effect=AssertionError('drew a kept batch'))
    again = batches.draw_batches(fail, 7, 3, 0, keys=KEYS,
                                 parts_dir=parts_dir)
    for k in KEYS:
      np.testing.assert_array_equal(again.arrays[k], first.arrays[k])
    self.assertEqual(again.drawn_seconds, 0.0)
    self.assertAlmostEqual(again.seconds, first.seconds)


class SampleStageTest(tf.test.TestCase):

  def cfg(self):
    return ml_collections.ConfigDict(dict(num=7, batch_size=3, grid=4,
                                          chain_every=1))

  def draw(self, workdir):
    with run_dir_lib.RunDir(workdir, {}) as run:
      sample_lib.draw_samples(run, fakes.OneVariableMethod(w=0.5), self.cfg(),
                              num_steps=3, step_size=0.1, seed=2,
                              energy_checkpoint='ckpt-10')

  def load(self, workdir):
    out = {}
    for name in ('base', 'tilted'):
      with np.load(os.path.join(workdir, f'samples_{name}.npz')) as f:
        out.update({f'{name}_{k}': f[k] for k in f.files})
    return out

  def test_half_drawn_set_resumes_to_the_same_samples(self):
    straight = self.create_tempdir().full_path
    self.draw(straight)
    workdir = self.create_tempdir().full_path
    real_savez = io_utils.savez

    def killed_at_the_second_part(path, **arrays):
      if path.endswith('part-00001.npz'):
        raise KeyboardInterrupt('killed')
      real_savez(path, **arrays)

    with mock.patch.object(io_utils, 'savez', killed_at_the_second_part):
      with self.assertRaises(KeyboardInterrupt):
        self.draw(workdir)
    self.assertEqual(sorted(os.listdir(os.path.join(workdir, 'sample_parts'))),
                     ['part-00000.npz', 'plan.json'])
    with self.assertLogs('absl', level='INFO') as logs:
      self.draw(workdir)
    drawn = [l for l in logs.output if 'sample: batch' in l]
    self.assertEqual([l.split('sample: ')[1][:10] for l in drawn],
                     ['batch 2/3 ', 'batch 3/3 '])
    want, got = self.load(straight), self.load(workdir)
    self.assertEqual(sorted(got), ['base_latents', 'base_samples',
                                   'tilted_latents', 'tilted_samples'])
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])
    self.assertFalse(os.path.exists(os.path.join(workdir, 'sample_parts')))
    self.assertEqual(io_utils.read_json(os.path.join(workdir, 'samples.json'))
                     ['energy_checkpoint'], 'ckpt-10')

  def test_finished_stage_is_reused(self):
    workdir = self.create_tempdir().full_path
    self.draw(workdir)
    with self.assertLogs('absl', level='INFO') as logs:
      self.draw(workdir)
    self.assertIn('sample: reusing the 7 + 7 samples', '\n'.join(logs.output))


if __name__ == '__main__':
  tf.test.main()
