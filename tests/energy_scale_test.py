"""The sampling energy scale (tilt_tf/runtime/energy_scale.py): beta in
p0(z) exp(-beta E(G(z))) changes the chains, is chosen on a score, stored
for one energy checkpoint, reused and applied."""

import os

import numpy as np
import tensorflow as tf

from tilt_tf import io_utils
from tilt_tf.runtime import energy_scale
from tilt_tf.runtime import run_dir as run_dir_lib
from tests import latent_tilt_test


def _score_by_mean(target):
  """A scorer that prefers samples whose mean is close to `target`."""
  def score(samples):
    return float(abs(np.mean(samples) - target))
  score.name = 'mean_gap'
  return score


class EnergyScaleTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.method, self.gen = latent_tilt_test.make(sample_step_size=0.3)
    self.run = run_dir_lib.RunDir(self.get_temp_dir(), {})

  def test_scale_changes_the_chain_and_one_is_the_model(self):
    seed = tf.constant([3, 1])
    plain = self.method.sample(16, seed, 5)
    one = self.method.sample(16, seed, 5, energy_scale=tf.constant(1.0))
    self.assertAllEqual(plain['z_tilted'], one['z_tilted'])
    four = self.method.sample(16, seed, 5, energy_scale=tf.constant(4.0))
    self.assertNotAllClose(four['z_tilted'], one['z_tilted'])
    self.assertAllEqual(four['z_base'], one['z_base'])  # Same chain starts.
    # The method's own scale is what sample() uses by default.
    self.method.latent_ebm.sampling_scale.assign(4.0)
    self.assertAllEqual(self.method.sample(16, seed, 5)['z_tilted'],
                        four['z_tilted'])

  def test_choose_keeps_the_best_scored_scale_and_stores_it(self):
    seed = tf.constant([0, 7])  # rng.MONITOR of seed 0.
    means = {s: float(np.mean(self.method.sample(
        64, seed, 5, energy_scale=tf.constant(s))['x_tilted']))
             for s in (1.0, 3.0, 9.0)}
    target = means[3.0]
    chosen = energy_scale.choose(
        self.run, self.method, _score_by_mean(target), grid=(3.0, 9.0),
        num_samples=64, num_steps=5, seed=0,
        energy_checkpoint='/x/checkpoints/tilt_best/ckpt-40')
    self.assertEqual(chosen, 3.0)
    self.assertEqual(float(self.method.latent_ebm.sampling_scale.numpy()), 3.0)
    stored = io_utils.read_json(self.run.path(energy_scale.FILE))
    self.assertEqual([r['scale'] for r in stored['scores']], [1.0, 3.0, 9.0])
    self.assertEqual(stored['score_name'], 'mean_gap')
    # Applied to the same energy (another folder prefix, same checkpoint).
    self.method.latent_ebm.sampling_scale.assign(1.0)
    self.assertEqual(energy_scale.apply(
        self.run.workdir, self.method, 'elsewhere/tilt_best/ckpt-40'), 3.0)
    # Another energy gets the config's default, not this choice.
    self.assertEqual(energy_scale.apply(
        self.run.workdir, self.method, 'x/tilt_best/ckpt-60', default=2.0),
                     2.0)

  def test_one_is_kept_unless_another_scale_is_clearly_better(self):
    scores = {1.0: 10.0, 2.0: 9.95, 4.0: 12.0}  # 2 is 0.5 % better: noise.
    rows = lambda d: [{'scale': k, 'score': v} for k, v in sorted(d.items())]
    self.assertEqual(energy_scale._best(rows(scores))['scale'], 1.0)  # pylint: disable=protected-access
    scores[2.0] = 9.8  # 2 % better.
    self.assertEqual(energy_scale._best(rows(scores))['scale'], 2.0)  # pylint: disable=protected-access
    scores[1.0] = float('inf')  # Scale 1 diverged: the best finite one.
    self.assertEqual(energy_scale._best(rows(scores))['scale'], 2.0)  # pylint: disable=protected-access

  def test_a_choice_made_is_reused_without_sampling(self):
    ckpt = 'c/tilt_best/ckpt-10'
    energy_scale.choose(self.run, self.method, _score_by_mean(0.0),
                        grid=(2.0,), num_samples=16, num_steps=2, seed=0,
                        energy_checkpoint=ckpt)
    first = io_utils.read_json(self.run.path(energy_scale.FILE))

    def fail(samples):
      raise AssertionError('scored again')
    again = energy_scale.choose(self.run, self.method, fail, grid=(2.0,),
                                num_samples=16, num_steps=2, seed=0,
                                energy_checkpoint=ckpt)
    self.assertEqual(again, first['energy_scale'])

  def test_diverged_scale_scores_inf_and_is_not_kept(self):
    calls = []

    def score(samples):
      calls.append(len(samples))
      return 1.0
    method, _ = latent_tilt_test.make(
        fn=lambda z: tf.tanh(z @ latent_tilt_test.W), sample_step_size=0.3)
    real_sample = method.sample

    def sample(n, seed, steps, energy_scale=None, **kw):
      out = dict(real_sample(n, seed, steps, energy_scale=energy_scale, **kw))
      if energy_scale is not None and float(energy_scale) > 1.5:
        out['x_tilted'] = out['x_tilted'] * np.nan
      return out
    method.sample = sample
    chosen = energy_scale.choose(self.run, method, score, grid=(5.0,),
                                 num_samples=8, num_steps=2, seed=0,
                                 energy_checkpoint='a/ckpt-1')
    self.assertEqual(chosen, 1.0)
    self.assertEqual(len(calls), 2)  # Scale 1 and the base; not the NaNs.

  def test_tilted_sample_takes_a_scale_for_one_call(self):
    import configs  # pylint: disable=g-import-not-at-top
    from tilt_tf import api  # pylint: disable=g-import-not-at-top
    from tilt_tf.errors import UserError  # pylint: disable=g-import-not-at-top
    config = configs.get_config('generator', None, 'test')
    tilted = api.Tilted(self.gen, self.method, config, self.run.workdir, 'x')
    one = tilted.sample(8, seed=1, verbose=False)
    four = tilted.sample(8, seed=1, verbose=False, energy_scale=4.0)
    self.assertAllEqual(four['base_latents'], one['base_latents'])
    self.assertNotAllClose(four['latents'], one['latents'])
    self.method.latent_ebm.sampling_scale.assign(4.0)  # The run's choice.
    self.assertAllEqual(tilted.sample(8, seed=1, verbose=False)['latents'],
                        four['latents'])
    with self.assertRaisesRegex(UserError, 'energy_scale=0.0 .* > 0'):
      tilted.sample(8, energy_scale=0.0)

  def test_report_follows_the_kept_energy_among_tied_checks(self):
    # monitor.json rounds: steps 2 and 4 tie there, the energy kept is 4's.
    curve = [{'step': 2, 'score': 3.87, 'base_score': 3.9},
             {'step': 4, 'score': 3.87, 'base_score': 3.9},
             {'step': 6, 'score': 3.95, 'base_score': 3.9}]
    io_utils.write_json(self.run.path('monitor.json'), curve)
    io_utils.write_json(self.run.path(energy_scale.FILE), {
        'energy_scale': 2.0, 'energy_checkpoint': 'r/tilt_best/ckpt-4',
        'scores': [{'scale': 1.0, 'score': 3.87},
                   {'scale': 2.0, 'score': 3.5}]})
    report = energy_scale.report(self.run.workdir)
    self.assertEqual((report['step'], report['energy_scale'], report['score'],
                      report['score_at_scale_1']), (4, 2.0, 3.5, 3.87))
    # Without a chosen scale: the first best check, as scored.
    os.remove(self.run.path(energy_scale.FILE))
    self.assertEqual(energy_scale.report(self.run.workdir)['step'], 2)

  def test_no_grid_no_choice(self):
    self.assertIsNone(energy_scale.choose(
        self.run, self.method, _score_by_mean(0.0), grid=(), num_samples=8,
        num_steps=2, seed=0, energy_checkpoint='a/ckpt-1'))
    self.assertFalse(os.path.exists(self.run.path(energy_scale.FILE)))


if __name__ == '__main__':
  tf.test.main()
