"""The `precision` record of benchmarks/all.py: seconds per Langevin step
with the energy and decoder in float32 and in bfloat16 (tilt_tf/precision.py),
timed back to back in one process, and their ratio."""

import tensorflow as tf

from benchmarks import timing
from tilt_tf import precision as precision_lib


def precision_record(base, preset, dataset, batch, budget_s, repeats):
  """float32 vs bf16 training chains (ebm.langevin_steps) of one base."""
  ok, hardware = precision_lib.bf16_support()
  record = {'benchmark': 'precision', 'base': base, 'preset': preset,
            'dataset': dataset, 'batch': batch, 'bf16_hardware': hardware}
  precisions = ('float32', 'bf16') if ok else ('float32',)
  steps = {}
  for name in precisions:
    cfg, _, _, latent_ebm = timing.build(base, preset, dataset, name)
    chain = tf.function(timing.chain_fn(latent_ebm, batch, cfg.ebm.step_size))
    t = timing.time_chain(timing.runner(chain), cfg.ebm.langevin_steps,
                          budget_s, repeats)
    steps[name] = t['s_per_step']
    record[f'{name}_s_per_step'] = t['s_per_step']
    record[f'{name}_steps_timed'] = t['steps_timed']
    final = chain(tf.constant([0, 1], tf.int32), tf.constant(5, tf.int32))
    record[f'{name}_chains_finite'] = bool(
        tf.reduce_all(tf.math.is_finite(final)))
  if ok:
    record['bf16_over_float32'] = steps['bf16'] / steps['float32']
  else:
    record['bf16_over_float32'] = None
    record['bf16'] = f'not measured: this machine has {hardware}'
  record['method'] = ('median seconds per step of the compiled training '
                      'chain (LatentEBM.sample_latents), float32 then bf16 '
                      'with the same architecture, back to back')
  return record
