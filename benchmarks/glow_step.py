"""Where a GLOW Langevin step's time goes (#39), beside GLF's; prints one
JSON object.

  .venv/bin/python -m benchmarks.glow_step [--batches=64,500] [--repeats=5]
  ./bazelw run //benchmarks:glow_step -- --quick

Builds each base's generator and method as a run does
(`tilt_tf/runtime/build.py`: make_generator with the pipeline's first data
batch, so GLOW's ActNorm is data-initialized on real Fashion-MNIST images,
then make_method), with random weights (GLOW's zero-initialized last
coupling/exit convolutions get small random values, as a trained flow has,
so that its decode is not the identity), and times, compiled with
`tf.function`, at each batch size:

  decode       G(z), the generator's forward pass alone;
  energy       E(x) on decoded images, alone;
  decode_vjp   G(z) and the gradient through G (a fixed cotangent dL/dx);
  energy_vjp   E(x) and dE/dx;
  step         one Langevin step: U(z) = E(G(z)) + |z|^2/2 and dU/dz in one
               tape (`langevin.potential_grad` of `LatentEBM.potential`);
  chain        the sample stage's sampler (`method.sample`, a tf.function
               with reduce_retracing, n/seed/steps as tensors) with
               --chain_steps Langevin steps: the chain plus decoding z_0
               and z_K; `chain_ms_per_step` divides by the steps.

`<part>_share` is the part's time over one step's. Variants (keys of the
record): each base of --bases and, beside 'glow', 'glow_tfp_1x1': a second
GLOW with the same weights and TFP's own 1x1-convolution inverse
(`glow.use_matmul_inverse(enabled=False)`, the decode before #39's fix).
At each batch size every variant's calls alternate, part by part, so the
ratios compare back-to-back calls: `glow.speedup_over_tfp_1x1_<part>` (TFP's
time / ours) and `glow_over_glf_*`. `glow.max_abs_diff_*`: the largest
difference of the two GLOWs' decoded images and dU/dz on the same z, beside
what one float32 ulp of noise in z does to TFP's (`*_tfp_1ulp`).
`op_profile_batch_<first batch>`: one step's op time from TensorFlow's
profiler split into generator/energy, forward/backward and GLOW's 1x1
convolutions, and the top op types; shares of the summed op time (the two
CPU threads overlap; on a busy CPU small ops' times include waits).

Timing: a warm-up call (tracing), then the median of --repeats calls (the
chain: --chain_repeats); other jobs on the CPU slow everything alike, so read
the shares and ratios, which come from back-to-back calls in one process.
"""

import collections
import glob
import json
import os
import shutil
import statistics
import tempfile

from absl import flags
import numpy as np
import tensorflow as tf
import tf_keras

import configs
from benchmarks import timing
from tilt_tf import cli
from tilt_tf import data as data_lib
from tilt_tf import langevin as langevin_lib
from tilt_tf.runtime import build

FLAGS = flags.FLAGS
flags.DEFINE_list('batches', ['64', '500'], 'Chains (batch sizes) to time.')
flags.DEFINE_list('bases', ['glow', 'glf'], 'Bases (GLF is the reference).')
flags.DEFINE_string('preset', 'small', 'Preset of the bases.')
flags.DEFINE_string('dataset', 'fashion_mnist', 'Image data set.')
flags.DEFINE_integer('repeats', 5, 'Timed calls per part (median).')
flags.DEFINE_integer('chain_steps', 20, 'Langevin steps of the timed chain.')
flags.DEFINE_integer('chain_repeats', 3, 'Timed chains (median).')
flags.DEFINE_bool('op_profile', True, 'Add the profiler\'s op breakdown.')
flags.DEFINE_bool('quick', False, 'Test preset, batch 8, 2 steps, 1 repeat '
                  '(smoke test); flags given explicitly still win.')
flags.DEFINE_string('output', None, 'Also append the JSON line to this file.')

_QUICK = {'preset': 'test', 'batches': ['8'], 'repeats': 1, 'chain_steps': 2,
          'chain_repeats': 1}
PARTS = ('decode', 'energy', 'decode_vjp', 'energy_vjp', 'step', 'chain')


def _first_batch(cfg):
  """The pipeline's first batch (tilt_tf/train_lib.py, Pipeline)."""
  bs = cfg.base.batch_size
  images = data_lib.load(cfg.dataset, 'train', cfg.data_dir or None,
                         n=bs * 4)
  return next(iter(data_lib.make_dataset(images, min(bs, len(images)),
                                         seed=cfg.seed)))


def _randomize_zero_convs(generator, scale=0.05, seed=0):
  """Small random values in the convolutions that start at zero."""
  rng = np.random.default_rng(seed)
  for v in generator.trainable_variables:
    if len(v.shape) == 4 and not np.any(v.numpy()):
      v.assign(scale * rng.standard_normal(v.shape).astype(np.float32))


def build_base(base, preset, dataset):
  """(config, generator, method) as a run builds them, random weights."""
  cfg = configs.get_config(base, dataset, preset)
  shape = build.data_shape_of(cfg)
  tf_keras.utils.set_random_seed(cfg.seed)
  generator = build.make_generator(cfg, shape, _first_batch(cfg))
  _randomize_zero_convs(generator)
  method = build.make_method(cfg, generator, shape)
  return cfg, generator, method


def tfp_1x1_twin(cfg, generator, method):
  """GLOW with TFP's 1x1-convolution inverse and the same weights."""
  from tilt_tf.generators import glow  # pylint: disable=g-import-not-at-top
  shape = build.data_shape_of(cfg)
  twin = build.make_generator(cfg, shape, _first_batch(cfg))
  glow.use_matmul_inverse(twin.flow, enabled=False)
  twin_method = build.make_method(cfg, twin, shape)
  for a, b in [(twin.variables, generator.variables),
               (twin_method.energy.variables, method.energy.variables)]:
    assert [v.shape for v in a] == [v.shape for v in b]
    for x, y in zip(a, b):
      x.assign(y)
  return twin, twin_method


def part_fns(generator, method, batch, chain_steps):
  """name -> (compiled fn, its arguments); each traced on first call."""
  latent_ebm = method.latent_ebm
  z = generator.prior_sample(batch, tf.constant([0, 9], tf.int32))
  x = generator.decode(z)
  cotangent = tf.random.stateless_normal(x.shape, seed=[1, 9])

  def decode_vjp(z):
    with tf.GradientTape() as tape:
      tape.watch(z)
      out = generator.decode(z)
    return tape.gradient(out, z, output_gradients=cotangent)

  def energy_vjp(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      e = latent_ebm.energy(x)
    return e, tape.gradient(e, x)

  sampler = method.compiled_sample
  chain_args = (tf.constant(batch), tf.constant([0, 1000]),
                tf.constant(chain_steps))
  return {
      'decode': (tf.function(generator.decode), (z,)),
      'energy': (tf.function(lambda x: latent_ebm.energy(x)), (x,)),
      'decode_vjp': (tf.function(decode_vjp), (z,)),
      'energy_vjp': (tf.function(energy_vjp), (x,)),
      'step': (tf.function(lambda z: langevin_lib.potential_grad(
          latent_ebm.potential, z)), (z,)),
      'chain': (sampler, chain_args),
  }


def time_parts(variants, repeats, chain_repeats):
  """{variant: {part: median ms}}, variants' calls alternating."""
  times = {v: collections.defaultdict(list) for v in variants}
  for part in PARTS:
    for fns in variants.values():
      fn, args = fns[part]
      timing.timed(lambda: fn(*args))  # Warm-up: tracing.
    for _ in range(chain_repeats if part == 'chain' else repeats):
      for name, fns in variants.items():
        fn, args = fns[part]
        times[name][part].append(timing.timed(lambda: fn(*args)))
  return {v: {p: 1000 * statistics.median(t) for p, t in parts.items()}
          for v, parts in times.items()}


def with_shares(ms, chain_steps):
  out = {f'{p}_ms': ms[p] for p in PARTS}
  out['chain_ms_per_step'] = ms['chain'] / chain_steps
  for p in ('decode', 'energy', 'decode_vjp', 'energy_vjp'):
    out[f'{p}_share'] = ms[p] / ms['step']
  out['chain_step_over_step'] = out['chain_ms_per_step'] / ms['step']
  # What the backward passes add to the forward ones.
  out['decode_backward_ms'] = ms['decode_vjp'] - ms['decode']
  out['energy_backward_ms'] = ms['energy_vjp'] - ms['energy']
  return out


def compare_decodes(new_fns, old_fns):
  """Largest |difference| of the two decodes and dU/dz on the same z and
  weights, beside what one float32 ulp of relative noise in z alone does to
  TFP's (`*_tfp_1ulp`): the flow amplifies any round-off."""
  z = new_fns['decode'][1][0]
  noise = 2.**-24 * tf.random.stateless_uniform(z.shape, [2, 9], -1., 1.)
  z_jittered = z * (1. + noise)
  decode_old, step_old = old_fns['decode'][0], old_fns['step'][0]
  x_old, g_old = decode_old(z), step_old(z)[1]

  def max_abs(a, b):
    return float(tf.reduce_max(tf.abs(a - b)))

  return {
      'max_abs_diff_decode': max_abs(new_fns['decode'][0](z), x_old),
      'max_abs_diff_decode_tfp_1ulp': max_abs(decode_old(z_jittered), x_old),
      'max_abs_diff_grad_u': max_abs(new_fns['step'][0](z)[1], g_old),
      'max_abs_diff_grad_u_tfp_1ulp': max_abs(step_old(z_jittered)[1], g_old),
      'max_abs_grad_u': float(tf.reduce_max(tf.abs(g_old))),
  }


def op_profile(step, z, energy_name, calls=5):
  """One compiled step's op time from the profiler, by part and op type.

  Each op's time is its median over `calls` traced calls (on a shared CPU
  an op's event also holds the time it waited for a core; the median drops
  most of those outliers, small ops stay the least reliable)."""
  try:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    return {'error': f'no xplane_pb2 in this TensorFlow ({e})'}
  step(z)
  logdir = tempfile.mkdtemp(prefix='glow_step_trace')
  tf.profiler.experimental.start(logdir)
  for _ in range(calls):
    tf.nest.map_structure(lambda t: t.numpy(), step(z))
  tf.profiler.experimental.stop()
  space = xplane_pb2.XSpace()
  with open(glob.glob(f'{logdir}/**/*.xplane.pb', recursive=True)[0],
            'rb') as f:
    space.ParseFromString(f.read())
  shutil.rmtree(logdir, ignore_errors=True)
  durations = collections.defaultdict(list)
  wrappers = ('ExecutorState::Process', 'ParallelFor', 'ExecutorDoneCallback')
  for plane in space.planes:
    names = {k: m.name for k, m in plane.event_metadata.items()}
    for line in plane.lines:
      if not line.name.startswith('tf_Compute'):
        continue
      for event in line.events:
        if names[event.metadata_id] not in wrappers:
          durations[names[event.metadata_id]].append(event.duration_ps)
  by_part, by_type = collections.Counter(), collections.Counter()
  for name, times in durations.items():
    # Ops inside loops run several times a call: median x runs per call.
    ps = statistics.median(times) * len(times) / calls
    op_type = name.rsplit(':', 1)[-1]
    direction = ('backward' if name.startswith('gradient_tape/')
                 else 'forward')
    if energy_name in name:
      part = f'energy_{direction}'
    elif 'ScaleMatvecLU' in name or 'matmul_inverse_1x1' in name:
      part = f'generator_1x1_convs_{direction}'
    else:
      part = f'generator_rest_{direction}'  # With the prior's few ops.
    by_part[part] += ps
    by_type[op_type] += ps
  total = sum(by_part.values())
  return {
      'op_ms_per_step': total / 1e9,
      'share_by_part': {k: round(v / total, 4)
                        for k, v in sorted(by_part.items())},
      'top_op_types': {k: round(v / total, 4)
                       for k, v in by_type.most_common(10)},
  }


def build_variants():
  """name -> (generator, method, config): each base of --bases, and
  'glow_tfp_1x1' (TFP's 1x1 inverse, the same weights) beside 'glow'."""
  variants = {}
  for base in FLAGS.bases:
    cfg, generator, method = build_base(base, FLAGS.preset, FLAGS.dataset)
    variants[base] = (generator, method, cfg)
    if base == 'glow':
      twin, twin_method = tfp_1x1_twin(cfg, generator, method)
      variants['glow_tfp_1x1'] = (twin, twin_method, cfg)
  return variants


def records(variants):
  """{variant: record}; at each batch all variants' calls alternate."""
  out = {}
  for name, (generator, method, cfg) in variants.items():
    out[name] = {'latent_dim': generator.latent_dim,
                 'decoder': dict(cfg.base.to_dict()),
                 'energy_channels': list(cfg.ebm.channels),
                 'sample_step_size': method.sample_step_size}
  for batch in [int(b) for b in FLAGS.batches]:
    key = f'batch_{batch}'
    fns = {name: part_fns(generator, method, batch, FLAGS.chain_steps)
           for name, (generator, method, _) in variants.items()}
    ms = time_parts(fns, FLAGS.repeats, FLAGS.chain_repeats)
    for name in variants:
      out[name][key] = with_shares(ms[name], FLAGS.chain_steps)
    if 'glow_tfp_1x1' in variants:
      glow = out['glow'][key]
      for p in PARTS:
        glow[f'speedup_over_tfp_1x1_{p}'] = (ms['glow_tfp_1x1'][p] /
                                             ms['glow'][p])
      glow.update(compare_decodes(fns['glow'], fns['glow_tfp_1x1']))
    if FLAGS.op_profile and batch == int(FLAGS.batches[0]):
      for name, (_, method, _) in variants.items():
        step, (z,) = fns[name]['step']
        out[name][f'op_profile_{key}'] = op_profile(step, z,
                                                    method.energy.name)
  return out


def _round(value):
  if isinstance(value, dict):
    return {k: _round(v) for k, v in value.items()}
  if isinstance(value, float):
    return float(f'{value:.4g}')
  return value


def main(argv):
  del argv
  if FLAGS.quick:
    for name, value in _QUICK.items():
      if not FLAGS[name].present:
        FLAGS[name].value = value
  record = {'benchmark': 'glow_step', 'preset': FLAGS.preset,
            'dataset': FLAGS.dataset, 'batches': FLAGS.batches,
            'chain_steps': FLAGS.chain_steps, 'repeats': FLAGS.repeats,
            'chain_repeats': FLAGS.chain_repeats}
  record.update(records(build_variants()))
  for batch in FLAGS.batches:
    key = f'batch_{batch}'
    for name in ('glow', 'glow_tfp_1x1'):
      if name in record and 'glf' in record:
        record[f'{name}_over_glf_step_{key}'] = (
            record[name][key]['step_ms'] / record['glf'][key]['step_ms'])
        record[f'{name}_over_glf_chain_{key}'] = (
            record[name][key]['chain_ms'] / record['glf'][key]['chain_ms'])
  record.update({
      'device': 'GPU' if tf.config.list_physical_devices('GPU') else 'CPU',
      'tf_version': tf.__version__, 'cpu_count': os.cpu_count(),
      'load_avg_1m': os.getloadavg()[0], 'peak_rss_mb': timing.peak_rss_mb(),
      'method': ('median ms of compiled calls after a warm-up, variants '
                 'alternating call for call; shares over one step\'s time'),
  })
  line = json.dumps(_round(record), allow_nan=False)
  print(line, flush=True)
  if FLAGS.output:
    path = cli.resolve_path(FLAGS.output)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path, 'a') as f:
      f.write(line + '\n')


if __name__ == '__main__':
  cli.run_main(main)
