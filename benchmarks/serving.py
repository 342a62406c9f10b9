"""The `serving` record of benchmarks/all.py: latency of the exported
SavedModel sampler (tilt_tf/stages/export.py), loaded back in process and
called through its `serving_default` signature as TF Serving would."""

import tempfile
import time

import numpy as np
import tensorflow as tf

from benchmarks import timing
from tilt_tf.methods import latent_tilt
from tilt_tf.stages import export as export_lib


def serving_record(base, preset, dataset, sizes, calls):
  """p50/p99 seconds of `calls` requests per num_samples in `sizes`."""
  cfg, generator, _, _ = timing.build(base, preset, dataset)
  method = latent_tilt.LatentTilt(generator, cfg.ebm, generator.data_shape)
  record = {'benchmark': 'serving', 'base': base, 'preset': preset,
            'dataset': dataset, 'calls': calls,
            'langevin_steps': cfg.ebm.sample_langevin_steps}
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    path = export_lib.export_sampler(generator, method, cfg.ebm, tmp,
                                     max_samples=max(sizes))
    record['export_s'] = time.perf_counter() - start
    start = time.perf_counter()
    serve = tf.saved_model.load(path).signatures['serving_default']
    record['load_s'] = time.perf_counter() - start
    for n in sizes:
      num = tf.constant(n, tf.int32)
      start = time.perf_counter()
      serve(num_samples=num, seed=tf.constant([0, 0], tf.int32))
      record[f'n{n}_first_call_s'] = time.perf_counter() - start
      latencies = []
      for i in range(calls):
        seed = tf.constant([i + 1, 0], tf.int32)
        start = time.perf_counter()
        out = serve(num_samples=num, seed=seed)
        tf.nest.map_structure(lambda t: t.numpy(), out)
        latencies.append(time.perf_counter() - start)
      record[f'n{n}_p50_s'] = float(np.percentile(latencies, 50))
      record[f'n{n}_p99_s'] = float(np.percentile(latencies, 99))
      record[f'n{n}_samples_per_s'] = n / record[f'n{n}_p50_s']
  record['method'] = (
      'export_sampler with random weights, tf.saved_model.load, then one '
      'warm-up request and `calls` timed requests per num_samples through '
      'serving_default (outputs fetched); p99 of few calls is near their '
      'maximum')
  return record
