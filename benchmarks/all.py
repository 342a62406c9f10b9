"""Benchmarks of the latent EBM's hot paths; prints one JSON object per line.

  ./bazelw run //benchmarks:all -- [--output=FILE] [--quick]
  .venv/bin/python -m benchmarks.all --quick

Records (key "benchmark"):

  gemm            FLOP/s of a large float32 matmul: this machine's reference.
  langevin        per base (vae, glf) and preset (small, paper): a short-run
                  Langevin chain (60 steps, batch 64) through the base's
                  decoder and the ResNet energy, run eagerly, as a tf.function
                  and as a tf.function with jit_compile=True; steps/s,
                  samples/s of 100-step sampling chains, FLOPs per step and
                  the fraction of the GEMM rate they reach.
  precision       per base (vae, glf), `small` preset, batch 64 and 500:
                  seconds per Langevin step float32 vs bf16 and their ratio
                  (benchmarks/precision.py); says so where the machine has no
                  bfloat16 hardware.
  serving         GLF `small`: p50/p99 latency of the exported sampler loaded
                  in process, num_samples 1 and 64 (benchmarks/serving.py).
  tilt_over_base  per base (vae, glf) and preset (small, paper): estimated
                  wall time of the tilt stage over the base one
                  (benchmarks/stages.py).
  memory          RSS before and after many compiled Langevin calls.

Every chain goes through the project's one sampler,
`LatentEBM.sample_latents` (-> `langevin.langevin`); "eager" calls that same
Python function without `tf.function`. Models have random weights (the cost
does not depend on them) and data are random images.

Timing: a warm-up call first (tracing, XLA compilation), then the median of up
to --repeats calls. A chain whose full length does not fit in --budget_s
seconds is timed on fewer steps and scaled per step; the `*_steps_timed` keys
say how many steps were timed. Every record carries the device, the TF
version and the 1-minute load average (other jobs sharing the CPU slow
everything down alike, ratios less so).
"""

import datetime
import json
import os

from absl import flags
from absl import logging
import tensorflow as tf

import configs
from benchmarks import precision as precision_bench
from benchmarks import serving as serving_bench
from benchmarks import stages as stages_bench
from benchmarks import timing
from tilt_tf import cli
from tilt_tf import data as data_lib
from tilt_tf.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string('output', None, 'Also append the JSON lines to this file.')
flags.DEFINE_bool('quick', False, 'Tiny sizes and a few steps (smoke test, '
                  'seconds); flags given explicitly still win.')
flags.DEFINE_list('benchmarks', ['gemm', 'langevin', 'precision', 'serving',
                                 'tilt_over_base', 'memory'],
                  'Which benchmarks to run.')
flags.DEFINE_list('bases', ['vae', 'glf'], 'Image bases for `langevin`.')
flags.DEFINE_list('presets', ['small', 'paper'],
                  'Presets (architectures) for `langevin`.')
flags.DEFINE_string('dataset', 'fashion_mnist', 'Image data set (its shape).')
flags.DEFINE_list('tilt_presets', ['small', 'paper'],
                  'Presets for `tilt_over_base`.')
flags.DEFINE_string('precision_preset', 'small', 'Preset for `precision`.')
flags.DEFINE_list('precision_batches', ['64', '500'], 'Batches for `precision`.')
flags.DEFINE_string('serving_preset', 'small', 'GLF preset for `serving`.')
flags.DEFINE_integer('serving_calls', 20, 'Timed requests per size in `serving`.')
flags.DEFINE_integer('batch', 64, 'Chains per Langevin call in `langevin`.')
flags.DEFINE_float('budget_s', 8.0, 'Seconds one timing may take; longer '
                   'chains are timed on fewer steps and scaled per step.')
flags.DEFINE_integer('repeats', 3, 'Timed calls per figure (median).')
flags.DEFINE_integer('gemm_size', 2048, 'n of the n x n float32 GEMM.')
flags.DEFINE_integer('base_steps_timed', 50, 'Base train steps timed.')
flags.DEFINE_integer('memory_calls', 1000, 'Langevin calls in `memory`.')
flags.DEFINE_integer('memory_steps', 5, 'Langevin steps per call in `memory`.')
flags.DEFINE_string('memory_preset', 'test', 'GLF preset for `memory`.')
flags.DEFINE_string('note', '', 'Free text copied into every record.')

BENCHMARKS = ('gemm', 'langevin', 'precision', 'serving', 'tilt_over_base',
              'memory')
IMAGE_BASES = ('vae', 'glf', 'glow')  # --bases=glow on request.
# --bases=mlp_vae: the toy (25-Gaussians, MLP decoder and energy), where
# per-op overhead rather than convolution arithmetic sets the pace.
TOY_BASES = {'mlp_vae': '25gaussians'}

# --quick: flag -> value, unless the flag is given on the command line.
_QUICK = {
    'presets': ['test'],
    'tilt_presets': ['test'],
    'precision_preset': 'test',
    'precision_batches': ['8'],
    'serving_preset': 'test',
    'serving_calls': 3,
    'batch': 8,
    'budget_s': 0.5,
    'repeats': 1,
    'gemm_size': 256,
    'base_steps_timed': 2,
    'memory_calls': 20,
    'memory_steps': 2,
}

_FLOPS_METHOD = (
    'tf.compat.v1.profiler float_operation (TF\'s registered FLOP counts: '
    'conv, matmul, elementwise) over the tf.function graph of one Langevin '
    'step (U(z) and dU/dz at the timed batch), reduced with extract_sub_graph '
    'to the ops U and dU/dz need (the unused weight gradients dropped)')


# ------------------------------------------------------------------ helpers


def bench_gemm():
  n = FLAGS.gemm_size
  a = tf.random.stateless_normal([n, n], seed=[1, 2])
  b = tf.random.stateless_normal([n, n], seed=[3, 4])
  matmul = tf.function(lambda: tf.linalg.matmul(a, b))
  timing.timed(matmul)  # Warm-up.
  seconds, calls = timing.median_time(matmul, FLAGS.budget_s, max(FLAGS.repeats, 10))
  flops = 2 * n**3
  return {'benchmark': 'gemm', 'base': None, 'preset': None,
          'size': n, 'calls': calls, 'seconds': seconds,
          'gemm_flop_s': flops / seconds,
          'method': ('float32 n x n tf.linalg.matmul in a tf.function, median '
                     'of the timed calls after a warm-up; FLOPs = 2 n^3')}


def bench_langevin(base, preset, gemm_flop_s):
  """Eager vs compiled vs XLA chains, throughput and FLOP rate."""
  cfg, generator, _, latent_ebm = timing.build(
      base, preset, TOY_BASES.get(base, FLAGS.dataset))
  batch = FLAGS.batch
  times = _time_chains(base, preset, cfg, latent_ebm, batch)
  flops = timing.step_flops(latent_ebm, batch)
  return {
      'benchmark': 'langevin', 'base': base, 'preset': preset,
      'dataset': cfg.dataset, 'batch': batch,
      'latent_dim': generator.latent_dim,
      'energy_channels': list(cfg.ebm.get('channels', ())),
      'energy_stem_stride': cfg.ebm.get('stem_stride'),
      'energy_stem_pool': cfg.ebm.get('stem_pool', 1),
      'decoder_width': cfg.base.get('width', cfg.base.get('hidden')),
      **_training_chain_fields(times, cfg.ebm.langevin_steps),
      **_sampling_chain_fields(times, cfg.ebm.sample_langevin_steps, batch),
      **_flop_fields(times, flops, gemm_flop_s),
      'method': ('median of timed calls after a warm-up call; speedups '
                 'compare seconds per step of the same chain; eager runs '
                 'LatentEBM.sample_latents without tf.function'),
  }


def _time_chains(base, preset, cfg, latent_ebm, batch):
  """Times the chain compiled, with XLA and eagerly.

  Returns `timing.time_chain` results: 'compiled', 'xla' and 'eager' for
  training-length chains (ebm.langevin_steps), 'sample' and 'sample_xla'
  (compiled, XLA) for sampling-length ones (ebm.sample_langevin_steps).
  """
  train_steps = cfg.ebm.langevin_steps
  sample_steps = cfg.ebm.sample_langevin_steps
  chain = timing.chain_fn(latent_ebm, batch, cfg.ebm.step_size)
  compiled = timing.runner(tf.function(chain))
  xla = timing.runner(tf.function(chain, jit_compile=True))
  eager = timing.runner(chain)
  budget, repeats = FLAGS.budget_s, FLAGS.repeats

  times = {}
  logging.info('langevin %s/%s: compiled', base, preset)
  times['compiled'] = timing.time_chain(compiled, train_steps, budget, repeats)
  logging.info('langevin %s/%s: XLA', base, preset)
  times['xla'] = timing.time_chain(xla, train_steps, budget, repeats)
  logging.info('langevin %s/%s: eager', base, preset)
  times['eager'] = timing.time_chain(eager, train_steps, budget, repeats)
  logging.info('langevin %s/%s: %d-step sampling chains', base, preset,
               sample_steps)
  times['sample'] = timing.time_chain(compiled, sample_steps, budget, repeats)
  times['sample_xla'] = timing.time_chain(xla, sample_steps, budget, repeats)
  return times


def _training_chain_fields(times, train_steps):
  """The record's fields of the training-length chains (`_time_chains`)."""
  c, x, e = times['compiled'], times['xla'], times['eager']
  return {
      'chain_steps': train_steps,
      'compiled_chain_s': c['s_per_step'] * train_steps,
      'xla_chain_s': x['s_per_step'] * train_steps,
      'eager_chain_s': e['s_per_step'] * train_steps,
      'compiled_steps_timed': c['steps_timed'],
      'xla_steps_timed': x['steps_timed'],
      'eager_steps_timed': e['steps_timed'],
      'compiled_vs_eager_speedup': e['s_per_step'] / c['s_per_step'],
      'xla_vs_compiled': c['s_per_step'] / x['s_per_step'],
      'compiled_first_call_s': c['first_call_s'],
      'xla_first_call_s': x['first_call_s'],
      'langevin_steps_per_s': 1.0 / c['s_per_step'],
      'langevin_steps_per_s_xla': 1.0 / x['s_per_step'],
  }


def _sampling_chain_fields(times, sample_steps, batch):
  """The record's fields of the sampling-length chains (`_time_chains`)."""
  s, sx = times['sample'], times['sample_xla']
  return {
      'sample_chain_steps': sample_steps,
      'sample_chain_s': s['s_per_step'] * sample_steps,
      'sample_steps_timed': s['steps_timed'],
      'samples_per_s': batch / (s['s_per_step'] * sample_steps),
      'samples_per_s_xla': batch / (sx['s_per_step'] * sample_steps),
  }


def _flop_fields(times, flops, gemm_flop_s):
  """FLOPs per Langevin step, the rates reached and their share of GEMM's."""
  achieved = flops / times['compiled']['s_per_step']
  achieved_xla = flops / times['xla']['s_per_step']
  return {
      'step_flops': flops,
      'flops_method': _FLOPS_METHOD,
      'step_flop_s': achieved,
      'step_flop_s_xla': achieved_xla,
      'gemm_flop_s': gemm_flop_s,
      'gemm_peak_fraction': achieved / gemm_flop_s,
      'gemm_peak_fraction_xla': achieved_xla / gemm_flop_s,
  }


def bench_memory():
  """RSS around many calls of one compiled sampler (a leak shows as growth)."""
  return timing.memory_record(FLAGS.memory_preset, FLAGS.dataset, FLAGS.batch,
                              FLAGS.memory_steps, FLAGS.memory_calls)


# ------------------------------------------------------------------ main


def _round(value):
  if isinstance(value, float):
    return float(f'{value:.6g}')
  return value


def _context():
  return {
      'device': 'GPU' if tf.config.list_physical_devices('GPU') else 'CPU',
      'tf_version': tf.__version__,
      'cpu_count': os.cpu_count(),
      'load_avg_1m': os.getloadavg()[0],
      'peak_rss_mb': timing.peak_rss_mb(),
      'quick': FLAGS.quick,
      'note': FLAGS.note,
      'time': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
  }


def _emit(record, output):
  record = {k: _round(v) for k, v in {**record, **_context()}.items()}
  line = json.dumps(record, allow_nan=False)
  print(line, flush=True)
  if output:
    with open(output, 'a') as f:
      f.write(line + '\n')


def _apply_quick():
  for name, value in _QUICK.items():
    if not FLAGS[name].present:
      FLAGS[name].value = value


def _check_flags():
  unknown = set(FLAGS.benchmarks) - set(BENCHMARKS)
  if unknown:
    raise UserError(f'unknown --benchmarks {", ".join(sorted(unknown))}; '
                    f'choose from {", ".join(BENCHMARKS)}')
  for name in ('batch', 'repeats', 'gemm_size', 'base_steps_timed',
               'memory_calls', 'memory_steps', 'serving_calls'):
    if FLAGS[name].value < 1:
      raise UserError(f'--{name}={FLAGS[name].value} is out of range; it '
                      'must be >= 1')
  if not FLAGS.budget_s > 0:
    raise UserError(f'--budget_s={FLAGS.budget_s} must be > 0')
  for base in FLAGS.bases:
    if base not in IMAGE_BASES and base not in TOY_BASES:
      raise UserError('--bases: benchmarks cover '
                      f'{", ".join(IMAGE_BASES + tuple(TOY_BASES))}; '
                      f'got {base!r}')
  for batch in FLAGS.precision_batches:
    if not batch.isdigit() or int(batch) < 1:
      raise UserError(f'--precision_batches: {batch!r} is not a positive '
                      'integer')
  for preset in FLAGS.presets + FLAGS.tilt_presets + [FLAGS.memory_preset,
                                 FLAGS.precision_preset, FLAGS.serving_preset]:
    if preset not in configs.PRESETS:
      raise UserError(f'unknown preset {preset!r}; choose one of '
                      f'{", ".join(configs.PRESETS)}')
  data_lib.check_dataset(FLAGS.dataset)
  if data_lib.is_toy(FLAGS.dataset):
    raise UserError(f'--dataset={FLAGS.dataset} is a toy set; benchmarks '
                    'need an image data set '
                    f'({", ".join(data_lib.IMAGE_DATASETS)})')


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {argv[1:]}; flags look like '
                    '--quick')
  if FLAGS.quick:
    _apply_quick()
  _check_flags()
  output = cli.resolve_path(FLAGS.output) if FLAGS.output else None
  if output:
    os.makedirs(os.path.dirname(output), exist_ok=True)
  selected = set(FLAGS.benchmarks)
  gemm = None
  if selected & {'gemm', 'langevin'}:
    gemm = bench_gemm()
    _emit(gemm, output)
  if 'langevin' in selected:
    for preset in FLAGS.presets:
      for base in FLAGS.bases:
        _emit(bench_langevin(base, preset, gemm['gemm_flop_s']), output)
  if 'precision' in selected:
    for base in FLAGS.bases:
      for batch in FLAGS.precision_batches:
        _emit(precision_bench.precision_record(
            base, FLAGS.precision_preset, FLAGS.dataset, int(batch),
            FLAGS.budget_s, FLAGS.repeats), output)
  if 'serving' in selected:
    _emit(serving_bench.serving_record('glf', FLAGS.serving_preset,
                                       FLAGS.dataset, (1, 64),
                                       FLAGS.serving_calls), output)
  if 'tilt_over_base' in selected:
    for preset in FLAGS.tilt_presets:
      for base in [b for b in FLAGS.bases if b in ('vae', 'glf')]:
        _emit(stages_bench.tilt_over_base_record(
            base, preset, FLAGS.dataset, FLAGS.budget_s, FLAGS.repeats,
            FLAGS.base_steps_timed), output)
  if 'memory' in selected:
    _emit(bench_memory(), output)


if __name__ == '__main__':
  cli.run_main(main)
