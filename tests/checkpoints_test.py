"""runtime.checkpoints: damaged checkpoints are moved aside, never fatal."""

import json
import os

from absl import logging
import tensorflow as tf

from tilt_tf import io_utils
from tilt_tf.errors import UserError
from tilt_tf.runtime import checkpoints


class _Tiny(tf.Module):

  def __init__(self):
    super().__init__()
    self.v = tf.Variable(tf.zeros([256]))
    self.step = tf.Variable(0, dtype=tf.int64)


def _save_three(directory):
  """Checkpoints ckpt-1..3 in `directory`; ckpt-N holds v = N."""
  model = _Tiny()
  ckpt = tf.train.Checkpoint(model=model)
  manager = tf.train.CheckpointManager(ckpt, directory, max_to_keep=5)
  for i in range(1, 4):
    model.v.assign(tf.fill([256], float(i)))
    model.step.assign(i)
    manager.save()
  return [os.path.join(directory, f'ckpt-{i}') for i in (1, 2, 3)]


def _fresh(directory):
  model = _Tiny()
  ckpt = tf.train.Checkpoint(model=model)
  return model, ckpt, tf.train.CheckpointManager(ckpt, directory,
                                                 max_to_keep=5)


def _data(path):
  return path + '.data-00000-of-00001'


def _truncate(path):
  with open(path, 'rb') as f:
    raw = f.read()
  with open(path, 'wb') as f:
    f.write(raw[:len(raw) // 2])


def _flip(path, at=200):
  with open(path, 'rb') as f:
    raw = bytearray(f.read())
  raw[at] ^= 0xFF
  with open(path, 'wb') as f:
    f.write(bytes(raw))


class RestoreReadableTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = os.path.join(self.create_tempdir().full_path, 'tilt')
    self.paths = _save_three(self.dir)

  def _restore(self):
    model, ckpt, manager = _fresh(self.dir)
    with self.assertLogs(level='WARNING') as logs:
      logging.warning('marker')  # assertLogs needs at least one record.
      path = checkpoints.restore_readable(ckpt, manager, 'tilt')
    warnings = [r.getMessage() for r in logs.records
                if r.getMessage() != 'marker']
    return model, manager, path, warnings

  def _assert_fell_back(self, damaged_files):
    model, manager, path, warnings = self._restore()
    self.assertEqual(path, self.paths[1])
    self.assertEqual(float(model.v[0]), 2.0)
    self.assertEqual(int(model.step), 2)
    self.assertLen(warnings, 1)
    self.assertIn(self.paths[2], warnings[0])
    self.assertNotIn('\n', warnings[0])
    # Moved aside, not deleted; the manager and its state file forget it.
    damaged = os.path.join(self.dir, 'damaged')
    self.assertCountEqual(os.listdir(damaged), damaged_files)
    self.assertFalse([n for n in os.listdir(self.dir)
                      if n.startswith('ckpt-3')])
    self.assertEqual(manager.latest_checkpoint, self.paths[1])
    self.assertNotIn(self.paths[2], manager.checkpoints)
    self.assertEqual(tf.train.latest_checkpoint(self.dir), self.paths[1])
    _, _, reread = _fresh(self.dir)
    self.assertEqual(reread.checkpoints, self.paths[:2])
    # The next save continues the numbering and keeps the older ones.
    saved = manager.save()
    self.assertEqual(tf.train.latest_checkpoint(self.dir), saved)
    _, _, reread = _fresh(self.dir)
    self.assertEqual(reread.checkpoints, self.paths[:2] + [saved])

  def test_newest_readable(self):
    model, _, path, warnings = self._restore()
    self.assertEqual(path, self.paths[2])
    self.assertEqual(float(model.v[0]), 3.0)
    self.assertEqual(warnings, [])
    self.assertFalse(os.path.exists(os.path.join(self.dir, 'damaged')))

  def test_truncated_data(self):
    _truncate(_data(self.paths[2]))
    with self.assertRaises(IndexError):  # What TF raises for it.
      checkpoints.verify_checkpoint(self.paths[2])
    self._assert_fell_back(['ckpt-3.index', 'ckpt-3.data-00000-of-00001'])

  def test_deleted_data(self):
    os.remove(_data(self.paths[2]))
    with self.assertRaises(tf.errors.OpError):
      checkpoints.verify_checkpoint(self.paths[2])
    self._assert_fell_back(['ckpt-3.index'])

  def test_flipped_bytes_in_data(self):
    _flip(_data(self.paths[2]))
    with self.assertRaisesRegex(tf.errors.OpError, 'Checksum does not match'):
      checkpoints.verify_checkpoint(self.paths[2])
    self._assert_fell_back(['ckpt-3.index', 'ckpt-3.data-00000-of-00001'])

  def test_damaged_index(self):
    _truncate(self.paths[2] + '.index')
    with self.assertRaises(tf.errors.OpError):
      checkpoints.verify_checkpoint(self.paths[2])
    self._assert_fell_back(['ckpt-3.index', 'ckpt-3.data-00000-of-00001'])

  def test_lazy_variables_are_verified_too(self):
    # Nothing built yet: restore() alone defers reading and would not notice.
    _flip(_data(self.paths[2]))
    ckpt = tf.train.Checkpoint(model=tf.Module())
    manager = tf.train.CheckpointManager(ckpt, self.dir, max_to_keep=5)
    self.assertEqual(checkpoints.restore_readable(ckpt, manager, 'tilt'),
                     self.paths[1])

  def test_lost_state_file(self):
    # The files still count: found by name, newest first.
    os.remove(os.path.join(self.dir, 'checkpoint'))
    _flip(_data(self.paths[2]))
    model, _, path, warnings = self._restore()
    self.assertEqual(path, self.paths[1])
    self.assertEqual(float(model.v[0]), 2.0)
    self.assertLen(warnings, 1)
    self.assertEqual(tf.train.latest_checkpoint(self.dir), self.paths[1])

  def test_lost_state_file_nothing_damaged(self):
    os.remove(os.path.join(self.dir, 'checkpoint'))
    model, manager, path, warnings = self._restore()
    self.assertEqual(path, self.paths[2])
    self.assertEqual(float(model.v[0]), 3.0)
    self.assertEqual(warnings, [])
    self.assertEqual(manager.latest_checkpoint, self.paths[2])
    self.assertEqual(tf.train.latest_checkpoint(self.dir), self.paths[2])

  def test_all_damaged(self):
    for path in self.paths:
      _flip(_data(path))
    model, ckpt, manager = _fresh(self.dir)
    with self.assertLogs(level='WARNING') as logs:
      with self.assertRaises(UserError) as caught:
        checkpoints.restore_readable(ckpt, manager, 'tilt')
    message = str(caught.exception)
    self.assertNotIn('\n', message)
    self.assertIn('rerun with --stage=tilt', message)
    self.assertIn(self.dir, message)
    self.assertLen(logs.records, 3)
    self.assertEqual(float(model.v[0]), 0.0)
    self.assertLen(os.listdir(os.path.join(self.dir, 'damaged')), 6)
    # A rerun of the stage starts over.
    self.assertIsNone(tf.train.latest_checkpoint(self.dir))
    self.assertIsNone(manager.latest_checkpoint)
    _, ckpt, manager = _fresh(self.dir)
    self.assertIsNone(checkpoints.restore_readable(ckpt, manager, 'tilt'))

  def test_damaged_twice_keeps_both_copies(self):
    _flip(_data(self.paths[2]))
    _, manager, _, _ = self._restore()  # Falls back to ckpt-2 ...
    again = manager.save()  # ... so the next save is a new ckpt-3.
    self.assertEqual(again, self.paths[2])
    _flip(_data(again))
    _, _, path, warnings = self._restore()
    self.assertEqual(path, self.paths[1])
    self.assertLen(warnings, 1)
    self.assertCountEqual(
        os.listdir(os.path.join(self.dir, 'damaged')),
        ['ckpt-3.index', 'ckpt-3.data-00000-of-00001', 'ckpt-3.index.1',
         'ckpt-3.data-00000-of-00001.1'])


class NoCheckpointTest(tf.test.TestCase):

  def test_none_present(self):
    for directory in (self.create_tempdir().full_path,
                      os.path.join(self.get_temp_dir(), 'never_made')):
      _, ckpt, manager = _fresh(directory)
      self.assertIsNone(checkpoints.restore_readable(ckpt, manager, 'base'))


class ReadRunJsonTest(tf.test.TestCase):

  def test_absent_valid_and_damaged(self):
    folder = self.create_tempdir().full_path
    path = os.path.join(folder, 'run.json')
    self.assertIsNone(io_utils.read_run_json(path))
    io_utils.write_json(path, {'a': 1})
    self.assertEqual(io_utils.read_run_json(path), {'a': 1})
    for raw in (b'{"a": ', b'[1, 2]', b'\xff\xfe', b'', b'null'):
      with open(path, 'wb') as f:
        f.write(raw)
      with self.assertRaisesRegex(
          UserError, '^' + path + r' is damaged \(not a JSON object\); move '
          'it away and rerun to rebuild it from the checkpoints, or pass '
          'another --workdir$'):
        io_utils.read_run_json(path)
    with open(path, 'wb') as f:
      f.write(b'{"a": ')
    with self.assertRaisesRegex(UserError, f'^{path} is damaged \\(not valid '
                                'JSON\\); move it away and rerun'):
      io_utils.read_json(path, {})
    with open(path, 'w') as f:
      json.dump({'ok': True}, f)
    self.assertEqual(io_utils.read_run_json(path), {'ok': True})


if __name__ == '__main__':
  tf.test.main()
