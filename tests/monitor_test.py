"""The §5.3 monitor (tilt_tf/runtime/monitor.py, monitor_actions.py) on a
one-variable method with a scripted scorer: which steps it checks, the best
it keeps, when patience stops it, what a resumed monitor keeps."""

import math

import numpy as np
import tensorflow as tf

from tests import fake_method_testutil as fakes
from tilt_tf import io_utils
from tilt_tf.runtime import monitor as monitor_lib
from tilt_tf.runtime import monitor_actions
from tilt_tf.runtime import run_dir as run_dir_lib


class FakeManager:
  """Records the checkpoint numbers `SaveBest` saves."""

  def __init__(self):
    self.saved = []

  def save(self, checkpoint_number):
    self.saved.append(checkpoint_number)


class MonitorTest(tf.test.TestCase):

  def make(self, run, tilted_scores, every=10, total=100, patience=0,
           base_score=9.0):
    scores = []
    for s in tilted_scores:
      scores += [s, base_score]  # A check scores tilted, then base.
    manager = FakeManager()
    monitor = monitor_lib.Monitor(
        run, fakes.OneVariableMethod(w=1.0),
        fakes.scripted_scorer(scores, 'fake'), manager,
        settings=monitor_lib.MonitorSettings(
            every=every, num_samples=5, num_steps=3, patience=patience),
        total=total, seed=3)
    return monitor, manager

  def run_dir(self, workdir=None):
    return run_dir_lib.RunDir(workdir or self.create_tempdir().full_path, {})

  def test_checks_due_steps_only(self):
    with self.run_dir() as run:
      monitor, _ = self.make(run, [5.0, 4.0, 3.0, 2.0], every=30, total=100)
      verdicts = {s: monitor(s) for s in (10, 30, 45, 60, 90, 100)}
    self.assertEqual(verdicts, {10: None, 30: False, 45: None, 60: False,
                                90: False, 100: False})
    self.assertEqual([c['step'] for c in monitor.curve], [30, 60, 90, 100])

  def test_keeps_the_best_and_patience_stops(self):
    with self.run_dir() as run:
      monitor, manager = self.make(run, [3.0, 1.0, 2.0, 1.5, 0.5],
                                   patience=2)
      with self.assertLogs('absl', level='INFO') as logs:
        verdicts = [monitor(s) for s in (10, 20, 30, 40)]
      curve = io_utils.read_json(run.path('monitor.json'))
    self.assertEqual(verdicts, [False, False, False, True])
    self.assertTrue(monitor.stopped)
    self.assertEqual(manager.saved, [10, 20])  # New bests only.
    self.assertEqual(float(monitor.best_score.numpy()), 1.0)
    self.assertEqual(int(monitor.best_step.numpy()), 20)
    self.assertEqual(curve, [
        {'step': 10, 'metric': 'fake', 'score': 3.0, 'base_score': 9.0},
        {'step': 20, 'metric': 'fake', 'score': 1.0, 'base_score': 9.0},
        {'step': 30, 'metric': 'fake', 'score': 2.0, 'base_score': 9.0},
        {'step': 40, 'metric': 'fake', 'score': 1.5, 'base_score': 9.0}])
    self.assertIn('tilt monitor step 40: fake 1.50000 (base 9.00000; best '
                  '1.00000 at step 20)', '\n'.join(logs.output))

  def test_no_patience_never_stops(self):
    with self.run_dir() as run:
      monitor, _ = self.make(run, [1.0] + [2.0] * 5)
      self.assertEqual([monitor(s) for s in range(10, 70, 10)], [False] * 6)

  def test_check_samples_from_seed_7(self):
    with self.run_dir() as run:
      monitor, _ = self.make(run, [1.0])
      out = monitor.check(10)
    self.assertAllEqual(out['samples']['x_base'],
                        tf.random.stateless_normal([5, 2], [3, 7]))
    self.assertEqual((out['score'], out['base_score']), (1.0, 9.0))

  def test_non_finite_samples_score_inf_without_the_scorer(self):
    with self.run_dir() as run:
      monitor, _ = self.make(run, [])  # The scorer would raise.
      with self.assertLogs('absl', level='WARNING') as logs:
        score = monitor.score(np.array([[np.nan, 1.0], [0.0, 0.0]]))
    self.assertEqual(score, math.inf)
    self.assertIn('1 of 2 samples are not finite', logs.output[0])
    self.assertEqual(monitor_lib.finite_rows([[np.inf, 0], [0, 0], [1, 1]]),
                     1)

  def test_resumed_monitor_drops_later_checks_and_keeps_its_state(self):
    workdir = self.create_tempdir().full_path
    with self.run_dir(workdir) as run:
      first, _ = self.make(run, [3.0, 1.0, 2.0], patience=3)
      for s in (10, 20, 30):
        first(s)
      ckpt = tf.train.Checkpoint(**first.checkpoint_items())
      path = ckpt.write(run.path('state', 'ckpt'))
    names = [n for n, _ in tf.train.list_variables(path)]
    for key in ('best_score', 'best_step', 'checks_since_best'):
      self.assertIn(f'{key}/.ATTRIBUTES/VARIABLE_VALUE', names)
    with self.run_dir(workdir) as run:
      second, _ = self.make(run, [0.5], patience=3)
      tf.train.Checkpoint(**second.checkpoint_items()).read(path)
      second.resume(20)  # Killed after the check at 30, before its save.
      self.assertEqual([c['step'] for c in second.curve], [10, 20])
      self.assertEqual(int(second.best_step.numpy()), 20)
      self.assertEqual(int(second.condition.checks_since_best.numpy()), 1)
      second(30)
      curve = io_utils.read_json(run.path('monitor.json'))
    self.assertEqual([(c['step'], c['score']) for c in curve],
                     [(10, 3.0), (20, 1.0), (30, 0.5)])


class NewBestMetricTest(tf.test.TestCase):

  def test_lower_is_better_and_ties_do_not_count(self):
    best = monitor_actions.NewBestMetric('score')
    judged = [best({'step': s, 'score': v})
              for s, v in ((1, 2.0), (2, 2.0), (3, 1.0), (4, math.inf))]
    self.assertEqual(judged, [True, False, True, False])
    self.assertEqual(int(best.best_step.numpy()), 3)
    self.assertEqual(int(best.checks_since_best.numpy()), 1)
    self.assertFalse(best.test({'step': 5, 'metric': 'fake', 'score': 1.0}))
    stop = monitor_actions.EarlyStopping(best, patience=2)
    self.assertFalse(stop({}))
    best({'step': 5, 'metric': 'fake', 'score': 1.0})
    self.assertTrue(stop({}))
    self.assertFalse(monitor_actions.EarlyStopping(best, patience=0)({}))


if __name__ == '__main__':
  tf.test.main()
