"""Atomic file writes: write to a temp name in the same folder, then rename.

A run killed at any moment leaves either the old file or the new one, never a
half-written one (and a temporary name, which `remove_temp_files` clears).
"""

import fcntl
import io
import json
import os
import re
import shutil
import tempfile

import numpy as np

from tilt_tf.errors import UserError

__all__ = ['atomic_write', 'write_json', 'read_json', 'read_run_json',
           'jsonable', 'savez',
           'remove_temp_files', 'hold_lock', 'release_lock']

# Temporary names: atomic_write's, and TensorFlow's checkpoint state file and
# checkpoint shard folder (renamed or merged away when a save completes).
_TEMP_NAME = re.compile(r'\.tmp-.+|checkpoint\.tmp[0-9a-f]{32}|ckpt-\d+_temp')


def atomic_write(path, payload):
  """Writes bytes (or str) to `path` atomically."""
  if isinstance(payload, str):
    payload = payload.encode()
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  tmp = None
  try:
    fd, tmp = tempfile.mkstemp(dir=folder,
                               prefix='.tmp-' + os.path.basename(path))
    with os.fdopen(fd, 'wb') as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException as e:
    if tmp is not None and os.path.exists(tmp):
      os.remove(tmp)
    if isinstance(e, OSError):  # Name the file written, not the temporary.
      e.filename, e.filename2 = path, None
    raise


def write_json(path, obj):
  atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + '\n')


def read_json(path, default=None):
  """The JSON value in `path`, `default` if absent.

  Raises:
    UserError: the file is not valid JSON (a run folder's files are
      written atomically, so only damage or a foreign file does that).
  """
  if not os.path.exists(path):
    return default
  with open(path, 'rb') as f:
    raw = f.read()
  try:
    return json.loads(raw.decode('utf-8'))
  except (UnicodeDecodeError, ValueError):
    raise UserError(f'{path} is damaged (not valid JSON); move it away and '
                    'rerun (it is rebuilt), or pass another --workdir') from None


def read_run_json(path):
  """A run's JSON object file (run.json, ...): None if absent.

  Raises:
    UserError: the file is not valid JSON (e.g. cut short) or not an object;
      one line naming it and the way out.
  """
  try:
    with open(path, 'rb') as f:
      raw = f.read()
  except FileNotFoundError:
    return None
  except IsADirectoryError:
    raise UserError(f'{path} is a folder, not a JSON file; move it away and '
                    'rerun, or pass another --workdir') from None
  try:
    obj = json.loads(raw.decode('utf-8'))
  except (UnicodeDecodeError, ValueError):
    obj = None
  if not isinstance(obj, dict):
    raise UserError(f'{path} is damaged (not a JSON object); move it away and '
                    'rerun to rebuild it from the checkpoints, or pass '
                    'another --workdir')
  return obj


def jsonable(obj):
  """`obj` as `read_json` returns it after `write_json` (tuples become
  lists), so a value compares equal to its stored form."""
  if isinstance(obj, dict):
    return {k: jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [jsonable(v) for v in obj]
  return obj


def savez(path, **arrays):
  """np.savez_compressed, atomically."""
  buf = io.BytesIO()
  np.savez_compressed(buf, **arrays)
  atomic_write(path, buf.getvalue())


def remove_temp_files(*folders):
  """Deletes the temporary names a writer killed mid-write left in `folders`
  (not below them); nothing reads them. Returns the paths removed.

  Only for folders no other process is writing to.
  """
  removed = []
  for folder in folders:
    if not os.path.isdir(folder):
      continue
    for name in os.listdir(folder):
      if not _TEMP_NAME.fullmatch(name):
        continue
      path = os.path.join(folder, name)
      if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
      else:
        try:
          os.remove(path)
        except FileNotFoundError:
          continue
      removed.append(path)
  return removed


# Folder (real path) -> the open .lock file this process holds.
_HELD = {}


def hold_lock(folder):
  """Holds `<folder>/.lock` until `release_lock` (or this process ends), or
  raises UserError: two processes in one workdir would interleave their
  checkpoints. Re-entrant within a process; the kernel drops the lock when
  its process dies, so a killed run leaves nothing to clean up. The file
  stays empty (a rerun changes nothing in the workdir by taking it)."""
  key = os.path.realpath(folder)
  if key in _HELD:
    return
  os.makedirs(folder, exist_ok=True)
  f = open(os.path.join(folder, '.lock'), 'a')  # pylint: disable=consider-using-with
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    f.close()
    raise UserError(f'{folder} is in use by another process (a train or '
                    'table1 run); wait for it to finish (or stop it), or '
                    'pass another --workdir') from None
  _HELD[key] = f


def release_lock(folder):
  f = _HELD.pop(os.path.realpath(folder), None)
  if f is not None:
    f.close()
