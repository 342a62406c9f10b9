"""What a folder holds, to check that a refused or repeated command wrote
nothing (or that a copy is exact)."""

import hashlib
import os

__all__ = ['snapshot']


def snapshot(folder):
  """{relative path: sha256 of the bytes} of every file under `folder`
  ({} if it does not exist)."""
  out = {}
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, folder)] = hashlib.sha256(
            f.read()).hexdigest()
  return out
