"""tilt_tf/user_features.py: the learned feature space for a user's images
(cached, deterministic), its Fréchet score, and that `tilt_tf.tilt` and the
eval stage use it for images instead of the pixel energy distance."""

import os
import types
from unittest import mock

import keras
import ml_collections
import numpy as np
import tensorflow as tf

import tilt_tf
from tilt_tf import fid
from tilt_tf import train_lib
from tilt_tf import user_features
from tilt_tf.errors import UserError
from tilt_tf.stages import evaluate as evaluate_lib

SHAPE = (16, 16, 1)
STEPS = 20


def blobs(n, seed):
  """n uint8 images [n, 16, 16, 1]: a blob at a random place, plus noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:16, :16]
  cy, cx = rng.uniform(3, 13, (2, n, 1, 1))
  x = 220 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6.0)
  x = x + rng.integers(0, 30, (n, 16, 16))
  return np.clip(x, 0, 255).astype(np.uint8)[..., None]


class UserFeaturesTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    user_features._MEMO.clear()  # pylint: disable=protected-access
    self.cache = self.create_tempdir().full_path
    self.train, self.ref = blobs(256, 0), blobs(128, 1)

  def features(self, ext):
    return fid.activations(self.ref, ext)

  def test_supports_images_only(self):
    self.assertTrue(user_features.supports((16, 16, 1)))
    self.assertTrue(user_features.supports((32, 24, 3)))
    self.assertFalse(user_features.supports((8, 8, 1)))
    self.assertFalse(user_features.supports((2,)))
    with self.assertRaises(UserError):
      user_features.extractor(np.zeros((10, 2), np.float32),
                              cache_dir=self.cache)
    with self.assertRaises(UserError):
      user_features.fit(self.train, objective='labels', steps=1)

  def test_fitted_once_then_loaded_from_the_cache(self):
    first = user_features.extractor(self.train, cache_dir=self.cache,
                                    steps=STEPS)
    self.assertFalse(first.info['feature_loaded_from_cache'])
    self.assertStartsWith(first.name, 'learned:contrastive_v')
    self.assertEqual(first.input_shape, SHAPE)
    self.assertLen(os.listdir(os.path.join(self.cache, 'user_features')), 1)
    user_features._MEMO.clear()  # pylint: disable=protected-access
    with mock.patch.object(user_features, 'fit',
                           side_effect=AssertionError('refitted')):
      second = user_features.extractor(self.train, cache_dir=self.cache,
                                       steps=STEPS)
    self.assertTrue(second.info['feature_loaded_from_cache'])
    self.assertEqual(first.name, second.name)
    self.assertAllClose(self.features(first), self.features(second),
                        atol=1e-6)
    self.assertEqual(self.features(first).shape, (128, user_features.FEATURES))

  def test_contrastive_views_and_loss(self):
    x = tf.constant(self.train[:8].astype(np.float32) / 255.0)
    a = user_features._view(x, tf.constant([0, 1]))  # pylint: disable=protected-access
    b = user_features._view(x, tf.constant([0, 2]))  # pylint: disable=protected-access
    self.assertEqual(a.shape, x.shape)
    self.assertAllInRange(a, 0.0, 1.0)
    self.assertAllEqual(a, user_features._view(x, tf.constant([0, 1])))  # pylint: disable=protected-access
    self.assertGreater(float(tf.reduce_max(tf.abs(a - b))), 0.1)
    z = tf.math.l2_normalize(tf.random.stateless_normal([8, 16], [1, 2]), -1)
    noise = 0.05 * tf.random.stateless_normal([8, 16], [3, 4])
    matched, hits = user_features._nt_xent(z, tf.math.l2_normalize(z + noise, -1))  # pylint: disable=protected-access
    shuffled, _ = user_features._nt_xent(z, tf.roll(z, 1, 0))  # pylint: disable=protected-access
    self.assertEqual(float(hits), 1.0)  # Every view finds its partner.
    self.assertLess(float(matched), float(shuffled) - 1.0)
    _, head, meta = user_features.fit(self.train, objective='contrastive',
                                      steps=30)
    self.assertEqual(head.output_shape, (None, 64))
    self.assertLess(meta['final_loss'], np.log(2 * user_features.BATCH - 1))

  def test_deterministic_for_a_seed(self):
    other_cache = self.create_tempdir().full_path
    a = user_features.extractor(self.train, seed=3, cache_dir=self.cache,
                                steps=STEPS)
    b = user_features.extractor(self.train, seed=3, cache_dir=other_cache,
                                steps=STEPS)
    c = user_features.extractor(self.train, seed=4, cache_dir=self.cache,
                                steps=STEPS)
    self.assertFalse(b.info['feature_loaded_from_cache'])  # Fitted again.
    self.assertAllClose(self.features(a), self.features(b), atol=1e-5)
    self.assertGreater(np.abs(self.features(a) - self.features(c)).max(),
                       1e-3)

  def test_fits_inside_a_strategy_scope_as_on_one_device(self):
    one = self.features(user_features.extractor(
        self.train, cache_dir=self.cache, steps=3))
    user_features._MEMO.clear()  # pylint: disable=protected-access
    with tf.distribute.MirroredStrategy(['/cpu:0']).scope():
      ext = user_features.extractor(
          self.train, cache_dir=self.create_tempdir().full_path, steps=3)
      self.assertAllClose(one, self.features(ext), atol=1e-5)

  def test_score_is_zero_for_the_same_set_and_grows_when_corrupted(self):
    for objective in user_features.OBJECTIVES:
      score = user_features.feature_scorer(
          self.train, self.ref, objective=objective, cache_dir=self.cache,
          steps=STEPS)
      self.assertEqual(score.name, 'fd_learned')
      ref = self.ref.astype(np.float32) / 255.0
      same = score(ref)
      other_draw = score(blobs(128, 2).astype(np.float32) / 255.0)
      brighter = score(np.clip(ref + 0.3, 0, 1))
      self.assertLess(abs(same), 0.05 * brighter, objective)  # sqrtm error.
      self.assertGreater(brighter, 2 * other_draw, objective)

  def test_tilt_monitors_images_by_learned_features(self):
    keras.utils.set_random_seed(0)
    decoder = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(256, activation='sigmoid'),
        keras.layers.Reshape(SHAPE)])
    gen = tilt_tf.generator_from_keras(decoder)
    calls = []
    real = user_features.feature_scorer

    def spy(train, reference, seed=0, **kw):
      score = real(train, reference, seed, cache_dir=self.cache, steps=STEPS,
                   **kw)

      def counted(samples):
        calls.append(len(samples))
        return score(samples)

      counted.name = score.name
      return counted

    workdir = self.create_tempdir().full_path
    with mock.patch.object(user_features, 'feature_scorer', spy):
      with self.assertLogs('absl', 'INFO') as logs:
        tilt_tf.tilt(gen, self.train, workdir=workdir, preset='test',
                     steps=2)
    self.assertNotEmpty(calls)  # The monitor scored with it.
    self.assertTrue(any('fd_learned' in line for line in logs.output))
    self.assertFalse(any('energy_distance' in line for line in logs.output))

  def test_cli_monitors_user_images_by_learned_features(self):
    cfg = ml_collections.ConfigDict({
        'data_path': 'images.npz', 'dataset': '', 'data_dir': '',
        'eval': {'classifier_epochs': 0}, 'sample': {'grid': 16},
        'ebm': {'monitor_every': 2, 'monitor_samples': 8, 'patience': 0,
                'sample_langevin_steps': 3, 'steps': 4}})
    for shape, name in ((SHAPE, 'fd_learned'), ((2,), 'energy_distance')):
      data = np.zeros((40,) + shape, np.float32)
      pipeline = types.SimpleNamespace(
          config=cfg, method=types.SimpleNamespace(stage='tilt'),
          data_shape=shape, train=data[:32], validation=data[32:], seed=0,
          run=None, strategy=None)
      with mock.patch.object(train_lib.tilting, 'TiltTrainer') as trainer:
        train_lib.Pipeline._make_trainer(pipeline, keep=1)  # pylint: disable=protected-access
      self.assertEqual(trainer.call_args.kwargs['score_fn'].name, name)

  def test_eval_stage_fits_on_train_and_scores_against_test(self):
    folder = self.create_tempdir().full_path
    for name in ('base', 'tilted'):
      np.savez(os.path.join(folder, f'samples_{name}.npz'),
               images=blobs(64, 7), latents=np.zeros((64, 4), np.float32))
    run_dir = types.SimpleNamespace(
        path=lambda *p: os.path.join(folder, *p),
        record_time=lambda *a: None,
        writer=tf.summary.create_file_writer(folder))
    with mock.patch.object(user_features, 'DEFAULT_STEPS', STEPS), \
         mock.patch.dict(os.environ, {'TILT_TF_CACHE': self.cache}):
      metrics = evaluate_lib.evaluate(
          run_dir, 'user_data', 0, header={}, test_data=self.ref,
          train_data=self.train)
    for name in ('base', 'tilted'):
      self.assertIn('energy_distance', metrics[name])
      self.assertStartsWith(metrics[name]['feature_extractor'], 'learned:')
      self.assertEqual(metrics[name]['n_reference'], len(self.ref))
    self.assertEqual(metrics['base']['fd_learned'],
                     metrics['tilted']['fd_learned'])  # The same samples.

  def test_eval_scores_user_images_in_learned_features(self):
    ext = user_features.extractor(self.train, cache_dir=self.cache,
                                  steps=STEPS)
    samples = blobs(64, 5)
    out = evaluate_lib._score(  # pylint: disable=protected-access
        'tilted', samples, 'user_data', 0, None, ext, self.ref)
    self.assertCountEqual(
        ['energy_distance', 'n', 'fd_learned', 'precision', 'recall',
         'n_reference', 'feature_extractor', 'feature_objective'], out)
    self.assertEqual(out['feature_extractor'], ext.name)
    self.assertGreater(out['fd_learned'], 0)
    self.assertBetween(out['recall'], 0, 1)


if __name__ == '__main__':
  tf.test.main()
