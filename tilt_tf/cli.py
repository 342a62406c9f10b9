"""What every binary shares: user paths under `bazel run`, one-line errors.

Every binary's main runs inside `run_main`, its one error boundary: a
UserError, an OSError or a TensorFlow OpError ends the process with one line
`error: ...` on stderr and exit code 2. `--traceback` (or the environment
variable TILT_TF_TRACEBACK=1) shows the full traceback instead.
"""

import errno
import os
import re
import sys
import tempfile
import traceback

from absl import app
from absl import flags

from tilt_tf import quiet
from tilt_tf.errors import UserError

__all__ = ['resolve_path', 'check_output_dir', 'check_output_file',
           'check_input_dir', 'run_main', 'summary_table']

flags.DEFINE_bool('traceback', False, 'On an error, show the full Python '
                  'traceback instead of the one-line `error: ...` (also: '
                  'environment variable TILT_TF_TRACEBACK=1).')

# The run folder the binary works in, once checked: named in the advice for
# a damaged file.
_CONTEXT = {}


def resolve_path(path):
  """Resolves a user path against where the user ran `bazel run`."""
  path = os.path.expanduser(path)
  if os.path.isabs(path):
    return path
  base = os.environ.get('BUILD_WORKING_DIRECTORY') or os.getcwd()
  return os.path.normpath(os.path.join(base, path))


def _unreachable(path, flag):
  """UserError for a `path` below a folder this user may not enter."""
  blocker = os.path.dirname(path)
  while blocker != os.path.dirname(blocker):
    try:
      os.stat(blocker)
      break
    except OSError:
      blocker = os.path.dirname(blocker)
  return UserError(f'{flag} {path} cannot be reached: {blocker} is not '
                   f'accessible (Permission denied); choose another {flag}')


def _nearest_existing(path, flag):
  """The longest prefix of `path` that exists, or None."""
  probe = path
  while True:
    try:
      os.stat(probe)
      return probe
    except FileNotFoundError:
      pass
    except NotADirectoryError:
      pass  # A parent is a file: keep going up to find it.
    except PermissionError:
      raise _unreachable(probe, flag) from None
    parent = os.path.dirname(probe)
    if parent == probe:
      return None
    probe = parent


def _probe_writable(folder, path, flag):
  """Creates and removes an empty temporary folder in `folder`."""
  try:
    os.rmdir(tempfile.mkdtemp(prefix='.tmp-probe-', dir=folder))
  except OSError as e:
    reason = e.strerror or os.strerror(e.errno)
    if e.errno in (errno.EACCES, errno.EPERM):
      fix = 'make it writable or choose another ' + flag
    elif e.errno == errno.EROFS:
      fix = f'choose a path on a writable disk for {flag}'
    elif e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
      fix = f'free some space or choose another {flag}'
    else:
      fix = f'folders cannot be made there; choose another {flag}'
    where = path if folder == path else f'{path}: {folder}'
    raise UserError(f'{flag} {where} is not writable ({reason}); '
                    f'{fix}') from None


def check_output_dir(path, flag):
  """Refuses, before any work, a folder the binary could not write to.

  `path` (absolute, see resolve_path) may not exist yet: then its nearest
  existing parent must be a writable folder. Nothing is left behind (the
  check creates and removes an empty temporary folder). A `--workdir` is
  remembered for the error boundary's advice.

  Raises:
    UserError: one line naming `flag`: `path` is a file, lies under a file,
      cannot be reached, or is not writable (read-only disk, permissions,
      /proc ...).
  """
  existing = _nearest_existing(path, flag)
  if existing is None:
    raise UserError(f'{flag} {path}: no part of that path exists; choose '
                    'another path')
  if not os.path.isdir(existing):
    if existing == path:
      raise UserError(f'{flag} {path} is a file, not a folder; choose another '
                      f'{flag} (or move the file away)')
    raise UserError(f'{flag} {path}: {existing} is a file, not a folder; '
                    f'choose another {flag}')
  _probe_writable(existing, path, flag)
  if flag == '--workdir':
    _CONTEXT['workdir'] = path
  return path


def check_output_file(path, flag):
  """check_output_dir for a file to write (e.g. --output=scores.json): its
  folder must be writable and `path` must not be a folder. Returns `path`.

  Raises:
    UserError: one line naming `flag` and `path`.
  """
  if os.path.isdir(path):
    raise UserError(f'{flag} {path} is a folder; give a file name')
  try:
    existing = _nearest_existing(os.path.dirname(path), flag)
  except UserError:
    raise _unreachable(path, flag) from None
  if existing is None:
    raise UserError(f'{flag} {path}: no part of that path exists; choose '
                    'another path')
  if not os.path.isdir(existing):
    raise UserError(f'{flag} {path}: {existing} is a file, not a folder; '
                    f'choose another {flag}')
  _probe_writable(existing, path, flag)
  return path


def check_input_dir(path, flag, what='an existing folder'):
  """Refuses, before any work, an input folder that is missing, a file or
  not readable. Returns `path`. `what`: the folder expected, for the
  message ('give <what>').

  Raises:
    UserError: one line naming `flag`.
  """
  try:
    os.stat(path)
  except FileNotFoundError:
    raise UserError(f'{flag} {path} does not exist; give {what}') from None
  except NotADirectoryError:
    raise UserError(f'{flag} {path} does not exist (a part of that path is a '
                    f'file); give {what}') from None
  except PermissionError:
    raise _unreachable(path, flag) from None
  if not os.path.isdir(path):
    raise UserError(f'{flag} {path} is a file, not a folder; give {what}')
  if not os.access(path, os.R_OK | os.X_OK):
    raise UserError(f'{flag} {path} is not readable (Permission denied); '
                    f'make it readable or choose another {flag}')
  if flag == '--workdir':
    _CONTEXT['workdir'] = path
  return path


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
  if not _is_op_error(e):
    return None
  text = _op_message(e)
  for marker, advice in _FS_ERRORS.values():
    for line in text.splitlines():
      if marker.lower() in line.lower():
        # TensorFlow's multi-line messages (e.g. the summary writer's on a
        # full disk) name the file and the cause on one of their lines.
        return f'{line.strip().rstrip(".")}; {advice}'
  return None


def _is_op_error(e):
  return (type(e).__module__.startswith('tensorflow') and
          hasattr(e, 'message') and hasattr(e, 'error_code'))


def _op_message(e):
  """An OpError's text without the function and op name decorations."""
  text = re.sub(r'\{\{[^}]*\}\}\s*', '', str(e.message))
  text = re.sub(r'\s*\[Op:[^\]]*\]', '', text)
  return '\n'.join(l.strip() for l in text.splitlines() if l.strip())


_DATA_LOSS = 15  # tf.errors.DATA_LOSS, without importing TensorFlow here.

_PATH = re.compile(r'(/[^\s;:,()\'"]+)')


def _unexpected_io_error(e):
  """One line for any other OSError / OpError: `<what> (<file>)` and what to
  do for the known causes."""
  workdir = _CONTEXT.get('workdir')
  if isinstance(e, OSError):
    what = e.strerror or str(e) or type(e).__name__
    paths = [os.fsdecode(p) for p in (e.filename, e.filename2)
             if p is not None]
    line = f'{what} ({", ".join(paths)})' if paths else what
    if e.errno == errno.EIO:
      line += '; the disk reported an I/O error: check it, then rerun'
    return line + '; rerun with --traceback for details'
  lines = _op_message(e).splitlines() or [type(e).__name__]
  what = lines[0]
  if len(what) > 600:  # Paths under Bazel's sandbox alone take 200.
    what = what[:600] + '...'
  match = _PATH.search(_op_message(e))
  where = f' ({match.group(1)})' if match and match.group(1) not in what else ''
  line = f'{type(e).__name__}: {what}{where}'
  if getattr(e, 'error_code', None) == _DATA_LOSS or (
      'checksum' in what.lower() or 'corrupt' in what.lower()):
    folder = workdir or (os.path.dirname(match.group(1)) if match else
                         'the run folder')
    line += (f'; a file in {folder} is damaged (an interrupted copy or a '
             'disk error): move it away (e.g. into a damaged/ folder next '
             'to it) and rerun; a run resumes from its previous checkpoint')
  else:
    line += '; rerun with --traceback for details'
  return line


def _want_traceback():
  if os.environ.get('TILT_TF_TRACEBACK', '') not in ('', '0'):
    return True
  try:
    return bool(flags.FLAGS.traceback)
  except flags.Error:  # Flags not parsed (an error while parsing them).
    return '--traceback' in sys.argv


def run_main(main):
  """app.run(main) inside the binary's error boundary.

  A UserError, a file system error the user can fix (disk full, no
  permission, read-only), and any other OSError or TensorFlow OpError (e.g.
  a damaged file: DataLossError) become one line `error: ...` on stderr and
  exit code 2, without a traceback (unless --traceback or
  TILT_TF_TRACEBACK=1). Other exceptions (bugs) keep their traceback.
  """

  def wrapped(argv):
    try:
      return main(argv)
    except Exception as e:  # pylint: disable=broad-except
      if isinstance(e, UserError):
        message = str(e)
      elif isinstance(e, OSError) or _is_op_error(e):
        message = _file_system_error(e) or _unexpected_io_error(e)
      else:
        raise
      if _want_traceback():
        traceback.print_exc()
      message = ' '.join(message.split())  # One line, whatever it held.
      sys.stderr.write(f'error: {message}\n')
      sys.stderr.flush()
      sys.stdout.flush()
      os._exit(2)  # pylint: disable=protected-access

  quiet.release()  # TF's start-up lines, held since the imports (quiet.py).
  app.run(wrapped)


def summary_table(metrics):
  """A small text table of base vs tilted quality figures."""
  keys = [k for k, v in metrics.get('base', {}).items()
          if isinstance(v, (int, float))]
  cols = [c for c in ('data', 'base', 'tilted', 'distilled') if c in metrics]
  lines = ['metric'.ljust(26) + ''.join(c.rjust(14) for c in cols)]
  for k in keys:
    row = k.ljust(26)
    for c in cols:
      v = metrics[c].get(k)
      row += (f'{v:14.4f}' if isinstance(v, float) else f'{v!s:>14}')
    lines.append(row)
  for k, v in metrics.get('base_model', {}).items():  # e.g. GLOW's bits/dim.
    lines.append(f'base model {k}'.ljust(26) + f'{v:14.4f}')
  from tilt_tf.runtime import energy_scale  # pylint: disable=g-import-not-at-top
  tilt = metrics.get('tilt', {})
  best = tilt.get('monitor_best') or energy_scale.best_check(
      tilt.get('monitor'))
  if best:
    scale = (f', energy scale {best["energy_scale"]:g}'
             if 'energy_scale' in best else '')
    lines.append(f'monitor, held-out data: base {best["base_score"]:.4g} -> '
                 f'tilted {best["score"]:.4g} (kept step {best["step"]}'
                 f'{scale}; lower is better)')
  return '\n'.join(lines)
