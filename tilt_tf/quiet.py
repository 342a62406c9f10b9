"""Hides TensorFlow's C++ start-up lines in the binaries (train, evaluate, ...).

Importing TensorFlow 2.21 prints, before its logging is initialised (so
TF_CPP_MIN_LOG_LEVEL alone does not hide them):

  WARNING: All log messages before absl::InitializeLog() is called are ...
  I0000 ... port.cc:153] oneDNN custom operations are on. ...
  I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine ...
  I0000 ... cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...

A binary imports this module first: when the program's main module is one of
tilt_tf's binaries (`python -m tilt_tf.train`, `bazel run //tilt_tf:train`) or
a console script calls `start()`, it sets TF_CPP_MIN_LOG_LEVEL=2 (unless the
user set it) and holds stderr (file descriptor 2) in a temporary file while the
modules import; `release()` (cli.run_main calls it before parsing flags, and at
exit at the latest) writes everything back except C++ log lines below that
level. To see them: `--verbosity=1` (absl's flag, also `-v 1`) or
TF_CPP_MIN_LOG_LEVEL=0.
"""

import atexit
import os
import re
import sys
import tempfile

__all__ = ['start', 'release', 'keep_line', 'level_for']

ENV = 'TF_CPP_MIN_LOG_LEVEL'
DEFAULT_LEVEL = '2'  # Hide C++ INFO and WARNING lines; errors stay.

# C++ glog/absl format: I0000 00:00:1796284684.242211    6173 port.cc:153] ...
# (absl's Python logging has the same header with a .py file: kept).
_LOG_LINE = re.compile(r'^([IWEF])\d{4} [\d:.]+ +\d+ [^ \]]+\.(?:cc|cpp|h):\d+\] ')
_SEVERITY = {'I': 0, 'W': 1, 'E': 2, 'F': 3}
_PREAMBLE = 'WARNING: All log messages before absl::InitializeLog() is called'
_CONTINUATION = 'To enable the following instructions:'

_held = None  # (saved fd 2, temp file, level) while stderr is held.


def _verbosity(argv):
  """absl's --verbosity / -v value in argv (0 if absent or unparsable)."""
  value = None
  for i, arg in enumerate(argv):
    for name in ('--verbosity', '-v'):
      if arg == name and i + 1 < len(argv):
        value = argv[i + 1]
      elif arg.startswith(name + '='):
        value = arg.split('=', 1)[1]
  try:
    return int(value) if value is not None else 0
  except ValueError:
    return 0


def level_for(argv, environ):
  """The C++ log level to run with: the user's TF_CPP_MIN_LOG_LEVEL, 0 with
  --verbosity >= 1, else DEFAULT_LEVEL."""
  if environ.get(ENV, '').strip():
    return environ[ENV].strip()
  if _verbosity(argv) >= 1:
    return '0'
  return DEFAULT_LEVEL


def keep_line(line, level, previous_dropped=False):
  """Whether a held stderr line is shown at C++ log `level`."""
  try:
    level = int(level)
  except ValueError:
    level = int(DEFAULT_LEVEL)
  if level <= 0:
    return True
  if line.startswith(_PREAMBLE):
    return False
  if previous_dropped and line.startswith(_CONTINUATION):
    return False
  match = _LOG_LINE.match(line)
  return not match or _SEVERITY[match.group(1)] >= level


def start(argv=None):
  """Sets TF_CPP_MIN_LOG_LEVEL and holds stderr until release()."""
  global _held
  if _held is not None:
    return
  argv = sys.argv if argv is None else argv
  level = level_for(argv, os.environ)
  os.environ.setdefault(ENV, level)
  if level == '0':
    return
  try:
    sys.stderr.flush()
    saved = os.dup(2)
    held = tempfile.TemporaryFile()
    os.dup2(held.fileno(), 2)
  except (OSError, ValueError, AttributeError):
    return  # No usable stderr: nothing to hide.
  _held = (saved, held, level)
  atexit.register(release)


def release():
  """Restores stderr and writes back the held lines worth showing."""
  global _held
  if _held is None:
    return
  saved, held, level = _held
  _held = None
  try:
    sys.stderr.flush()
  except (OSError, ValueError):
    pass
  os.dup2(saved, 2)
  os.close(saved)
  held.seek(0)
  text = held.read().decode('utf-8', 'replace')
  held.close()
  out, dropped = [], False
  for line in text.splitlines(keepends=True):
    keep = keep_line(line, level, dropped)
    dropped = not keep
    if keep:
      out.append(line)
  if out:
    os.write(2, ''.join(out).encode('utf-8', 'replace'))


def _main_is_a_binary():
  """True when the program's main module is a module of this package."""
  main = sys.modules.get('__main__')
  path = getattr(main, '__file__', None)
  if not path:
    return False
  here = os.path.dirname(os.path.realpath(__file__))
  return (os.path.dirname(os.path.realpath(path)) == here or
          os.path.dirname(os.path.abspath(path)) ==
          os.path.dirname(os.path.abspath(__file__)))


if _main_is_a_binary():
  start()
