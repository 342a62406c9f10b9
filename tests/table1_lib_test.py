"""table1.Table1 in-process: a workdir in use, --jobs and --set, a failing
base, reusing a finished run only with the same settings. (The binary's
runs: table1_test.)"""

import fcntl
import json
import os
from unittest import mock

import tensorflow as tf

from tilt_tf import table1
from tilt_tf.errors import UserError


class Table1LibTest(tf.test.TestCase):
  """table1.Table1 in this process: locks, --jobs, --set."""

  def test_a_workdir_in_use_is_refused(self):
    workdir = self.create_tempdir().full_path
    table = table1.Table1('fashion_mnist', 'test', workdir, bases=['glow'])
    os.makedirs(os.path.join(workdir, 'glow'))
    with open(os.path.join(workdir, 'glow', '.lock'), 'a') as other:
      fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # Another process's.
      rows = table.compute()
    by_model = {r['model']: r for r in rows}
    self.assertRegex(by_model['GLOW']['status'],
                     r'^failed: .*glow is in use by another process')

  def test_bad_jobs(self):
    with self.assertRaisesRegex(UserError, '--jobs=0: it must be 1 or more'):
      table1.Table1('fashion_mnist', 'test', self.create_tempdir().full_path,
                    jobs=0)

  def test_set_changes_one_bases_run_and_its_train_process(self):
    workdir = self.create_tempdir().full_path
    table = table1.Table1('fashion_mnist', 'test', workdir,
                          bases=['vae', 'glow'],
                          overrides=['glow:base.width=5', 'glow:ebm.steps=3'],
                          temperatures=['1.04'])
    self.assertEqual(table.configs['glow'].base.width, 5)
    self.assertEqual(table.configs['glow'].ebm.steps, 3)
    plain = table1.Table1('fashion_mnist', 'test', workdir, bases=['vae'])
    self.assertEqual(table.configs['vae'].to_dict(),
                     plain.configs['vae'].to_dict())
    self.assertEqual(
        [r.model for r in table.rows if r.kind == 'temperature'],
        ['VAE (T=1.04)', 'GLOW (T=1.04)'])
    with mock.patch.object(table1.subprocess, 'run') as run:
      run.return_value.returncode = 0
      table._train_process('glow')
    cmd = run.call_args[0][0]
    self.assertIn('--set=base.width=5', cmd)
    self.assertIn('--set=ebm.steps=3', cmd)
    with mock.patch.object(table1.subprocess, 'run') as run:
      run.return_value.returncode = 0
      table._train_process('vae')
    self.assertFalse([a for a in run.call_args[0][0] if a.startswith('--set')])


class FailedBaseTest(tf.test.TestCase):

  def test_a_failing_base_is_a_row_status_not_a_lost_table(self):
    workdir = self.create_tempdir().full_path
    table = table1.Table1('fashion_mnist', 'test', workdir,
                          bases=['glow', 'pixel_ebm'])
    error = UserError('glow decodes 9 of 256 prior latents to non-finite '
                      'samples')
    with mock.patch.object(table, '_run_base', side_effect=error):
      rows = table.compute()
    md = table.write(rows)
    by_model = {r['model']: r for r in rows}
    self.assertStartsWith(by_model['GLOW + EBM']['status'], 'failed: glow '
                          'decodes 9 of 256')
    self.assertStartsWith(by_model['EBM on data']['status'], 'failed: ')
    self.assertEqual(by_model['VAE']['status'], 'not run (--bases without vae)')
    self.assertEqual(by_model['GLOW']['paper_fid'], 58.7)
    self.assertIn('| GLOW + EBM | failed: glow decodes 9 of 256', md)
    with open(os.path.join(workdir, 'table1.json')) as f:
      self.assertLen(json.load(f)['rows'], len(rows))


class StaleRunTest(tf.test.TestCase):

  def test_a_finished_run_is_reused_only_with_the_same_settings(self):
    workdir = self.create_tempdir().full_path
    table = table1.Table1('fashion_mnist', 'test', workdir, bases=['glow'])
    run_dir = os.path.join(workdir, 'glow')
    os.makedirs(run_dir)
    metrics = {'preset': 'test', 'dataset': 'fashion_mnist',
               'base': {'fid': 2.0}, 'tilted': {'fid': 1.0}}
    stored = json.loads(json.dumps(table.configs['glow'].to_dict()))

    def write(config):
      for name, doc in (('metrics.json', metrics),
                        ('run.json', {'config': config})):
        with open(os.path.join(run_dir, name), 'w') as f:
          json.dump(doc, f)

    write(stored)
    with mock.patch.object(table1.train_lib, 'run',
                           side_effect=AssertionError('must not rerun')):
      self.assertEqual(table._run_base('glow')[0], metrics)
      stored['ebm']['step_size'] = 0.5  # The preset changed since the run.
      write(stored)
      with self.assertRaisesRegex(
          UserError, r'finished glow run in .* other settings \(ebm.step_size: '
          r'0.5 there, 0.01 now\); move that folder away'):
        table._run_base('glow')

  def test_a_baseline_row_depends_on_its_bases_settings(self):
    table = table1.Table1('fashion_mnist', 'test',
                          self.create_tempdir().full_path, bases=['glow'])
    row = next(r for r in table.rows if r.kind == 'temperature')
    before = json.loads(json.dumps(table._settings(row)))  # As stored.
    self.assertEqual(table._settings(row), before)
    table.configs['glow'].base.width += 1  # Another base model.
    self.assertNotEqual(table._settings(row), before)


if __name__ == '__main__':
  tf.test.main()
