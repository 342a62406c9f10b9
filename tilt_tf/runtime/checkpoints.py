"""Restores the newest readable checkpoint; damaged ones are moved aside.

A checkpoint cut short (disk full, a killed copy), with a file deleted or
with flipped bytes must not end a run in a traceback, nor be deleted: it is
moved into `<checkpoint dir>/damaged/` with one warning line, the manager
forgets it (its `checkpoint` state file is rewritten) and the next older one
is tried.

  path = checkpoints.restore_readable(ckpt, manager, what='tilt')
  if path is None:
    ...  # No checkpoint yet: start from scratch.
"""

import os
import re
import time

from absl import logging
import tensorflow as tf
from tensorflow.python.util import deprecation  # pylint: disable=g-direct-tensorflow-import

from tilt_tf.errors import UserError

__all__ = ['DAMAGED_DIR', 'verify_checkpoint', 'find_checkpoints',
           'move_aside', 'restore_readable']

DAMAGED_DIR = 'damaged'

# What reading a damaged checkpoint raises (see tests/checkpoints_test.py):
# a .data file cut short -> IndexError; deleted -> NotFoundError / OpError;
# flipped bytes -> DataLossError (checksum); a damaged .index -> OpError.
_DAMAGE = (tf.errors.OpError, IndexError, ValueError)

_STATE_FILE = 'checkpoint'


def verify_checkpoint(path):
  """Reads every tensor of checkpoint `path` (checksums included).

  `Checkpoint.restore` is lazy for variables not built yet, so a damaged
  file can pass it silently; this reads everything now.

  Raises:
    tf.errors.OpError, IndexError or ValueError: the checkpoint is damaged.
  """
  reader = tf.train.load_checkpoint(path)
  for name in reader.get_variable_to_dtype_map():
    reader.get_tensor(name)


def _number(path):
  match = re.search(r'-(\d+)$', path)
  return int(match.group(1)) if match else -1


def find_checkpoints(manager):
  """The manager's checkpoint prefixes, newest first: those its state file
  lists, plus `<prefix>-N.index` files in its directory (a lost or damaged
  state file does not hide them)."""
  found = set(manager.checkpoints)
  if manager.latest_checkpoint:
    found.add(manager.latest_checkpoint)
  # pylint: disable-next=protected-access
  prefix = getattr(manager, '_checkpoint_prefix',
                   os.path.join(manager.directory, 'ckpt'))
  pattern = re.compile(re.escape(os.path.basename(prefix)) + r'-\d+\.index')
  if os.path.isdir(manager.directory):
    for name in os.listdir(manager.directory):
      if pattern.fullmatch(name):
        found.add(os.path.join(manager.directory, name[:-len('.index')]))
  return sorted(found, key=lambda p: (_number(p), p), reverse=True)


def _one_line(e):
  text = re.sub(r'\{\{[^}]*\}\}\s*', '', str(getattr(e, 'message', e)))
  text = ' '.join(text.split())
  return f'{type(e).__name__}: {text[:160]}'


def move_aside(path):
  """Moves checkpoint `path`'s files (`<path>.index`, `<path>.data-*`) into
  `<dir>/damaged/` (a name taken there gets a `.N` suffix). Returns the
  paths they were moved to (empty if none existed)."""
  folder, base = os.path.split(path)
  target_dir = os.path.join(folder, DAMAGED_DIR)
  moved = []
  for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
    if not name.startswith(base + '.'):
      continue
    os.makedirs(target_dir, exist_ok=True)
    target, n = os.path.join(target_dir, name), 1
    while os.path.exists(target):
      target, n = os.path.join(target_dir, f'{name}.{n}'), n + 1
    os.replace(os.path.join(folder, name), target)
    moved.append(target)
  return moved


def _forget(manager, gone, latest):
  """Rewrites the manager's state file (and its in-memory state) without
  the checkpoints in `gone`; `latest` becomes its latest (None: the state
  file is removed, as if no checkpoint had been written)."""
  directory = manager.directory
  state = tf.train.get_checkpoint_state(directory)
  stamps = {}
  last_preserved = None
  if state is not None:
    stamps = dict(zip(state.all_model_checkpoint_paths,
                      state.all_model_checkpoint_timestamps))
    last_preserved = state.last_preserved_timestamp
  keep = [p for p in manager.checkpoints if p not in gone]
  if latest is not None and latest not in keep:
    keep.append(latest)
  keep.sort(key=_number)
  state_path = os.path.join(directory, _STATE_FILE)
  # The manager's own bookkeeping (TF 2.x CheckpointManager), so that its
  # `latest_checkpoint` / `checkpoints` / next save agree with the file.
  # pylint: disable=protected-access
  maybe_delete = getattr(manager, '_maybe_delete', None)
  if hasattr(manager, '_latest_checkpoint'):
    manager._latest_checkpoint = latest
  if maybe_delete is not None:
    for p in gone:
      maybe_delete.pop(p, None)
    if latest is not None:
      # Found on disk but not in the state file: kept like a new save.
      maybe_delete.setdefault(latest, stamps.get(latest, time.time()))
      maybe_delete.move_to_end(latest)
  if latest is None:
    if maybe_delete is not None:
      maybe_delete.clear()
    if os.path.exists(state_path):
      os.remove(state_path)
    return
  if maybe_delete is not None and hasattr(manager, '_record_state'):
    manager._record_state()  # Relative paths, timestamps kept.
    return
  # pylint: enable=protected-access
  if keep and keep[-1] != latest:  # TF requires latest == the last listed.
    keep.remove(latest)
    keep.append(latest)
  with deprecation.silence():
    tf.compat.v1.train.update_checkpoint_state(
        directory, os.path.relpath(latest, directory),
        all_model_checkpoint_paths=[os.path.relpath(p, directory)
                                    for p in keep],
        all_model_checkpoint_timestamps=(
            [stamps[p] for p in keep] if all(p in stamps for p in keep)
            else None),
        last_preserved_timestamp=last_preserved)


def restore_readable(checkpoint, manager, what, partial=True):
  """Restores `checkpoint` from the newest readable checkpoint of `manager`.

  Each checkpoint, newest first, is verified (every tensor read) and then
  restored; a damaged one is moved into `<manager.directory>/damaged/` with
  one warning line, the manager forgets it and the next older one is tried.

  Args:
    checkpoint: the tf.train.Checkpoint to restore into.
    manager: the tf.train.CheckpointManager of its directory.
    what: the stage that writes these checkpoints (e.g. 'base', 'tilt'),
      named in the error if none is readable.
    partial: call `expect_partial()` on the restore (no warnings about
      values of the checkpoint this object does not use).
  Returns:
    The path restored, or None if the directory holds no checkpoint.
  Raises:
    UserError: checkpoints existed but every one was damaged (they are all
      in `damaged/` then, and the state file is gone, so rerunning the stage
      starts it over).
  """
  candidates = find_checkpoints(manager)
  if not candidates:
    return None
  gone = []
  for path in candidates:
    try:
      verify_checkpoint(path)
      error = None
    except _DAMAGE as e:
      error = e
    if error is None:
      # Verified: only a read error now is damage (a ValueError here is a
      # checkpoint of another model, not ours to move).
      try:
        status = checkpoint.restore(path)
        if partial:
          status.expect_partial()
      except tf.errors.OpError as e:
        error = e
    if error is not None:
      moved = move_aside(path)
      where = (os.path.join(manager.directory, DAMAGED_DIR) if moved
               else 'nowhere (its files are gone)')
      logging.warning('%s checkpoint %s is damaged (%s); moved it to %s, '
                      'trying the previous one', what, path, _one_line(error),
                      where)
      gone.append(path)
      continue
    if gone or manager.latest_checkpoint != path:  # E.g. a lost state file.
      _forget(manager, gone, path)
    return path
  _forget(manager, gone, None)
  raise UserError(
      f'every {what} checkpoint in {manager.directory} is damaged (moved to '
      f'{os.path.join(manager.directory, DAMAGED_DIR)}); the {what} stage '
      f'must be redone: rerun with --stage={what}')
