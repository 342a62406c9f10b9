"""Timing and model helpers of benchmarks/all.py: RSS, medians of timed
calls, chains timed on fewer steps when long, a base's generator + energy
with random weights, and the profiler's FLOPs of one Langevin step."""


import gc
import resource
import statistics
import time

import psutil
import tensorflow as tf
import tf_keras

import configs
from tilt_tf import data as data_lib
from tilt_tf import ebm as ebm_lib
from tilt_tf import langevin as langevin_lib
from tilt_tf.generators import registry

def rss_mb():
  return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb():
  # ru_maxrss is in KiB on Linux.
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def timed(fn):
  """Seconds of one call of fn(); its result is fetched to the host."""
  start = time.perf_counter()
  tf.nest.map_structure(lambda t: t.numpy(), fn())
  return time.perf_counter() - start


def median_time(fn, budget_s, repeats):
  """(median seconds, calls): calls fn() up to `repeats` times in budget_s."""
  times = []
  start = time.perf_counter()
  while len(times) < repeats:
    times.append(timed(fn))
    # Stop when another call would overrun the budget.
    if time.perf_counter() - start + times[-1] > budget_s:
      break
  return statistics.median(times), len(times)


def time_chain(run, chain_steps, budget_s, repeats):
  """Times run(k) (a k-step chain), k = chain_steps if it fits the budget.

  Args:
    run: k -> tensors; a chain of k steps.
    chain_steps: the chain length to report.
    budget_s: seconds one timed call may take.
    repeats: timed calls (median).

  Returns:
    dict: s_per_step, steps_timed, calls, first_call_s (the warm-up: tracing
    and compilation included).
  """
  first = timed(lambda: run(1))
  guess = timed(lambda: run(1))  # Per step plus the call's fixed cost.
  k = chain_steps
  if guess * chain_steps > budget_s:
    k = max(1, min(chain_steps, int(budget_s / guess)))
  seconds, calls = median_time(lambda: run(k), budget_s, repeats)
  return {'s_per_step': seconds / k, 'steps_timed': k, 'calls': calls,
          'first_call_s': first}


def build(base, preset, dataset, precision='float32'):
  """(config, generator, energy, LatentEBM) with random weights; `precision`
  as in tilt_tf/precision.py."""
  cfg = configs.get_config(base, dataset, preset)
  shape = data_lib.data_shape(cfg.dataset)
  tf_keras.utils.set_random_seed(cfg.seed)
  generator = registry.make_generator(base, cfg.base, shape, precision)
  energy = ebm_lib.make_energy(cfg.ebm, shape, precision=precision)
  latent_ebm = ebm_lib.LatentEBM(generator, energy, alpha=cfg.ebm.alpha)
  return cfg, generator, energy, latent_ebm


def chain_fn(latent_ebm, batch, step_size):
  """(seed, num_steps) -> final latents of a fresh short-run chain."""

  def chain(seed, num_steps):
    return latent_ebm.sample_latents(batch, seed, step_size, num_steps)['z']

  return chain


def runner(fn):
  seed = tf.constant([0, 1], tf.int32)
  return lambda k: fn(seed, tf.constant(k, tf.int32))


def step_flops(latent_ebm, batch):
  """Profiler FLOPs of one Langevin step (see benchmarks/all.py, _FLOPS_METHOD)."""
  spec = tf.TensorSpec([batch, latent_ebm.generator.latent_dim], tf.float32)
  step = tf.function(
      lambda z: langevin_lib.potential_grad(latent_ebm.potential, z))
  concrete = step.get_concrete_function(spec)
  # The traced graph also holds the weight gradients the tape built but dU/dz
  # does not use (the runtime prunes them): keep what the outputs need.
  needed = tf.compat.v1.graph_util.extract_sub_graph(
      concrete.graph.as_graph_def(add_shapes=True),
      [t.op.name for t in concrete.outputs])
  graph = tf.Graph()
  with graph.as_default():
    tf.graph_util.import_graph_def(needed, name='')
  builder = tf.compat.v1.profiler.ProfileOptionBuilder
  options = builder(builder.float_operation()).with_empty_output().build()
  return tf.compat.v1.profiler.profile(graph=graph,
                                       options=options).total_float_ops


# ------------------------------------------------------------- benchmarks


def memory_record(preset, dataset, batch, steps, calls):
  """RSS around many calls of one compiled sampler (a leak shows as growth)."""
  cfg, generator, _, latent_ebm = build('glf', preset, dataset)
  chain = tf.function(chain_fn(latent_ebm, batch, cfg.ebm.step_size))
  num_steps = tf.constant(steps, tf.int32)

  def call(i):
    return chain(tf.constant([i, 0], tf.int32), num_steps).numpy()

  call(0)  # Tracing.
  gc.collect()
  rss_start = rss_mb()
  rss_half = rss_start
  start = time.perf_counter()
  for i in range(1, calls + 1):
    call(i)
    if i == calls // 2:
      gc.collect()
      rss_half = rss_mb()
  seconds = time.perf_counter() - start
  gc.collect()
  rss_end = rss_mb()
  return {
      'benchmark': 'memory', 'base': 'glf', 'preset': preset,
      'batch': batch, 'latent_dim': generator.latent_dim,
      'calls': calls, 'chain_steps': steps, 'seconds': seconds,
      'rss_mb_start': rss_start,
      'rss_mb_after_half': rss_half,
      'rss_mb_after_calls': rss_end,
      'rss_growth_mb': rss_end - rss_start,
      'rss_growth_second_half_mb': rss_end - rss_half,
      'method': ('psutil RSS after gc.collect(): after the tracing call, '
                 'after calls // 2 calls and after all calls of one '
                 'compiled sampler (a new seed tensor each call); '
                 'peak_rss_mb is ru_maxrss of the whole process'),
  }
