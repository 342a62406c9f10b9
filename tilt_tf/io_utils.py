"""Atomic file writes: write to a temp name in the same folder, then rename.

A run killed at any moment leaves either the old file or the new one, never a
half-written one.
"""

import io
import json
import os
import tempfile

import numpy as np

__all__ = ['atomic_write', 'write_json', 'read_json', 'savez']


def atomic_write(path, payload):
  """Writes bytes (or str) to `path` atomically."""
  if isinstance(payload, str):
    payload = payload.encode()
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-' + os.path.basename(path))
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json(path, obj):
  atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + '\n')


def read_json(path, default=None):
  if not os.path.exists(path):
    return default
  with open(path) as f:
    return json.load(f)


def savez(path, **arrays):
  """np.savez_compressed, atomically."""
  buf = io.BytesIO()
  np.savez_compressed(buf, **arrays)
  atomic_write(path, buf.getvalue())
