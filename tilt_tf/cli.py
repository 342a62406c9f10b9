"""What every binary shares: user paths under `bazel run`, one-line errors."""

import os
import sys

from absl import app

from tilt_tf.errors import UserError

__all__ = ['resolve_path', 'run_main', 'summary_table']


def resolve_path(path):
  """Resolves a user path against where the user ran `bazel run`."""
  path = os.path.expanduser(path)
  if os.path.isabs(path):
    return path
  base = os.environ.get('BUILD_WORKING_DIRECTORY') or os.getcwd()
  return os.path.normpath(os.path.join(base, path))


def run_main(main):
  """app.run(main), turning UserError into `error: ...` and exit code 2."""

  def wrapped(argv):
    try:
      return main(argv)
    except UserError as e:
      sys.stderr.write(f'error: {e}\n')
      sys.stderr.flush()
      os._exit(2)  # pylint: disable=protected-access

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
  return '\n'.join(lines)
