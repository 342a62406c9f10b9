"""The pipeline under MirroredStrategy on 2 logical CPU devices.

Two replicas must compute what one device does for the same global batch
and seed: the data split is in order and the noise is a function of (seed,
step, global example index) (`tilt_tf/rng.py`). They agree up to float
rounding only: each replica sums its half batch's gradient and the
all-reduce adds the two halves, where one device sums all rows in one
reduction (and its kernels see 64 rows, not 32), so sums round differently
(~1e-7 relative in float32, measured <= 4e-7 over the `test` preset's 40 base
+ 20 EBM steps). The tolerance below, 1e-5 relative, leaves room for that to
grow over the steps without admitting a different noise draw (which moves
the samples by O(1)).
"""

import json
import os
import types
from unittest import mock

import numpy as np
import tensorflow as tf

import configs
from tests import replicas_testutil
from tilt_tf import replay
from tilt_tf import train_lib
from tilt_tf.methods import latent_tilt
from tilt_tf.runtime import build
from tilt_tf.runtime import strategy as strategy_lib
from tilt_tf.errors import UserError

RTOL = 1e-5
ATOL = 1e-6


def _flat_metrics(metrics, prefix=''):
  """metrics.json as {dotted key: value}."""
  out = {}
  if isinstance(metrics, dict):
    for k, v in metrics.items():
      out.update(_flat_metrics(v, f'{prefix}{k}.'))
  elif isinstance(metrics, list):
    for i, v in enumerate(metrics):
      out.update(_flat_metrics(v, f'{prefix}{i}.'))
  else:
    out[prefix[:-1]] = metrics
  return out


class DistributeTest(tf.test.TestCase):

  def _checkpoint(self, workdir, which):
    return tf.train.load_checkpoint(tf.train.latest_checkpoint(
        os.path.join(workdir, 'checkpoints', which)))

  def test_two_replicas_match_one_device(self):
    strategy = replicas_testutil.two_replicas()
    self.assertEqual(strategy.num_replicas_in_sync, 2)
    config = configs.get_config('mlp_vae', '25gaussians', 'test')
    two_dir = self.create_tempdir().full_path
    one_dir = self.create_tempdir().full_path
    two = train_lib.run(config, two_dir, strategy=strategy)
    one = train_lib.run(config, one_dir, strategy=tf.distribute.get_strategy())

    # Figures: the same keys, strings equal, numbers close.
    flat_one, flat_two = _flat_metrics(one), _flat_metrics(two)
    self.assertEqual(sorted(flat_one), sorted(flat_two))
    for k, v in flat_one.items():
      if isinstance(v, str):
        self.assertEqual(v, flat_two[k], k)
      else:
        self.assertAllClose(v, flat_two[k], rtol=RTOL, atol=ATOL, msg=k)
    with open(os.path.join(two_dir, 'metrics.json')) as f:
      self.assertEqual(json.load(f), two)
    self.assertTrue(np.isfinite(two['tilted']['energy_distance']))

    for name in ('samples_base.npz', 'samples_tilted.npz'):
      a = np.load(os.path.join(one_dir, name))
      b = np.load(os.path.join(two_dir, name))
      self.assertEqual(a['samples'].shape, (500, 2))
      self.assertTrue(np.all(np.isfinite(b['samples'])))
      for key in ('samples', 'latents'):
        self.assertAllClose(a[key], b[key], rtol=RTOL, atol=ATOL,
                            msg=f'{name}:{key}')

    # Final weights, optimizer slots and step counters of every stage (not
    # the wall-clock `seconds` nor the object graph's layer names).
    for which in ('base', 'tilt', 'tilt_best'):
      a = self._checkpoint(one_dir, which)
      b = self._checkpoint(two_dir, which)
      names = sorted(n for n in a.get_variable_to_shape_map()
                     if n.split('/')[0] in ('generator', 'energy', 'optimizer',
                                            'step'))
      self.assertIn('energy' if which != 'base' else 'generator',
                    {n.split('/')[0] for n in names})
      for n in names:
        va, vb = a.get_tensor(n), b.get_tensor(n)
        if isinstance(va, np.ndarray) and va.dtype.kind == 'f':
          self.assertAllClose(va, vb, rtol=RTOL, atol=ATOL,
                              msg=f'{which}:{n}')
        else:
          self.assertAllEqual(va, vb, msg=f'{which}:{n}')

  def test_replay_buffers_refuse_replicas(self):
    # Persistent chains' buffers are not mirrored: one line, for both users.
    config = configs.get_config('mlp_vae', '25gaussians', 'test')
    config.ebm.replay_buffer = 16
    with replicas_testutil.two_replicas().scope():
      with self.assertRaisesRegex(UserError, r'^--base=pixel_ebm runs on one '
                                  r'device .*drop --num_cpu_devices$'):
        replay.ReplayBuffer(8, (2,), owner='--base=pixel_ebm')
      with self.assertRaisesRegex(UserError, 'ebm.replay_buffer > 0 runs on '
                                  'one device'):
        latent_tilt.LatentTilt(build.make_generator(config, (2,), None),
                               config.ebm, (2,))


def _tf_config(chief=0, workers=2, task=('worker', 0)):
  cluster = {'worker': [f'localhost:{1000 + i}' for i in range(workers)]}
  if chief:
    cluster['chief'] = ['localhost:999']
  return json.dumps({'cluster': cluster,
                     'task': {'type': task[0], 'index': task[1]}})


class MultiWorkerConfigTest(tf.test.TestCase):
  """TF_CONFIG handling (the 2-process run is benchmarks/multiworker.sh)."""

  def test_cluster_size(self):
    for value, size in ((None, 0), ('', 0), (_tf_config(workers=1), 1),
                        (_tf_config(workers=2), 2),
                        (_tf_config(chief=1, workers=1), 2)):
      env = {} if value is None else {'TF_CONFIG': value}
      with mock.patch.dict(os.environ, env, clear=True):
        self.assertEqual(strategy_lib.cluster_size(), size, value)

  def test_bad_tf_config_is_a_user_error(self):
    for value in ('{not json', '[]', '{"task": {}}'):
      with mock.patch.dict(os.environ, {'TF_CONFIG': value}):
        with self.assertRaisesRegex(UserError, 'TF_CONFIG'):
          strategy_lib.make_strategy()

  def test_logical_devices_and_workers_do_not_mix(self):
    with mock.patch.dict(os.environ, {'TF_CONFIG': _tf_config()}):
      with self.assertRaisesRegex(UserError, 'num_cpu_devices'):
        strategy_lib.make_strategy(num_cpu_devices=2)

  def test_worker_workdir(self):
    def fake(task_type, task_id, chief):
      return types.SimpleNamespace(
          cluster_resolver=types.SimpleNamespace(task_type=task_type,
                                                 task_id=task_id),
          extended=types.SimpleNamespace(should_checkpoint=chief))

    for strategy, workdir, mine in (
        (fake('worker', 0, True), '/r/run/', '/r/run/'),  # The chief.
        (fake('worker', 1, False), '/r/run/', '/r/run_worker1'),
        (fake('worker', 0, False), '/r/run', '/r/run_worker0'),  # + a chief.
        (tf.distribute.get_strategy(), '/r/run', '/r/run')):
      self.assertEqual(strategy_lib.worker_workdir(workdir, strategy), mine)


if __name__ == '__main__':
  replicas_testutil.two_replicas()
  tf.test.main()
