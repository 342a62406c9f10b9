"""The runtime on its own: RunDir (identity, lock, run.json) and the
Controller (steps, checkpoints, actions, rollback), with a 1-variable model."""

import os

import tensorflow as tf

from tilt_tf import io_utils
from tilt_tf.errors import UserError
from tilt_tf.runtime import loop as loop_lib
from tilt_tf.runtime import run_dir as run_dir_lib


class RunDirTest(tf.test.TestCase):

  def test_identity_run_json_and_lock(self):
    workdir = self.create_tempdir().full_path
    held = io_utils._HELD  # pylint: disable=protected-access
    with run_dir_lib.RunDir(workdir, {'base_name': 'a', 'seed': 0},
                            {'x': 1}, preset='test') as run:
      self.assertIn(os.path.realpath(workdir), held)
      self.assertEqual(io_utils.read_json(run.path('run.json'))['config'],
                       {'x': 1})
    self.assertNotIn(os.path.realpath(workdir), held)  # Released on exit.
    before = os.listdir(workdir)
    with self.assertRaisesRegex(UserError, 'holds a run of base=a .*differs '
                                'in seed'):
      with run_dir_lib.RunDir(workdir, {'base_name': 'a', 'seed': 1}):
        pass
    self.assertEqual(os.listdir(workdir), before)  # Nothing written.

  def test_another_energy_on_a_trained_base_says_how(self):
    workdir = self.create_tempdir().full_path
    with run_dir_lib.RunDir(workdir, {'base_name': 'a', 'ebm': {'c': 1}}):
      os.makedirs(os.path.join(workdir, 'checkpoints', 'base'))
    with self.assertRaisesRegex(UserError, 'differs in ebm; to tilt its '
                                'trained base .*pass a new --workdir and '
                                '--base_from='):
      with run_dir_lib.RunDir(workdir, {'base_name': 'a', 'ebm': {'c': 2}}):
        pass

  def test_run_json_that_is_not_an_object_is_one_line(self):
    from tilt_tf.runtime import build  # pylint: disable=g-import-not-at-top
    for raw in ('[]', '"x"', '{"identity": []}'):
      workdir = self.create_tempdir().full_path
      with open(os.path.join(workdir, 'run.json'), 'w') as f:
        f.write(raw)
      with self.subTest(raw=raw):
        with self.assertRaisesRegex(UserError, 'run.json is (damaged|'
                                    'malformed)') as caught:
          with run_dir_lib.RunDir(workdir, {'base_name': 'a'}):
            pass
        self.assertNotIn('\n', str(caught.exception))
        with self.assertRaisesRegex(UserError, 'run.json is (damaged|'
                                    'malformed)'):
          build.restore(workdir)
        with open(os.path.join(workdir, 'run.json')) as f:
          self.assertEqual(f.read(), raw)  # Left as it was.

  def test_another_generator_is_refused_and_nothing_changes(self):
    workdir = self.create_tempdir().full_path
    mine = {'base_name': 'generator', 'generator_fingerprint': 'aaaa'}
    with run_dir_lib.RunDir(workdir, mine, {'x': 1}):
      pass
    with open(os.path.join(workdir, 'run.json')) as f:
      before = f.read()
    with self.assertRaisesRegex(UserError, 'holds a tilt of another generator '
                                r'\(fingerprint aaaa; this one is bbbb'):
      with run_dir_lib.RunDir(workdir, dict(mine,
                                            generator_fingerprint='bbbb')):
        pass
    with open(os.path.join(workdir, 'run.json')) as f:
      self.assertEqual(f.read(), before)

  def test_released_when_the_body_raises(self):
    workdir = self.create_tempdir().full_path
    with self.assertRaises(RuntimeError):
      with run_dir_lib.RunDir(workdir, {'seed': 0}):
        raise RuntimeError('boom')
    self.assertNotIn(os.path.realpath(workdir),
                     io_utils._HELD)  # pylint: disable=protected-access


class ControllerTest(tf.test.TestCase):

  def _setup(self, workdir):
    w = tf.Variable(1.0)
    step = tf.Variable(0, dtype=tf.int64)
    clock = tf.Variable(0.0, dtype=tf.float64)
    lr = tf.Variable(0.5)
    ckpt = tf.train.Checkpoint(w=w, step=step, seconds=clock)
    manager = tf.train.CheckpointManager(ckpt, workdir, max_to_keep=3)

    class Opt:
      learning_rate = lr

    state = loop_lib.TrainState('toy', step, clock, manager, Opt())
    return w, step, lr, state

  def test_runs_to_total_with_checkpoints_and_actions(self):
    workdir = self.create_tempdir().full_path
    w, step, _, state = self._setup(os.path.join(workdir, 'ckpt'))
    seen = []

    def loop(iterator, n):
      del iterator
      w.assign_add(tf.cast(n, tf.float32))
      step.assign_add(tf.cast(n, tf.int64))
      return {'w': w.read_value()}

    def action(s):
      seen.append(s)
      return None if s % 4 else False

    with run_dir_lib.RunDir(workdir, {}) as run:
      controller = loop_lib.Controller(run, loop_lib.LoopSettings(
          steps_per_loop=3, checkpoint_every=100, log_every=2))
      _, steps = controller.run(state, 10, lambda s: None, loop,
                                actions=[action], periods=[4])
    self.assertEqual(steps, 10)
    self.assertEqual(seen, [2, 4, 6, 8, 10])  # Loops stop at every period.
    # The start (0), the action's checkpoints (4, 8) and the end (10).
    self.assertEqual([int(p.rsplit('-', 1)[1]) for p in
                      state.manager.checkpoints], [4, 8, 10])
    self.assertEqual(float(w.numpy()), 11.0)

  def test_non_finite_metrics_roll_back_and_halve_the_rate(self):
    workdir = self.create_tempdir().full_path
    w, step, lr, state = self._setup(os.path.join(workdir, 'ckpt'))
    calls = []

    def loop(iterator, n):
      del iterator
      calls.append(int(step.numpy()))
      w.assign_add(tf.cast(n, tf.float32))
      step.assign_add(tf.cast(n, tf.int64))
      if int(step.numpy()) == 6 and float(lr.numpy()) == 0.5:
        w.assign(float('nan'))  # The weights themselves go bad.
      return {'w': w.read_value()}

    with run_dir_lib.RunDir(workdir, {}) as run:
      controller = loop_lib.Controller(run, loop_lib.LoopSettings(
          steps_per_loop=2, checkpoint_every=4, log_every=100))
      with self.assertLogs(level='WARNING'):
        controller.run(state, 8, lambda s: None, loop)
    self.assertEqual(calls, [0, 2, 4, 4, 6])  # 4 -> 6 redone after rollback.
    self.assertEqual(float(lr.numpy()), 0.25)
    self.assertEqual(float(w.numpy()), 9.0)  # Finite: restored at step 4.


if __name__ == '__main__':
  tf.test.main()
