"""The evaluate binary: scores npz files, the floor, one clear line on bad input."""

import gzip
import json
import os
import struct
import subprocess
import sys

import numpy as np
from sklearn.datasets import load_digits
import tensorflow as tf

from tilt_tf import evaluate
from tilt_tf.errors import UserError


def _write_idx(path, array):
  with gzip.open(path, 'wb') as f:
    f.write(struct.pack('>HBB', 0, 8, array.ndim))
    f.write(struct.pack('>' + 'I' * array.ndim, *array.shape))
    f.write(np.ascontiguousarray(array, np.uint8).tobytes())


def _digits_as_mnist(folder):
  """sklearn digits upsampled to 28x28, as MNIST IDX files (1400/397)."""
  x, y = load_digits(return_X_y=True)
  x = (x.reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
  x = np.pad(np.kron(x, np.ones((1, 3, 3), np.uint8)), ((0, 0), (2, 2), (2, 2)))
  for prefix, sl in (('train', slice(0, 1400)), ('t10k', slice(1400, None))):
    _write_idx(os.path.join(folder, f'{prefix}-images-idx3-ubyte.gz'), x[sl])
    _write_idx(os.path.join(folder, f'{prefix}-labels-idx1-ubyte.gz'), y[sl])
  return x[..., None]


def _run(args, cwd, env_extra=None):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
             TF_CPP_MIN_LOG_LEVEL='3')
  env.update(env_extra or {})
  return subprocess.run([sys.executable, '-m', 'tilt_tf.evaluate'] + args,
                        capture_output=True, text=True, cwd=cwd, env=env,
                        timeout=300, check=False)


class EvaluateTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.data_dir = self.create_tempdir().full_path
    self.images = _digits_as_mnist(self.data_dir)
    self.work = self.create_tempdir().full_path

  def _save(self, name, **arrays):
    path = os.path.join(self.work, name)
    np.savez(path, **arrays)
    return path

  def test_scores_files_and_floor(self):
    clean = self.images[1400:]  # The test split: FID ~ 0.
    rng = np.random.default_rng(0)
    noisy = np.clip(clean / 255.0 + 0.3 * rng.standard_normal(clean.shape),
                    0, 1).astype(np.float32)
    self._save('clean.npz', images=clean)
    self._save('noisy.npz', images=noisy)
    invoked_from = self.create_tempdir().full_path
    proc = _run(['--dataset=mnist', f'--data_dir={self.data_dir}',
                 f'--samples={self.work}/clean.npz', '--samples=noisy.npz',
                 '--output=out/scores.json', '--floor', '--num_samples=300',
                 '--classifier_epochs=2'],
                cwd=self.create_tempdir().full_path,
                env_extra={'BUILD_WORKING_DIRECTORY': self.work,
                           'TILT_TF_CACHE': invoked_from})
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    with open(os.path.join(self.work, 'out/scores.json')) as f:
      written = json.load(f)
    self.assertEqual(printed, written)
    clean_r, noisy_r, floor_r = written
    for r in written:
      self.assertEqual(r['feature_extractor'], 'classifier:mnist_v1')
      self.assertEqual(r['n'], 300)
      self.assertEqual(r['reference'], 'mnist:test')
      for key in ('fid', 'precision', 'recall', 'classifier_test_accuracy'):
        self.assertIsInstance(r[key], float)
    self.assertEqual(noisy_r['samples'], os.path.join(self.work, 'noisy.npz'))
    self.assertEqual(floor_r['samples'], 'floor:mnist:train[:300]')
    self.assertLess(clean_r['fid'], noisy_r['fid'] / 5)
    self.assertLess(floor_r['fid'], noisy_r['fid'])
    self.assertGreater(clean_r['precision'], noisy_r['precision'])
    self.assertTrue(os.path.isdir(
        os.path.join(invoked_from, 'classifiers', 'mnist_v1')))

  def test_bad_input_exits_with_one_line(self):
    path = self._save('wide.npz', images=np.zeros((5, 32, 32, 3), np.uint8))
    proc = _run(['--dataset=mnist', f'--samples={path}'], cwd=self.work)
    self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertRegex(proc.stderr.strip().splitlines()[-1],
                     r'^error: .*wide.npz have shape \[5, 32, 32, 3\], '
                     r'expected \[N, 28, 28, 1\]')

  def test_bad_inputs(self):
    ok = np.zeros((5, 28, 28, 1), np.uint8)
    not_npz = os.path.join(self.work, 'junk.npz')
    with open(not_npz, 'w') as f:
      f.write('hello')
    truncated = self._save('truncated.npz', images=ok)
    with open(truncated, 'rb') as f:
      raw = f.read()
    with open(truncated, 'wb') as f:
      f.write(raw[:len(raw) // 2])
    cases = [
        ([], {}, 'nothing to evaluate'),
        ([self._save('a.npz', images=ok)], {'dataset': 'imagenet'},
         "unknown dataset 'imagenet'"),
        ([self._save('b.npz', images=ok)], {'dataset': 'swissroll'},
         'toy set'),
        ([os.path.join(self.work, 'missing.npz')], {}, 'not found'),
        ([not_npz], {}, r'junk.npz is not a valid .npz file \(not a zip '
         r'archive\); save it with np.savez'),
        ([truncated], {}, 'cannot read .*truncated.npz as npz'),
        ([self.work], {}, 'is a folder, not an npz file'),
        ([self._save('c.npz', x=ok)], {}, r'has no `images` array \(it has x\)'),
        ([self._save('d.npz', images=ok.astype(np.int32))], {},
         'dtype int32'),
        ([self._save('e.npz', images=ok + 2.0)], {}, r'expected \[0, 1\]'),
        ([self._save('f.npz', images=ok[:0])], {}, 'empty'),
        ([self._save('g.npz', images=ok)], {'num_samples': 10},
         'holds only 5'),
        ([self._save('h.npz', images=ok)], {'num_samples': 0},
         '--num_samples=0 is out of range'),
    ]
    for paths, kwargs, pattern in cases:
      with self.subTest(pattern=pattern):
        kwargs = dict({'dataset': 'mnist', 'data_dir': self.data_dir},
                      **kwargs)
        with self.assertRaisesRegex(UserError, pattern):
          evaluate.evaluate_files(paths, **kwargs)


if __name__ == '__main__':
  tf.test.main()
