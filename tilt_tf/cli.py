"""What every binary shares: user paths under `bazel run`, one-line errors."""

import errno
import os
import re
import sys

from absl import app

from tilt_tf import quiet
from tilt_tf.errors import UserError

__all__ = ['resolve_path', 'run_main', 'summary_table']


def resolve_path(path):
  """Resolves a user path against where the user ran `bazel run`."""
  path = os.path.expanduser(path)
  if os.path.isabs(path):
    return path
  base = os.environ.get('BUILD_WORKING_DIRECTORY') or os.getcwd()
  return os.path.normpath(os.path.join(base, path))


# errno -> (TensorFlow's wording of it, what to do).
_FS_ERRORS = {
    errno.ENOSPC: ('No space left on device',
                   'free some space (or write elsewhere, e.g. another '
                   '--workdir) and rerun the same command; a run resumes '
                   'from its last checkpoint'),
    errno.EDQUOT: ('Disk quota exceeded',
                   'free some space (or write elsewhere, e.g. another '
                   '--workdir) and rerun the same command; a run resumes '
                   'from its last checkpoint'),
    errno.EACCES: ('Permission denied',
                   'make it writable or choose another path (e.g. --workdir)'),
    errno.EPERM: ('Operation not permitted',
                  'make it writable or choose another path (e.g. --workdir)'),
    errno.EROFS: ('Read-only file system',
                  'choose a path on a writable disk (e.g. --workdir)'),
    errno.ENOTDIR: ('not a directory',
                    'a part of that path is a file, not a folder; choose '
                    'another path (e.g. --workdir)'),
}


def _file_system_error(e):
  """One line for a file system error the user can fix, else None.

  Handles OSError (Python writes) and TensorFlow's errors for the same
  conditions (checkpoints, summaries), which name the path in the message.
  """
  if isinstance(e, OSError):
    if e.errno not in _FS_ERRORS:
      return None
    what = e.strerror or os.strerror(e.errno)
    paths = [os.fsdecode(p) for p in (e.filename, e.filename2)
             if p is not None]
    where = f'{", ".join(paths)}: ' if paths else ''
    return f'{where}{what}; {_FS_ERRORS[e.errno][1]}'
  # tf.errors.OpError, without importing TensorFlow here.
  if not type(e).__module__.startswith('tensorflow') or not hasattr(
      e, 'message'):
    return None
  text = re.sub(r'\{\{[^}]*\}\}\s*|\s*\[Op:.*$', '', str(e.message),
                flags=re.S).strip()
  for marker, advice in _FS_ERRORS.values():
    if marker.lower() in text.lower() and '\n' not in text:
      return f'{text}; {advice}'
  return None


def run_main(main):
  """app.run(main), turning UserError (and file system errors the user can
  fix: disk full, no permission, read-only) into one line `error: ...` on
  stderr and exit code 2, without a traceback."""

  def wrapped(argv):
    try:
      return main(argv)
    except Exception as e:  # pylint: disable=broad-except
      message = str(e) if isinstance(e, UserError) else _file_system_error(e)
      if message is None:
        raise
      sys.stderr.write(f'error: {message}\n')
      sys.stderr.flush()
      os._exit(2)  # pylint: disable=protected-access

  quiet.release()  # TF's start-up lines, held since the imports (quiet.py).
  app.run(wrapped)


def summary_table(metrics):
  """A small text table of base vs tilted quality figures."""
  keys = [k for k, v in metrics.get('base', {}).items()
          if isinstance(v, (int, float))]
  cols = [c for c in ('data', 'base', 'tilted') if c in metrics]
  lines = ['metric'.ljust(26) + ''.join(c.rjust(14) for c in cols)]
  for k in keys:
    row = k.ljust(26)
    for c in cols:
      v = metrics[c].get(k)
      row += (f'{v:14.4f}' if isinstance(v, float) else f'{v!s:>14}')
    lines.append(row)
  for k, v in metrics.get('base_model', {}).items():  # e.g. GLOW's bits/dim.
    lines.append(f'base model {k}'.ljust(26) + f'{v:14.4f}')
  return '\n'.join(lines)
