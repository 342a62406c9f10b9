"""`saved_model_cli run`, the TF1 loader path TF Serving uses, for tests."""

import os
import subprocess
import sys

import numpy as np


_MODULE = 'tensorflow.python.tools.saved_model_cli'


def saved_model_cli_run(path, input_exprs, signature='serving_default',
                        outdir=None, timeout=300, server=None):
  """Runs `saved_model_cli run` on an export; returns the CompletedProcess.

  Uses the saved_model_cli next to this python, else its module; with
  `server` (a forkrun_testutil.ForkServer), its module in a fork of that
  server. With `outdir`, the outputs are also saved there as <output
  key>.npy (read them with `saved_outputs`).
  """
  args = ['run', '--dir', path, '--tag_set', 'serve', '--signature_def',
          signature, '--input_exprs', input_exprs]
  if outdir is not None:
    args += ['--outdir', outdir, '--overwrite']
  if server is not None:
    return server.run(_MODULE, args, timeout=timeout)
  exe = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
  cmd = [exe] if os.path.exists(exe) else [sys.executable, '-m', _MODULE]
  return subprocess.run(cmd + args, capture_output=True, text=True,
                        timeout=timeout, check=False)


def saved_outputs(outdir):
  """{output key: array} of a `saved_model_cli_run(..., outdir=outdir)`."""
  return {name[:-len('.npy')]: np.load(os.path.join(outdir, name))
          for name in sorted(os.listdir(outdir)) if name.endswith('.npy')}
