"""`saved_model_cli run`, the TF1 loader path TF Serving uses, for tests."""

import os
import subprocess
import sys


def saved_model_cli_run(path, input_exprs, signature='serving_default'):
  """Runs `saved_model_cli run` on an export; returns the CompletedProcess.

  Uses the saved_model_cli next to this python, else its module.
  """
  exe = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
  cmd = ([exe] if os.path.exists(exe) else
         [sys.executable, '-m', 'tensorflow.python.tools.saved_model_cli'])
  return subprocess.run(
      cmd + ['run', '--dir', path, '--tag_set', 'serve', '--signature_def',
             signature, '--input_exprs', input_exprs],
      capture_output=True, text=True, timeout=300, check=False)
