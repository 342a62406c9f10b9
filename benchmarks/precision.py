"""The `precision` record of benchmarks/all.py: seconds per Langevin step
with the energy and decoder in float32 and in bfloat16 (tilt_tf/precision.py)
and their ratio. The two chains' timed calls alternate, so a load that
comes and goes (other jobs on the CPU) slows both alike.

The record also splits one step's cost (`<precision>_parts_ms`): the
decoder's and the energy's forward passes alone and with the input gradient
a Langevin step needs (dx/dz, dE/dx), timed the same way, and the same
energy with `ebm.stem_pool=2` (its first stage at a quarter of the pixels,
tilt_tf/ebm.py): `energy_pool2_forward_backward`."""

import statistics

import ml_collections
import tensorflow as tf

from benchmarks import timing
from tilt_tf import ebm
from tilt_tf import precision as precision_lib


def precision_record(base, preset, dataset, batch, budget_s, repeats):
  """float32 vs bf16 training chains (ebm.langevin_steps) of one base."""
  ok, hardware = precision_lib.bf16_support()
  record = {'benchmark': 'precision', 'base': base, 'preset': preset,
            'dataset': dataset, 'batch': batch, 'bf16_hardware': hardware}
  names = ('float32', 'bf16') if ok else ('float32',)
  runs, parts = {}, {}
  for name in names:
    cfg, _, _, latent_ebm = timing.build(base, preset, dataset, name)
    runs[name] = timing.runner(tf.function(
        timing.chain_fn(latent_ebm, batch, cfg.ebm.step_size)))
    parts[name] = _part_fns(latent_ebm, batch, cfg, name)
    final = runs[name](5)  # Also the warm-up (tracing).
    record[f'{name}_chains_finite'] = bool(
        tf.reduce_all(tf.math.is_finite(final)))
  # One chain length for both: the training chain, or fewer steps if a
  # float32 call would overrun the budget.
  per_step = timing.timed(lambda: runs['float32'](1))
  k = cfg.ebm.langevin_steps
  k = max(1, min(k, int(budget_s / max(per_step, 1e-9))))
  times = {name: [] for name in names}
  for _ in range(repeats):
    for name in names:
      times[name].append(timing.timed(lambda n=name: runs[n](k)) / k)
  for name in names:
    record[f'{name}_s_per_step'] = statistics.median(times[name])
    record[f'{name}_parts_ms'] = {
        part: round(1000 * statistics.median(
            [timing.timed(fn) for _ in range(max(repeats, 3))]), 2)
        for part, fn in parts[name].items()}
  record['steps_timed'] = k
  record['calls'] = repeats
  if ok:
    record['bf16_over_float32'] = (record['bf16_s_per_step'] /
                                   record['float32_s_per_step'])
  else:
    record['bf16_over_float32'] = None
    record['bf16'] = f'not measured: this machine has {hardware}'
  record['method'] = ('median seconds per step of the compiled training '
                      'chain (LatentEBM.sample_latents) with the same '
                      'architecture in float32 and bf16, timed calls '
                      'alternating between the two after a warm-up each')
  return record


def _part_fns(latent_ebm, batch, cfg, precision):
  """Compiled pieces of one Langevin step, each warmed up: name -> fn()."""
  generator, energy = latent_ebm.generator, latent_ebm.energy
  z = generator.prior_sample(batch, tf.constant([0, 9], tf.int32))
  x = generator.decode(z)
  pooled_cfg = ml_collections.ConfigDict(cfg.ebm.to_dict())
  pooled_cfg.stem_pool = 2
  pooled = ebm.make_energy(pooled_cfg, x.shape[1:], precision=precision)

  def with_grad(fn, inputs):
    with tf.GradientTape() as tape:
      tape.watch(inputs)
      out = tf.reduce_sum(fn(inputs))
    return tape.gradient(out, inputs)

  fns = {
      'decoder_forward': tf.function(lambda: generator.decode(z)),
      'decoder_forward_backward': tf.function(
          lambda: with_grad(generator.decode, z)),
      'energy_forward': tf.function(lambda: energy(x)),
      'energy_forward_backward': tf.function(lambda: with_grad(energy, x)),
      'energy_pool2_forward_backward': tf.function(
          lambda: with_grad(pooled, x)),
  }
  for fn in fns.values():
    fn()
  return fns
