"""Distillation (tilt_tf/distill.py, tilt_tf/latent_mixture.py,
tilt_tf/stages/distill.py): on a 2-D latent whose tilted density is known
exactly, the flow's and the mixture's samples must be closer to it than the
prior is; a resumed fit gives the same flow, a refit the same mixture."""

import json
import os
import shutil
import tempfile

from absl.testing import parameterized
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tilt_tf import distill
from tilt_tf import latent_mixture
from tilt_tf import toy_metrics
from tilt_tf.errors import UserError
from tilt_tf.generators import adapters
from tilt_tf.runtime import loop as loop_lib
from tilt_tf.runtime import run_dir as run_dir_lib
from tilt_tf.stages import distill as distill_stage


def _cfg(**kw):
  c = ml_collections.ConfigDict(dict(
      couplings=4, hidden=64, steps=600, batch_size=256, learning_rate=2e-3,
      validation=500, eval_every=100))
  c.update(kw)
  return c


LOOP = loop_lib.LoopSettings(steps_per_loop=50, checkpoint_every=100,
                             log_every=100)


def ring():
  """G(z) = z and an energy whose tilt of N(0, I) is a ring of radius ~1.8:
  the exact tilted density, from toy_metrics' grid sampler."""
  gen = adapters.generator_from_function(lambda z: z, 2)
  energy = lambda x: 4.0 * tf.square(tf.norm(x, axis=-1) - 2.0)
  return gen, energy


def fit(workdir, latents, cfg, seed=0):
  with run_dir_lib.RunDir(workdir, {'test': 'distill'}) as run:
    flow = distill_stage.make_flow(2, cfg, seed)
    distill.fit(run, tf.distribute.get_strategy(), flow, latents, cfg=cfg,
                seed=seed, settings=LOOP)
  return distill.restore_flow(workdir, 2, cfg, seed)


def check_learns_the_ring(test, cfg):
  """q fitted to exact tilted draws of the ring: nearly as close to the ring
  as exact draws, far closer than the prior; its samples are draws of its
  own density (as likely under q as exact draws: a mixture's means alone
  would be far likelier; a kernel density's means repeat, which the
  distinctness check catches), distinct and stateless. Returns (q, its samples, the latents
  it was fitted to)."""
  gen, energy = ring()
  latents = toy_metrics.exact_tilted_samples(gen, energy, 5000, seed=0)
  reference = toy_metrics.exact_tilted_samples(gen, energy, 2000, seed=1)
  q = fit(test.create_tempdir().full_path, latents, cfg)
  out = distill_stage.draw_distilled(gen, q, 2000, seed=3)
  test.assertEqual(out['x'].shape, (2000, 2))
  distilled = toy_metrics.energy_distance(out['x'], reference)
  prior = toy_metrics.energy_distance(
      np.random.default_rng(4).normal(size=(2000, 2)), reference)
  data = toy_metrics.energy_distance(latents[:2000], reference)
  test.assertLess(distilled, prior / 4)
  test.assertLess(distilled, data + 0.02)
  radius = np.linalg.norm(out['x'], axis=1)
  test.assertAllClose(np.median(radius), np.median(
      np.linalg.norm(reference, axis=1)), atol=0.1)
  test.assertAllClose(np.mean(q.log_prob(out['z'])),
                      np.mean(q.log_prob(reference)), atol=0.15)
  test.assertLen(np.unique(out['z'].round(4), axis=0), 2000)
  # Stateless: the same seed, the same samples; another, others.
  again = distill_stage.draw_distilled(gen, q, 2000, seed=3)
  np.testing.assert_array_equal(again['z'], out['z'])
  other = distill_stage.draw_distilled(gen, q, 2000, seed=4)
  test.assertGreater(np.abs(other['z'] - out['z']).mean(), 0.5)
  return q, out, latents


class DistillTest(tf.test.TestCase):

  def test_flow_learns_an_exact_tilted_density(self):
    check_learns_the_ring(self, _cfg())

  def test_resume_mid_fit_gives_the_same_flow(self):
    gen, energy = ring()
    latents = toy_metrics.exact_tilted_samples(gen, energy, 1000, seed=0)
    cfg = _cfg(steps=200, hidden=16, couplings=2, validation=100,
               eval_every=50)
    straight = fit(self.create_tempdir().full_path, latents, cfg)
    workdir = self.create_tempdir().full_path
    fit(workdir, latents, _cfg(**dict(cfg, steps=100)))  # "Killed" at 100.
    with self.assertLogs('absl', level='INFO') as logs:
      resumed = fit(workdir, latents, cfg)
    checks = [l for l in logs.output if 'distill step' in l]
    # It went on from step 100, not from the start.
    self.assertEqual([c.split('distill step ')[1].split(':')[0]
                      for c in checks], ['150', '200'])
    for a, b in zip(straight.trainable_variables,
                    resumed.trainable_variables):
      self.assertAllClose(a, b, rtol=1e-5, atol=1e-6)
    self.assertTrue(os.path.isdir(os.path.join(workdir, 'checkpoints',
                                               'distill_best')))


def _mixture_cfg(**kw):
  c = ml_collections.ConfigDict(dict(
      model='mixture', components=24, reg_covar=1e-3, em_iterations=100,
      validation=500))
  c.update(kw)
  return c


class MixtureTest(tf.test.TestCase):

  def test_mixture_learns_an_exact_tilted_density(self):
    q, _, _ = check_learns_the_ring(self, _mixture_cfg())
    self.assertIsInstance(q, latent_mixture.LatentMixture)
    # log_prob is the mixture's density: it integrates to ~1 on a grid.
    grid = np.stack(np.meshgrid(*[np.linspace(-4, 4, 161)] * 2), -1)
    mass = np.exp(q.log_prob(grid.reshape(-1, 2)).numpy()).sum() * 0.05 ** 2
    self.assertAllClose(mass, 1.0, atol=0.02)

  def test_kernel_density_learns_an_exact_tilted_density(self):
    cfg = _mixture_cfg(model='kde', bandwidth=0.1)
    q, _, latents = check_learns_the_ring(self, cfg)
    # One kernel per latent fitted (the rest held out), each the latents'
    # covariance scaled by bandwidth^2.
    self.assertEqual(q.components, 5000 - cfg.validation)
    self.assertAllClose(np.sort(q.means.numpy(), 0), np.sort(
        distill._split_latents(latents, cfg.validation, 0)[0], 0))
    cov = q.scale_tril.numpy() @ q.scale_tril.numpy().T
    self.assertAllClose(cov, 0.01 * (np.cov(q.means.numpy().T) +
                                     1e-3 * np.eye(2)), rtol=1e-4)
    grid = np.stack(np.meshgrid(*[np.linspace(-4, 4, 161)] * 2), -1)
    mass = np.exp(q.log_prob(grid.reshape(-1, 2)).numpy()).sum() * 0.05 ** 2
    self.assertAllClose(mass, 1.0, atol=0.02)

  def test_log_prob_is_the_tfp_mixture_density(self):
    q = latent_mixture.LatentMixture(3, 2)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov, w, mu = a @ a.T + np.eye(3), [.2, .5, .3], rng.normal(size=(3, 3))
    q.assign(w, mu, cov)  # Another k than it was built with.
    z = rng.normal(size=(6, 3)).astype(np.float32)
    tfd = tfp.distributions
    ref = tfd.MixtureSameFamily(
        tfd.Categorical(probs=np.float32(w)),
        tfd.MultivariateNormalTriL(np.float32(mu), np.float32(
            np.linalg.cholesky([cov] * 3))))
    self.assertAllClose(q.log_prob(z), ref.log_prob(z), rtol=1e-5)

  def test_refit_is_the_same_and_a_finished_fit_is_reused(self):
    gen, energy = ring()
    latents = toy_metrics.exact_tilted_samples(gen, energy, 1000, seed=0)
    cfg = _mixture_cfg(components=4, validation=100)
    first = fit(self.create_tempdir().full_path, latents, cfg)
    workdir = self.create_tempdir().full_path
    second = fit(workdir, latents, cfg)
    for a, b in zip(first.trainable_variables, second.trainable_variables):
      self.assertAllEqual(a, b)
    with self.assertLogs('absl', level='INFO') as logs:
      third = fit(workdir, latents, cfg)
    self.assertTrue(any('reusing' in l for l in logs.output), logs.output)
    self.assertFalse(any('fitted by EM' in l for l in logs.output))
    for a, b in zip(first.trainable_variables, third.trainable_variables):
      self.assertAllEqual(a, b)
    # Restored as fitted even where the config now names other settings.
    back = distill.restore_flow(workdir, 2, _mixture_cfg(components=7), 0)
    self.assertEqual(back.components, 4)
    self.assertAllEqual(back.means, first.means)
    self.assertIsNone(distill.restore_flow(
        self.create_tempdir().full_path, 2, cfg, 0))


class ApiTest(tf.test.TestCase, parameterized.TestCase):
  """Each q through the API, a reload and the export, on copies of one tilt
  (made once for the three cases: the tilt is the same for each q)."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    import tilt_tf  # pylint: disable=g-import-not-at-top
    w = np.random.default_rng(0).normal(0, 0.5, (3, 16)).astype(np.float32)
    cls.gen = tilt_tf.generator_from_function(
        lambda z: tf.reshape(tf.sigmoid(z @ w), [-1, 4, 4, 1]), 3)
    data = (np.random.default_rng(1).random((200, 4, 4, 1)) * 255).astype(
        np.uint8)
    cls.tilted_run = tempfile.mkdtemp()
    tilt_tf.tilt(cls.gen, data, workdir=cls.tilted_run, preset='test',
                 verbose=False)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tilted_run, ignore_errors=True)
    super().tearDownClass()

  @parameterized.parameters('kde', 'mixture', 'flow')
  def test_distill_sample_load_export(self, model):
    import tilt_tf  # pylint: disable=g-import-not-at-top
    gen = self.gen
    workdir = os.path.join(self.create_tempdir().full_path, 'run')
    shutil.copytree(self.tilted_run, workdir)
    tilted = tilt_tf.load(workdir, generator=gen)
    with self.assertRaisesRegex(UserError, "distill"):
      tilted.sample(4, method='distilled')
    tilted.distill(num_latents=200, verbose=False, steps=30, model=model)
    self.assertEqual(type(tilted.flow).__name__,
                     {'kde': 'LatentMixture', 'mixture': 'LatentMixture',
                      'flow': 'LatentFlow'}[model])
    out = tilted.sample(8, seed=5, method='distilled')
    self.assertEqual(out['samples'].shape, (8, 4, 4, 1))
    self.assertEqual(out['latents'].shape, (8, 3))
    # A later session gets the same q back (run.json keeps its settings).
    again = tilt_tf.load(workdir, generator=gen)
    np.testing.assert_array_equal(
        again.sample(8, seed=5, method='distilled')['latents'],
        out['latents'])
    version = tilted.export(os.path.join(workdir, 'export'))
    served = tf.saved_model.load(version).signatures['sample_distilled'](
        num_samples=tf.constant(8), seed=tf.constant([5, 1000]))
    self.assertAllClose(served['latents'], out['latents'], atol=1e-5)
    np.testing.assert_allclose(served['images'].numpy() / 255.,
                               out['samples'], atol=1 / 255.)
    if model != 'mixture':
      return
    # A run folder written before `bandwidth` existed (its run.json lacks
    # it): loaded, it distills with the setting's default, or the one given.
    path = os.path.join(workdir, 'run.json')
    with open(path) as f:
      run = json.load(f)
    del run['config']['distill']['bandwidth']
    with open(path, 'w') as f:
      json.dump(run, f)
    old = tilt_tf.load(workdir, generator=gen)
    old.distill(num_latents=200, verbose=False, model='kde')
    self.assertEqual(old.flow.components, 200 - 16)  # The test preset's.
    old.distill(num_latents=200, verbose=False, bandwidth=0.2)

if __name__ == '__main__':
  tf.test.main()
