"""Which tf.distribute strategy a process runs under, and where it writes."""

import json
import os

import tensorflow as tf

from tilt_tf.errors import UserError

__all__ = ['cluster_size', 'make_strategy', 'worker_workdir']


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
