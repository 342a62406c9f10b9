"""Figures and atomic writes."""

import os

import numpy as np
import tensorflow as tf

from tilt_tf import figures
from tilt_tf import io_utils


class FiguresIOTest(tf.test.TestCase):

  def test_tile_layout(self):
    imgs = np.zeros((5, 4, 4, 1), np.float32)
    imgs[2] = 1.0
    m = figures.tile(imgs, cols=3, pad=1)
    self.assertEqual(m.shape, (2 * 5 + 1, 3 * 5 + 1, 1))
    self.assertEqual(m.dtype, np.uint8)
    self.assertTrue(np.all(m[1:5, 11:15] == 255))  # Image 2: row 0, col 2.
    self.assertTrue(np.all(m[1:5, 1:5] == 0))

  def test_pngs_decode(self):
    png = figures.grid_png([np.zeros((4, 8, 8, 1)), np.ones((4, 8, 8, 1))],
                           cols=2)
    self.assertEqual(tf.io.decode_png(png).shape[-1], 1)
    png = figures.toy_scatter_png([np.zeros((10, 2))] * 2, ['a', 'b'])
    self.assertEqual(tf.io.decode_png(png).shape[-1], 4)

  def test_curves_png(self):
    png = figures.curves_png({'VAE + EBM': ([20, 40, 60], [30.0, 25.0, 27.0]),
                              'GLF + EBM': ([], [])}, 'step', 'FID', 'title')
    image = tf.io.decode_png(png)
    self.assertEqual(image.shape[-1], 4)
    self.assertGreater(image.shape[0], 100)

  def test_atomic_write_leaves_old_file_on_failure(self):
    path = os.path.join(self.create_tempdir().full_path, 'm.json')
    io_utils.write_json(path, {'a': 1})
    with self.assertRaises(TypeError):
      io_utils.write_json(path, {'a': object()})
    self.assertEqual(io_utils.read_json(path), {'a': 1})
    self.assertEqual(os.listdir(os.path.dirname(path)), ['m.json'])

  def test_savez_roundtrip(self):
    path = os.path.join(self.create_tempdir().full_path, 's.npz')
    io_utils.savez(path, images=np.ones((2, 3), np.uint8))
    self.assertAllEqual(np.load(path)['images'], np.ones((2, 3)))


if __name__ == '__main__':
  tf.test.main()
