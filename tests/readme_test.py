"""README.md's Python API snippet runs as written, on a tiny decoder and
data set made here (sizes shrunk: the `test` preset and 32 samples)."""

import os
import re

import keras
import numpy as np
import tensorflow as tf

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the test shrinks so the snippet runs in seconds.
_SHRINK = {"preset='small'": "preset='test'", '10_000': '32'}


def readme_snippet():
  """The first ```python block under the README's '## Python API'."""
  with open(os.path.join(_ROOT, 'README.md')) as f:
    text = f.read()
  section = text.split('\n## Python API', 1)[1]
  return re.search(r'```python\n(.*?)```', section, re.S).group(1)


class ReadmeTest(tf.test.TestCase):

  def test_python_api_snippet(self):
    code = readme_snippet()
    for old, new in _SHRINK.items():
      self.assertIn(old, code)
      code = code.replace(old, new)
    os.chdir(self.create_tempdir().full_path)
    keras.utils.set_random_seed(0)
    keras.Sequential([
        keras.Input((64,)), keras.layers.Dense(8 * 8, activation='sigmoid'),
        keras.layers.Reshape((8, 8, 1))]).save('decoder.keras')
    images = np.random.default_rng(0).integers(0, 256, (200, 8, 8, 1),
                                               dtype=np.uint8)
    np.savez('images.npz', images=images)
    scope = {}
    exec(compile(code, 'README.md', 'exec'), scope)  # pylint: disable=exec-used
    self.assertEqual(scope['out']['samples'].shape, (32, 8, 8, 1))
    self.assertEqual(scope['out']['latents'].shape, (32, 64))
    self.assertTrue(os.path.exists('models/mine/1/saved_model.pb'))
    self.assertTrue(os.path.exists('runs/mine/checkpoints/tilt_best'))


if __name__ == '__main__':
  tf.test.main()
