"""Sampling without a chain, measured on a finished run (#37): the distilled
flow's samples/s against the Langevin sampler's, both drawn here back to
back, the exported `sample_distilled` latency against `serving_default`,
and the distill stage's time against the tilt stage's (timings.json).

  .venv/bin/python -m benchmarks.distill --workdir=runs/glf_fashion_mnist_small

Prints one JSON object.
"""

import json
import os
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

import tilt_tf
from tilt_tf import io_utils
from tilt_tf.stages import distill as distill_stage

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'A run folder whose distill stage ran.')
flags.DEFINE_integer('langevin_n', 1000, 'Langevin samples to time.')
flags.DEFINE_integer('distilled_n', 10_000, 'Distilled samples to time.')
flags.DEFINE_integer('calls', 30, 'Timed requests per signature and size.')


def _rate(fn, n):
  fn(min(n, 500))  # Warm-up: tracing.
  start = time.perf_counter()
  fn(n)
  return n / (time.perf_counter() - start)


def _latency(signature, calls, **inputs):
  signature(**inputs)  # Warm-up.
  times = []
  for i in range(calls):
    inputs['seed'] = tf.constant([i + 1, 0], tf.int32)
    start = time.perf_counter()
    out = signature(**inputs)
    tf.nest.map_structure(lambda t: t.numpy(), out)
    times.append(time.perf_counter() - start)
  return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main(argv):
  del argv
  tilted = tilt_tf.load(FLAGS.workdir)
  if tilted.flow is None:
    raise SystemExit(f'{FLAGS.workdir} has no distilled flow: run its '
                     'distill stage first (--stage=distill)')
  record = {'benchmark': 'distill', 'workdir': os.path.abspath(FLAGS.workdir),
            'latent_dim': tilted.generator.latent_dim,
            'langevin_steps': tilted.config.ebm.sample_langevin_steps}
  record['langevin_samples_per_s'] = _rate(
      lambda n: tilted.sample(n, seed=1, verbose=False), FLAGS.langevin_n)
  record['distilled_samples_per_s'] = _rate(
      lambda n: distill_stage.draw_distilled(tilted.generator, tilted.flow, n,
                                             seed=1), FLAGS.distilled_n)
  record['distilled_over_langevin'] = (record['distilled_samples_per_s'] /
                                       record['langevin_samples_per_s'])
  with tempfile.TemporaryDirectory() as tmp:
    model = tf.saved_model.load(tilted.export(tmp))
    for name in ('sample_distilled', 'serving_default'):
      for n in (1, 64):
        p50, p99 = _latency(model.signatures[name], FLAGS.calls,
                            num_samples=tf.constant(n, tf.int32),
                            seed=tf.constant([0, 0], tf.int32))
        record[f'{name}_n{n}_p50_s'], record[f'{name}_n{n}_p99_s'] = p50, p99
  timings = io_utils.read_json(os.path.join(FLAGS.workdir, 'timings.json'), {})
  for stage in ('tilt', 'sample', 'distill', 'distill_sample'):
    if stage in timings:
      record[f'{stage}_stage_s'] = timings[stage]['seconds']
  if 'tilt' in timings and 'distill' in timings:
    record['distill_over_tilt_stage'] = (timings['distill']['seconds'] /
                                         timings['tilt']['seconds'])
  record['cpu'] = next((l.split(':', 1)[1].strip() for l in open(
      '/proc/cpuinfo') if l.startswith('model name')), 'unknown')
  record['cores'] = os.cpu_count()
  print(json.dumps(record))


if __name__ == '__main__':
  flags.mark_flag_as_required('workdir')
  app.run(main)
