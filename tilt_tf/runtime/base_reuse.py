"""`--base_from=OTHER_WORKDIR`: a trained base reused by another run.

    base_reuse.copy_base(other_workdir, workdir, identity, steps)

Before the base stage, copies the other run's finished `checkpoints/base`
into this run's workdir (a copy, never a move or a link: the other run stays
as it was), so the base stage finds it done and the tilt starts at once.

The rule: the two runs' identities (runtime/build.py `identity`) must agree
on base_name, dataset, n_train and `base` (the base's settings but its
steps), and the other run's base must have reached this run's
`base.steps`. The seed may differ: the base keeps the weights the other
run's seed gave it, and this run's seed drives the tilt, sampling and
evaluation (a sweep over energy seeds on one base is legitimate). Any other
case is refused in one line before anything is written. A workdir that
already has a base checkpoint is left as it is (one log line), so rerunning
the same command resumes.

The copy goes to a temporary folder in `<workdir>/checkpoints/`, renamed to
`base` when complete, under the workdir's lock.
"""

import os
import re
import shutil
import tempfile

from absl import logging
import tensorflow as tf

from tilt_tf import io_utils
from tilt_tf.errors import UserError
from tilt_tf.runtime import checkpoints
from tilt_tf.runtime import run_dir as run_dir_lib

__all__ = ['copy_base', 'BASE_FIELDS']

# Identity fields that say what a base checkpoint is (the seed is not one).
BASE_FIELDS = ('base_name', 'dataset', 'n_train', 'base')

_CKPT_INDEX = re.compile(r'ckpt-\d+\.index')
# What a CheckpointManager folder holds (its temporary names excluded).
_CKPT_FILE = re.compile(r'checkpoint|ckpt-\d+\.(index|data-\d+-of-\d+)')
_STEP_KEY = 'step/.ATTRIBUTES/VARIABLE_VALUE'  # TrainingStage's `step`.


def _has_checkpoint(folder):
  return os.path.isdir(folder) and any(
      _CKPT_INDEX.fullmatch(n) for n in os.listdir(folder))


def _differences(theirs, ours):
  """['base.hidden (128 there, 64 here)', ...] for the BASE_FIELDS."""
  out = []
  for key in BASE_FIELDS:
    a, b = theirs.get(key), ours.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      out += [f'{key}.{k} ({a.get(k)!r} there, {b.get(k)!r} here)'
              for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    elif a != b:
      out.append(f'{key} ({a!r} there, {b!r} here)')
  return out


def _source_identity(source):
  """The identity in `source`/run.json, or one UserError line."""
  hint = 'pass the workdir of a run whose base stage finished'
  run = run_dir_lib.read_run(source, '--base_from', missing=hint,
                             no_run=hint)
  ident = run.get('identity') if isinstance(run, dict) else None
  if not isinstance(ident, dict):
    raise UserError(f'{source}/run.json has no identity; it was not written '
                    'by this version of tilt_tf')
  return ident


def _finished_checkpoint(source, steps):
  """The newest checkpoint of `source`'s base, checked readable and at
  least `steps` steps in, or one UserError line."""
  folder = os.path.join(source, 'checkpoints', 'base')
  latest = tf.train.latest_checkpoint(folder)
  if latest is None:
    raise UserError(f'--base_from {source} has no base checkpoint; run its '
                    'base stage first (--stage=base in that workdir)')
  try:
    checkpoints.verify_checkpoint(latest)
    step = int(tf.train.load_checkpoint(latest).get_tensor(_STEP_KEY))
  except (tf.errors.OpError, IndexError, ValueError) as e:
    raise UserError(f'--base_from {source}: its base checkpoint {latest} is '
                    f'unreadable ({type(e).__name__}); rerun its base stage '
                    'there') from None
  if step < steps:
    raise UserError(
        f'--base_from {source}: its base stopped at step {step} of this '
        f'run\'s {steps}; finish it there (--stage=base) or pass '
        f'--base_steps={step}')
  return latest, step


def check_source(source, identity, steps):
  """Refuses (one line) a `source` run whose base is not this run's
  (see the module docstring); returns (its checkpoint, step, seed)."""
  theirs = _source_identity(source)
  diff = _differences(theirs, identity)
  if diff:
    raise UserError(
        f'--base_from {source} holds a base of other settings: '
        f'{"; ".join(diff)}; pass the same base settings, or another '
        '--base_from')
  latest, step = _finished_checkpoint(source, steps)
  return latest, step, theirs.get('seed')


def _copy_files(source_dir, workdir):
  """Copies the files of `source_dir` (not its damaged/ folder) into
  `<workdir>/checkpoints/base`, through a temporary folder renamed at the
  end. Call with the workdir's lock held."""
  ckpts = os.path.join(workdir, 'checkpoints')
  target = os.path.join(ckpts, 'base')
  os.makedirs(ckpts, exist_ok=True)
  io_utils.remove_temp_files(ckpts)  # A killed copy's leftovers.
  if os.path.isdir(target) and not os.listdir(target):
    os.rmdir(target)  # Left empty by an earlier invocation.
  elif os.path.exists(target):
    raise UserError(f'{target} holds no checkpoint but is not empty; move it '
                    'away, then rerun with --base_from')
  tmp = tempfile.mkdtemp(prefix='.tmp-base-', dir=ckpts)
  try:
    for name in sorted(os.listdir(source_dir)):
      path = os.path.join(source_dir, name)
      if os.path.isfile(path) and _CKPT_FILE.fullmatch(name):
        shutil.copy2(path, os.path.join(tmp, name))
    os.rename(tmp, target)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def copy_base(source, workdir, identity, steps):
  """Copies `source`'s finished base into `workdir` (module docstring).

  Args:
    source: the other run's workdir (absolute).
    workdir: this run's workdir (absolute; created if needed).
    identity: this run's identity (build.identity).
    steps: this run's base.steps.

  Returns:
    True if it copied, False if `workdir` already had a base checkpoint.

  Raises:
    UserError: one line, with nothing written: see the module docstring.
  """
  target = os.path.join(workdir, 'checkpoints', 'base')
  if _has_checkpoint(target):
    logging.info('--base_from: %s already holds a base checkpoint; keeping '
                 'it (nothing copied)', target)
    return False
  if os.path.realpath(source) == os.path.realpath(workdir):
    raise UserError(f'--base_from {source} is this --workdir; pass the '
                    'workdir of another run')
  run_dir_lib.RunDir(workdir, identity).check()  # Another run: refused.
  latest, step, seed = check_source(source, identity, steps)
  io_utils.hold_lock(workdir)
  try:
    if _has_checkpoint(target):  # Another process got there first.
      return False
    _copy_files(os.path.dirname(latest), workdir)
  finally:
    io_utils.release_lock(workdir)
  logging.info('--base_from: copied the base of %s (step %d, seed %s) into '
               '%s', source, step, seed, target)
  return True
