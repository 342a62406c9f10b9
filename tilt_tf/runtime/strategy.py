"""Which tf.distribute strategy a process runs under, and where it writes."""

from importlib import metadata
import json
import os
import re
import shutil

import tensorflow as tf

from tilt_tf.errors import UserError

__all__ = ['cluster_size', 'gpu_warning', 'make_strategy', 'nvidia_driver',
           'worker_workdir']


def cluster_size():
  """How many tasks (chief + workers) TF_CONFIG names; 0 if it is unset."""
  raw = os.environ.get('TF_CONFIG', '')
  if not raw.strip():
    return 0
  try:
    cluster = json.loads(raw)['cluster']
    return len(cluster.get('chief', [])) + len(cluster.get('worker', []))
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise UserError(f'TF_CONFIG is not a JSON object with a "cluster" '
                    f'({e!r}): {raw[:200]}') from None


def make_strategy(num_cpu_devices=0):
  """The strategy for this process; call it before anything else runs TF.

  - TF_CONFIG naming more than one task (chief + workers):
    MultiWorkerMirroredStrategy, one replica per worker (or per GPU); see
    `worker_workdir` for where each worker writes.
  - Local GPUs: MirroredStrategy over them.
  - Else the default strategy on one CPU; num_cpu_devices > 1 splits the CPU
    into that many logical devices and mirrors over them (for testing
    distribution without GPUs).
  """
  if cluster_size() > 1:
    if num_cpu_devices > 1:
      raise UserError('--num_cpu_devices splits one process\'s CPU; with a '
                      'multi-worker TF_CONFIG each worker is one replica')
    return tf.distribute.MultiWorkerMirroredStrategy()
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    return tf.distribute.MirroredStrategy()
  if num_cpu_devices > 1:
    cpu = tf.config.list_physical_devices('CPU')[0]
    try:
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)
    except RuntimeError:
      pass  # Already initialized; use what exists.
    devices = [d.name for d in tf.config.list_logical_devices('CPU')]
    return tf.distribute.MirroredStrategy(devices[:num_cpu_devices])
  return tf.distribute.get_strategy()


def nvidia_driver(proc='/proc/driver/nvidia'):
  """True when this machine has an NVIDIA driver: `nvidia-smi` on PATH or
  /proc/driver/nvidia (the same test ./bazelw uses to add TensorFlow's CUDA
  libraries to .venv)."""
  return bool(shutil.which('nvidia-smi')) or os.path.exists(proc)


def _missing_cuda_packages():
  """The pip packages of TensorFlow's `and-cuda` extra that are not installed
  (names as TensorFlow's metadata lists them)."""
  try:
    requires = metadata.requires('tensorflow') or []
  except metadata.PackageNotFoundError:
    return []
  missing = []
  for requirement in requires:
    if not re.search(r'extra\s*==\s*["\']and-cuda["\']', requirement):
      continue
    name = re.match(r'[A-Za-z0-9._-]+', requirement).group(0)
    try:
      metadata.version(name)
    except metadata.PackageNotFoundError:
      missing.append(name)
  return missing


def gpu_warning():
  """One line saying why TensorFlow sees no GPU on a machine with an NVIDIA
  driver, and what to install; None when it sees one, when there is no
  driver, or when CUDA_VISIBLE_DEVICES hides the GPUs on purpose ('' or -1)."""
  if os.environ.get('CUDA_VISIBLE_DEVICES', None) in ('', '-1'):
    return None
  if not nvidia_driver() or tf.config.list_physical_devices('GPU'):
    return None
  install = f"pip install 'tensorflow[and-cuda]=={tf.__version__}'"
  if not tf.test.is_built_with_cuda():
    why = 'this TensorFlow build has no CUDA support (tensorflow-cpu?)'
    fix = f'install the CUDA build: {install}'
  elif missing := _missing_cuda_packages():
    more = f' and {len(missing) - 1} more' if len(missing) > 1 else ''
    why = f'its CUDA libraries are not installed ({missing[0]}{more})'
    fix = (f"{install} (or pip install 'tilt_tf[gpu]'; ./bazelw adds them "
           'to .venv by itself)')
  else:
    why = ('it could not load CUDA: a driver older than this TensorFlow\'s '
           'CUDA needs, or no GPU visible to this process')
    fix = ('check nvidia-smi and run with TF_CPP_MIN_LOG_LEVEL=0 to see '
           "TensorFlow's reason")
  return (f'NVIDIA driver found but TensorFlow sees no GPU: {why}; running '
          f'on the CPU. To use the GPU: {fix}')


def worker_workdir(workdir, strategy):
  """Where this process writes: `workdir` on the chief (and on one machine),
  `<workdir>_worker<i>` on the other workers of a multi-worker strategy.

  Every worker runs every stage and saves its own checkpoints (saving may
  involve collectives, and a resumed worker must restore its own state);
  the replicas hold the same weights, so the chief's folder is the run.
  """
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or strategy.extended.should_checkpoint:
    return workdir
  return f'{workdir.rstrip(os.sep)}_{resolver.task_type}{resolver.task_id}'
