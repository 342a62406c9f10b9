"""Figures and atomic writes."""

import errno
import fcntl
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tilt_tf import figures
from tilt_tf import io_utils
from tilt_tf.errors import UserError


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

  def test_grid_titles_render_above(self):
    panels = [np.zeros((16, 8, 8, 1)), np.ones((16, 8, 8, 1))]
    plain = tf.io.decode_png(figures.grid_png(panels, cols=4))
    titled = tf.io.decode_png(figures.grid_png(panels, ['base', 'tilted'],
                                               cols=4))
    self.assertEqual(plain.shape, (37, 4 * 9 + 1 + 8 + 4 * 9 + 1, 1))
    self.assertEqual(titled.shape[-1], 4)
    # Scaled pixel for pixel, plus room for the titles above.
    self.assertGreater(titled.shape[0], plain.shape[0] * 2 + 20)
    self.assertGreater(titled.shape[1], plain.shape[1] * 2)
    # The title band above the mosaics holds dark text pixels; an untitled
    # figure drawn the same way has none there.
    band = titled.numpy()[:25, :, :3]
    self.assertLess(band.min(), 100)
    with self.assertRaisesRegex(UserError, '1 titles for 2 panels'):
      figures.grid_png(panels, ['base'])
    # titles=None or all empty: the old exact mosaic.
    self.assertAllEqual(tf.io.decode_png(figures.grid_png(panels, None, 4)),
                        plain)

  def test_chain_png(self):
    frames = np.linspace(0, 1, 5 * 3 * 8 * 8).reshape(5, 3, 8, 8, 1)
    png = figures.chain_png(frames, steps=[0, 10, 20, 30, 40],
                            title='GLF + EBM: Langevin chains')
    image = tf.io.decode_png(png).numpy()
    mosaic_h, mosaic_w = 3 * 9 + 1, 5 * 9 + 1
    self.assertGreater(image.shape[0], mosaic_h * 4 + 40)  # Title, labels.
    self.assertGreaterEqual(image.shape[1], mosaic_w * 4)
    self.assertLess(image[:20, :, :3].min(), 100)  # The title's text.
    # Default steps 0..T-1; bad shapes are one-line errors.
    tf.io.decode_png(figures.chain_png(frames))
    with self.assertRaisesRegex(UserError, r'\[T, n, H, W, C\]'):
      figures.chain_png(frames[0])
    with self.assertRaisesRegex(UserError, '2 steps for 5 frames'):
      figures.chain_png(frames, steps=[0, 1])

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

  def test_failed_write_names_the_file_and_leaves_no_temp(self):
    folder = self.create_tempdir().full_path
    path = os.path.join(folder, 'm.json')
    io_utils.write_json(path, {'a': 1})
    real_fsync = os.fsync

    def full_disk(fd):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    os.fsync = full_disk
    try:
      with self.assertRaises(OSError) as caught:
        io_utils.write_json(path, {'a': 2})
    finally:
      os.fsync = real_fsync
    self.assertEqual(caught.exception.errno, errno.ENOSPC)
    self.assertEqual(caught.exception.filename, path)
    self.assertEqual(io_utils.read_json(path), {'a': 1})
    self.assertEqual(os.listdir(folder), ['m.json'])

  def test_remove_temp_files(self):
    folder = self.create_tempdir().full_path
    ckpts = os.path.join(folder, 'checkpoints')
    # What kills leave: atomic_write's temporary, TensorFlow's checkpoint
    # state temporary and unmerged shard folder.
    leftovers = [os.path.join(folder, '.tmp-monitor.jsonab12cd34'),
                 os.path.join(ckpts, 'checkpoint.tmp' + 'f' * 32)]
    keep = [os.path.join(folder, 'monitor.json'),
            os.path.join(folder, 'notes.tmp'),
            os.path.join(ckpts, 'checkpoint'),
            os.path.join(ckpts, 'ckpt-20.index')]
    os.makedirs(os.path.join(ckpts, 'ckpt-40_temp'))
    for path in leftovers + keep:
      io_utils.atomic_write(path, 'x')
    removed = io_utils.remove_temp_files(folder, ckpts,
                                         os.path.join(folder, 'none'))
    self.assertCountEqual(
        removed, leftovers + [os.path.join(ckpts, 'ckpt-40_temp')])
    self.assertCountEqual(os.listdir(folder),
                          ['monitor.json', 'notes.tmp', 'checkpoints'])
    self.assertCountEqual(os.listdir(ckpts), ['checkpoint', 'ckpt-20.index'])

  def test_lock_refuses_another_holder_until_released(self):
    folder = os.path.join(self.create_tempdir().full_path, 'run')
    os.makedirs(folder)
    path = os.path.join(folder, '.lock')

    def other_process_can_lock():
      return subprocess.run(
          [sys.executable, '-c', 'import fcntl, sys; f = open(sys.argv[1], '
           '"a"); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)', path],
          check=False, capture_output=True).returncode == 0

    with open(path, 'a') as other:  # Another holder (its own open file).
      fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
      with self.assertRaisesRegex(
          UserError, f'{folder} is in use by another process .*; wait for '
          'it to finish'):
        io_utils.hold_lock(folder)
    io_utils.hold_lock(folder)  # Free once the other let go.
    io_utils.hold_lock(folder)  # Re-entrant in this process.
    self.assertFalse(other_process_can_lock())
    io_utils.release_lock(folder)
    self.assertTrue(other_process_can_lock())
    self.assertEqual(os.path.getsize(path), 0)  # Nothing written into it.

  def test_savez_roundtrip(self):
    path = os.path.join(self.create_tempdir().full_path, 's.npz')
    io_utils.savez(path, images=np.ones((2, 3), np.uint8))
    self.assertAllEqual(np.load(path)['images'], np.ones((2, 3)))


if __name__ == '__main__':
  tf.test.main()
