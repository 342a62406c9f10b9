"""A run folder as a context manager: identity, run.json, lock, TensorBoard.

    with RunDir(workdir, identity, config_dict) as run:
      run.path('checkpoints', 'tilt')   # paths inside the run
      run.writer                        # its TensorBoard writer (lazy)
      run.record_time('tilt', 12.3, steps=200)

On entry it refuses a folder whose run.json names another identity (another
base, data set, seed or architecture: its checkpoints would not load), takes
`<workdir>/.lock` (a second process in the same folder is refused in one
line), writes run.json when this invocation's settings changed, and clears
temporary files a killed writer left. On exit the writer is closed and the
lock released, whatever happened inside.
"""

import os
from typing import Optional

import tensorflow as tf

from tilt_tf import io_utils
from tilt_tf.errors import UserError

__all__ = ['RunDir', 'CHECKPOINT_DIRS']

# Every checkpoint folder a run may hold (one layout for every run).
CHECKPOINT_DIRS = ('base', 'tilt', 'tilt_best')


def describe(identity):
  """'base=glf dataset=fashion_mnist' (what is known of a run's identity)."""
  keys = ('base_name', 'generator', 'dataset')
  return ' '.join(f'{k.replace("_name", "")}={identity[k]}' for k in keys
                  if identity.get(k))


def read_run(workdir, flag, *, missing, no_run):
  """The run.json of the run in `workdir` (a flag's value), or one
  UserError line: '<flag> <workdir> does not exist; <missing>' or
  '... holds no run (no run.json); <no_run>'."""
  if not os.path.isdir(workdir):
    raise UserError(f'{flag} {workdir} does not exist; {missing}')
  run = io_utils.read_run_json(os.path.join(workdir, 'run.json'))
  if run is None:
    raise UserError(f'{flag} {workdir} holds no run (no run.json); {no_run}')
  return run


def check_generator(workdir, theirs, ours, hint):
  """Refuses a generator whose fingerprint (tilt_tf/generators/adapters.py)
  differs from the one the run in `workdir` tilted; None on either side
  (a built-in base, an older run) passes."""
  if theirs and ours and theirs != ours:
    raise UserError(
        f'workdir {workdir} holds a tilt of another generator (fingerprint '
        f'{theirs}; this one is {ours}: other weights or another model); '
        f'{hint}')


class RunDir:
  """One run's folder; see the module docstring."""

  def __init__(self, workdir: str, identity: dict,
               config: Optional[dict] = None, *, preset: Optional[str] = None,
               extra: Optional[dict] = None):
    """Args:
      workdir: the folder (created on entry).
      identity: JSON-able dict; a folder holding another identity is refused.
      config: JSON-able dict of this invocation's settings (run.json).
      preset: the preset's name, recorded in run.json.
      extra: more JSON-able fields for run.json (e.g. the monitor's data).
    """
    self.workdir = workdir
    self.identity = io_utils.jsonable(identity)
    self.record = {'identity': self.identity, 'preset': preset,
                   'config': io_utils.jsonable(config or {})}
    self.record.update(io_utils.jsonable(extra or {}))
    self._writer = None
    self.timings = {}

  def path(self, *parts):
    return os.path.join(self.workdir, *parts)

  def check(self):
    """Refuses a folder that holds another run; returns its run.json."""
    theirs = io_utils.read_json(self.path('run.json'))  # Cut short: one line.
    if theirs is not None and not isinstance(theirs, dict):
      theirs = io_utils.read_run_json(self.path('run.json'))  # Its line.
    if theirs is not None and theirs.get('identity') != self.identity:
      other = theirs.get('identity', {})
      if not isinstance(other, dict):
        raise UserError(f'{self.path("run.json")} is damaged (its identity is '
                        'not an object); pass another --workdir or delete '
                        'that folder')
      check_generator(self.workdir, other.get('generator_fingerprint'),
                      self.identity.get('generator_fingerprint'),
                      'use a new workdir, or delete that folder to start over')
      diff = sorted(k for k in set(self.identity) | set(other)
                    if self.identity.get(k) != other.get(k))
      hint = 'pass another --workdir or delete that folder'
      if diff == ['ebm'] and os.path.isdir(self.path('checkpoints', 'base')):
        hint = ('to tilt its trained base with this energy, pass a new '
                f'--workdir and --base_from={self.workdir} (its '
                'checkpoints/base is copied there)')
      raise UserError(
          f'--workdir {self.workdir} holds a run of {describe(other)} that '
          f'differs in {", ".join(diff)}; {hint}')
    return theirs

  def __enter__(self):
    stored = self.check()
    io_utils.hold_lock(self.workdir)  # Before this run's first write.
    try:
      if stored != self.record:
        io_utils.write_json(self.path('run.json'), self.record)
      io_utils.remove_temp_files(self.workdir, *(
          self.path('checkpoints', d) for d in CHECKPOINT_DIRS))
      self.timings = io_utils.read_json(self.path('timings.json'), {})
    except BaseException:
      io_utils.release_lock(self.workdir)
      raise
    return self

  def __exit__(self, *exc):
    if self._writer is not None:
      self._writer.close()
      self._writer = None
    io_utils.release_lock(self.workdir)
    return False

  @property
  def writer(self):
    if self._writer is None:
      self._writer = tf.summary.create_file_writer(self.path('tensorboard'))
    return self._writer

  def scalars(self, prefix, step, metrics):
    with self.writer.as_default(step=step):
      for k, v in metrics.items():
        tf.summary.scalar(f'{prefix}/{k}', v)

  def record_time(self, stage, seconds, **extra):
    self.timings[stage] = dict(seconds=round(seconds, 2), **extra)
    io_utils.write_json(self.path('timings.json'), self.timings)
