"""The table1 binary: every row on fake data (test preset), reuse, bad input.

All of the paper's rows are built: GLOW, GLOW + EBM and EBM on data included.
"""

import glob
import json
import math
import os
import shutil
import subprocess
import sys
import time

# Bazel ends the whole target at TEST_TIMEOUT seconds (tests/BUILD: size
# "large", 900 s) and the tests here start table1 over a dozen times: each
# process gets what is left of the target's time less a margin, so a slow
# run fails with its own message instead of a killed target.
_DEADLINE = time.monotonic() + float(os.environ.get('TEST_TIMEOUT', 900)) - 30

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from tests import forkrun_testutil
from tests import image_data_testutil
from tilt_tf import table1
from tilt_tf.stages import export as export_lib

_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
            TF_CPP_MIN_LOG_LEVEL='3')
_SERVER = None  # setUpModule: runs of table1 but the first fork from it.
BUILT = ('GLOW', 'GLOW + EBM', 'VAE', 'Two-stage VAE', 'VAE + flow',
         'VAE + EBM', 'GLF', 'GLF + EBM', 'EBM on data', 'VAE (T=0.7)',
         'VAE (T=0.85)', 'GLF (T=0.7)', 'GLF (T=0.85)', 'GLOW (T=0.7)',
         'GLOW (T=0.85)')
KEYS = ('model', 'fid', 'precision', 'recall', 'seconds', 'paper_fid')
# Each pipeline run's rows: (its base model, its tilted model).
PIPELINE_ROWS = {'glow': ('GLOW', 'GLOW + EBM'), 'vae': ('VAE', 'VAE + EBM'),
                 'glf': ('GLF', 'GLF + EBM'), 'pixel_ebm': ('EBM on data', None)}
# Rows computed from a trained base (rows/<slug>.json) -> that base.
# The test preset's GLOW with one level of one coupling step (the flow's
# graphs, traced in the base, tilt and sample stages, are its slowest part:
# ~40 -> ~15 s of CPU per glow run); the table's logic is the same.
SMALL_GLOW = ['--set=glow:base.num_blocks=1',
              '--set=glow:base.steps_per_block=1']
BASELINE_ROWS = {'Two-stage VAE': 'vae', 'VAE + flow': 'vae',
                 'VAE (T=0.7)': 'vae', 'VAE (T=0.85)': 'vae',
                 'GLF (T=0.7)': 'glf', 'GLF (T=0.85)': 'glf',
                 'GLOW (T=0.7)': 'glow', 'GLOW (T=0.85)': 'glow'}


def _run(args, cwd, env_extra=None, server=None):
  """table1 in a new process, or in a fork of `server` (a
  forkrun_testutil.ForkServer)."""
  left = _DEADLINE - time.monotonic()
  if left <= 1:
    raise AssertionError(f'no time left in the test target for table1 {args}')
  if server:
    return server.run('tilt_tf.table1', args, cwd=cwd, env_extra=env_extra,
                      timeout=min(800, left))
  return subprocess.run([sys.executable, '-m', 'tilt_tf.table1'] + args,
                        capture_output=True, text=True, cwd=cwd,
                        env=dict(_ENV, **(env_extra or {})),
                        timeout=min(800, left), check=False)


def setUpModule():
  global _SERVER  # pylint: disable=global-statement
  _SERVER = forkrun_testutil.ForkServer(_ENV)


def tearDownModule():
  _SERVER.close()


def _assert_one_line_error(test, flags, message, work):
  """table1 with `flags` exits 2 with one 'error:' line holding `message`
  and creates no workdir."""
  result = _run(flags + ['--workdir=w'], work, server=_SERVER)
  test.assertEqual(result.returncode, 2, result.stderr[-2000:])
  lines = [l for l in result.stderr.splitlines() if l.startswith('error:')]
  test.assertLen(lines, 1, result.stderr[-2000:])
  test.assertIn(message, lines[0])
  test.assertFalse(os.path.exists(os.path.join(work, 'w')))


def _mtimes(workdir):
  """mtime of every file that a rerun must not rewrite."""
  paths = (glob.glob(os.path.join(workdir, 'rows', '*')) +
           glob.glob(os.path.join(workdir, '*', 'checkpoints', '*', '*')) +
           glob.glob(os.path.join(workdir, '*', '*.npz')) +
           glob.glob(os.path.join(workdir, '*', '*.json')))
  return {p: os.path.getmtime(p) for p in paths}


class Table1Test(tf.test.TestCase):

  def test_rows_then_reuse(self):
    data_dir = self.create_tempdir().full_path
    image_data_testutil.fake_fashion(data_dir)
    work = self.create_tempdir().full_path
    env = {'TILT_TF_CACHE': self.create_tempdir().full_path}
    args = ['--dataset=fashion_mnist', '--preset=test',
            f'--data_dir={data_dir}', '--workdir=table'] + SMALL_GLOW
    start = time.monotonic()
    first = _run(args, work, env)
    wall = time.monotonic() - start
    self.assertEqual(first.returncode, 0, first.stderr[-3000:])
    workdir = os.path.join(work, 'table')  # Relative to where it ran.
    with open(os.path.join(workdir, 'table1.json')) as f:
      doc = json.load(f)
    rows = self._check_rows(workdir, doc)
    self._check_seconds(workdir, rows, wall)
    self._check_outputs(workdir, first)
    self._check_runs(workdir)
    self._check_glf_export(workdir, data_dir)

    # A second invocation reuses every run and row: nothing is rewritten.
    before = _mtimes(workdir)
    second = _run(args, work, env, server=_SERVER)
    self.assertEqual(second.returncode, 0, second.stderr[-3000:])
    self.assertEqual(_mtimes(workdir), before)
    self.assertNotIn('fitting', second.stderr)
    self.assertNotIn('running the', second.stderr)
    self.assertRegex(second.stderr, r'row 3/15 Two-stage VAE: reusing')
    with open(os.path.join(workdir, 'table1.json')) as f:
      self.assertEqual(json.load(f), doc)

  def _check_rows(self, workdir, doc):
    """table1.json holds every built row, done, in the paper's order, the
    pipeline rows with their runs' figures; returns its rows by model."""
    self.assertEqual(doc['dataset'], 'fashion_mnist')
    self.assertEqual(doc['preset'], 'test')
    self.assertEqual(doc['feature_extractor'], 'classifier:fashion_mnist_v1')
    rows = {r['model']: r for r in doc['rows']}
    self.assertCountEqual(rows, BUILT)
    # The paper's rows in its order, then the temperature rows.
    self.assertEqual([r['model'] for r in doc['rows']][:9],
                     list(table1.PAPER_ROWS))
    for model in BUILT:
      for key in KEYS:
        self.assertIn(key, rows[model])
      self.assertEqual(rows[model]['status'], 'done')
      self.assertEqual(rows[model]['n'], 128)
      self.assertTrue(math.isfinite(rows[model]['fid']), model)
      self.assertBetween(rows[model]['precision'], 0.0, 1.0)
    self.assertIsNone(rows['VAE (T=0.7)']['paper_fid'])  # Not a paper row.
    # The pipeline rows are their runs' metrics.json figures.
    for model, (base, part) in {'GLF': ('glf', 'base'),
                                'GLF + EBM': ('glf', 'tilted'),
                                'EBM on data': ('pixel_ebm', 'base')}.items():
      with open(os.path.join(workdir, base, 'metrics.json')) as f:
        self.assertAlmostEqual(rows[model]['fid'], json.load(f)[part]['fid'],
                               places=3)
    return rows

  def _check_outputs(self, workdir, first):
    """table1.md (also printed), the rows' files, TensorBoard and the
    progress lines of the call `first` that made the table."""
    with open(os.path.join(workdir, 'table1.md')) as f:
      md = f.read()
    self.assertRegex(md, r'\| GLOW \| \d+\.\d\d \| .* \| 58\.7 \|')
    self.assertRegex(md, r'\| EBM on data \| \d+\.\d\d \| .* \| 39\.3 \|')
    self.assertIn('| VAE + flow | ', md)
    self.assertIn(md.strip(), first.stdout)
    for name in ('fid_vs_step.png', 'rows/two_stage_vae.json',
                 'rows/vae_flow.npz', 'rows/glf_t07.png'):
      self.assertTrue(os.path.exists(os.path.join(workdir, name)), name)
    self.assertNotEmpty(glob.glob(os.path.join(workdir, 'tensorboard', '*')))
    self.assertRegex(first.stderr, r'row 4/15 VAE \+ flow: fitting')
    self.assertRegex(first.stderr, r'row 4/15 VAE \+ flow done: FID')

  def _check_runs(self, workdir):
    """Each pipeline's run folder (train.py's layout): sample files, the
    metrics' fields, the monitor's reference; the pixel EBM (no latent) has
    no tilt stage and both sample files hold its samples."""
    for base in PIPELINE_ROWS:
      run = os.path.join(workdir, base)
      for name in ('samples_base.npz', 'samples_tilted.npz', 'samples.png',
                   'langevin_chain.png', 'metrics.json', 'run.json'):
        self.assertTrue(os.path.exists(os.path.join(run, name)), (base, name))
      tilted = np.load(os.path.join(run, 'samples_tilted.npz'))
      self.assertEqual(tilted['images'].shape, (128, 28, 28, 1), base)
      self.assertEqual(tilted['images'].dtype, np.uint8, base)
      with open(os.path.join(run, 'metrics.json')) as f:
        metrics = json.load(f)
      for key in ('base', 'tilted'):
        for field in ('fid', 'precision', 'recall', 'feature_extractor'):
          self.assertIn(field, metrics[key], (base, key))
      with open(os.path.join(run, 'run.json')) as f:
        reference = json.load(f)['monitor_reference']
      if base == 'pixel_ebm':
        base_npz = np.load(os.path.join(run, 'samples_base.npz'))
        self.assertAllEqual(base_npz['images'], tilted['images'])
        self.assertNotIn('latents', tilted)
        self.assertEqual(metrics['base'], metrics['tilted'])
        self.assertNotIn('tilt', metrics)
        self.assertFalse(os.path.exists(os.path.join(run, 'monitor.json')))
        self.assertFalse(os.path.exists(os.path.join(run, 'checkpoints',
                                                     'tilt')))
        continue
      self.assertIn('held out of the energy', reference)
      self.assertEqual(tilted['latents'].shape[0], 128, base)
      with open(os.path.join(run, 'monitor.json')) as f:
        self.assertLen(json.load(f), 2, base)
      if base == 'glow':  # The full flow latent, whatever the levels.
        self.assertEqual(tilted['latents'].shape, (128, 784))
        self.assertBetween(metrics['base_model']['test_bits_per_dim'], 0., 20.)

  def _check_glf_export(self, workdir, data_dir):
    """An image export, made from a copy of the GLF run with the data
    folder gone: shapes, the same images for the same seed. (The copy: the
    reuse check below needs the run untouched.)"""
    copy = os.path.join(self.create_tempdir().full_path, 'run')
    shutil.copytree(os.path.join(workdir, 'glf'), copy)
    hidden = data_dir + '.hidden'
    os.rename(data_dir, hidden)
    try:
      path = export_lib.export_run(copy, self.create_tempdir().full_path)
    finally:
      os.rename(hidden, data_dir)
    fn = tf.saved_model.load(path).signatures['serving_default']
    args = dict(num_samples=tf.constant(3), seed=tf.constant([4, 5]))
    first, second = fn(**args), fn(**args)
    self.assertEqual(first['images'].shape, (3, 28, 28, 1))
    self.assertEqual(first['images'].dtype, tf.uint8)
    self.assertEqual(first['latents'].shape, (3, 64))
    self.assertAllEqual(first['images'], second['images'])

  def _check_seconds(self, workdir, rows, wall):
    """A row's seconds are its training time from its run's timings.json
    (a tilted row: the base's plus the EBM's; the pixel EBM's row: its own
    training, nothing on top; a baseline row: its base's plus what its
    rows/<slug>.json says it added), and the training times of the whole
    table fit in the wall time of the call that made it (--jobs=1: one
    stage after another)."""
    total = 0.0
    for base, (base_row, tilted_row) in PIPELINE_ROWS.items():
      with open(os.path.join(workdir, base, 'timings.json')) as f:
        timings = json.load(f)
      base_s = timings['base']['seconds']
      self.assertEqual(rows[base_row]['seconds'], round(base_s, 1), base_row)
      self.assertEqual(rows[base_row]['extra_seconds'], 0.0, base_row)
      total += base_s
      if tilted_row:
        tilt_s = timings['tilt']['seconds']
        self.assertEqual(rows[tilted_row]['extra_seconds'], round(tilt_s, 1))
        self.assertAlmostEqual(rows[tilted_row]['seconds'], base_s + tilt_s,
                               delta=0.051, msg=tilted_row)
        total += tilt_s
    stored = {}
    for path in glob.glob(os.path.join(workdir, 'rows', '*.json')):
      with open(path) as f:
        doc = json.load(f)
      stored[doc['model']] = doc
    self.assertCountEqual(stored, BASELINE_ROWS)
    for model, base in BASELINE_ROWS.items():
      row, doc = rows[model], stored[model]
      self.assertEqual(row['extra_seconds'], doc['extra_seconds'], model)
      self.assertEqual(row['seconds'], doc['seconds'], model)
      self.assertAlmostEqual(row['seconds'],
                             rows[PIPELINE_ROWS[base][0]]['seconds'] +
                             row['extra_seconds'], delta=0.11, msg=model)
      if doc['fit'] is None:  # A temperature row trains nothing.
        self.assertEqual(row['extra_seconds'], 0.0, model)
      else:  # Encoding the train split + fitting the latent model.
        self.assertGreaterEqual(row['extra_seconds'],
                                round(doc['fit']['seconds'], 1), model)
        total += doc['fit']['seconds']
    self.assertLess(total, wall)

  def test_bad_input_is_one_line(self):
    work = self.create_tempdir().full_path
    for flag, message in (('--dataset=svhn', "unknown dataset 'svhn'"),
                          ('--preset=huge', "unknown preset 'huge'"),
                          ('--bases=vae,gan', '--bases=vae,gan: choose')):
      _assert_one_line_error(self, [flag], message, work)


class JobsTest(tf.test.TestCase):

  def test_jobs_run_bases_in_train_processes(self):
    # The pixel EBM: the cheapest pipeline (the train process is what is
    # tested here; test_rows_then_reuse runs every base in process).
    data_dir = self.create_tempdir().full_path
    image_data_testutil.fake_fashion(data_dir)
    work = self.create_tempdir().full_path
    env = {'TILT_TF_CACHE': self.create_tempdir().full_path}
    args = ['--dataset=fashion_mnist', '--preset=test', '--bases=pixel_ebm',
            '--jobs=2', f'--data_dir={data_dir}', '--workdir=table']
    # table1 itself forks from the warm server (test_rows_then_reuse starts
    # it as a plain process); its train process is a new one, as ever.
    result = _run(args, work, env, server=_SERVER)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    workdir = os.path.join(work, 'table')
    self.assertRegex(result.stderr, r'row 1/1 EBM on data: starting the '
                     r'pixel_ebm pipeline in a train process \(progress: '
                     r'.*train.log\)')
    self.assertRegex(result.stderr, r'row 1/1 EBM on data: the pixel_ebm '
                     'pipeline finished')
    self.assertNotIn('running the pixel_ebm pipeline', result.stderr)
    with open(os.path.join(workdir, 'pixel_ebm', 'train.log')) as f:
      self.assertIn('stage eval', f.read())
    with open(os.path.join(workdir, 'table1.json')) as f:
      rows = {r['model']: r for r in json.load(f)['rows']}
    self.assertEqual(rows['EBM on data']['status'], 'done')
    with open(os.path.join(workdir, 'pixel_ebm', 'metrics.json')) as f:
      self.assertAlmostEqual(rows['EBM on data']['fid'],
                             json.load(f)['base']['fid'], places=3)
    # The train process's config is the table's: a rerun reuses its run.
    again = _run(args[:-1] + ['--jobs=1', '--workdir=table'], work, env,
                 server=_SERVER)
    self.assertEqual(again.returncode, 0, again.stderr[-3000:])
    self.assertIn('EBM on data: reusing the finished run', again.stderr)

    # A train process that fails makes its rows fail with its error line.
    os.remove(os.path.join(data_dir, 'train-images-idx3-ubyte.gz'))
    failed = _run(args[:-1] + ['--workdir=table2'], work, env, server=_SERVER)
    self.assertEqual(failed.returncode, 0, failed.stderr[-3000:])
    with open(os.path.join(work, 'table2', 'table1.json')) as f:
      rows = {r['model']: r for r in json.load(f)['rows']}
    self.assertRegex(rows['EBM on data']['status'],
                     r'^failed: its train process exited with 2: error: .*'
                     r'train-images.*\(log: .*train.log\)$')


class OverridesTest(tf.test.TestCase):

  def test_bad_overrides_and_temperatures_are_one_line(self):
    work = self.create_tempdir().full_path
    for flags, message in (
        (['--set=base.width=5'], 'name the base it is for, e.g. '
         '--set=glow:base.width=5'),
        (['--bases=vae', '--set=glow:base.width=5'],
         "'glow' is not one of the bases this table runs (vae)"),
        (['--bases=glow', '--set=glow:base.widht=5'], "no field 'widht'"),
        (['--temperatures=0.7,hot'], "'hot' is not a temperature"),
        (['--temperatures=0'], "'0' is not a temperature")):
      _assert_one_line_error(self, flags + ['--preset=test'], message, work)


if __name__ == '__main__':
  tf.test.main()
