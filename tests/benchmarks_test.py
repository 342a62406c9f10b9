"""The benchmark binary: `--quick` reports every figure (no timing asserts)."""

import json
import math
import os
import subprocess
import sys
import time

# Bazel ends the whole target at TEST_TIMEOUT seconds (tests/BUILD: size
# "medium", 300 s). Every benchmark process gets at most what is left of
# that, less a margin (the TensorFlow import before this line, reporting),
# so a slow run fails here with its own message instead of a killed target.
_DEADLINE = time.monotonic() + float(os.environ.get('TEST_TIMEOUT', 300)) - 30

import tensorflow as tf  # pylint: disable=g-import-not-at-top

# benchmark -> keys that must be finite and > 0.
_POSITIVE = {
    'gemm': ('gemm_flop_s', 'seconds'),
    'langevin': (
        'compiled_vs_eager_speedup', 'xla_vs_compiled', 'eager_steps_timed',
        'compiled_steps_timed', 'compiled_chain_s', 'eager_chain_s',
        'xla_chain_s', 'langevin_steps_per_s', 'samples_per_s', 'step_flops',
        'step_flop_s', 'gemm_flop_s', 'gemm_peak_fraction'),
    'tilt_over_base': (
        'tilt_over_base_time', 'base_stage_s_est', 'tilt_stage_s_est',
        'base_step_s', 'ebm_step_s'),
    'memory': ('rss_mb_start', 'rss_mb_after_calls', 'calls'),
    'precision': ('float32_s_per_step', 'steps_timed', 'calls'),
    'serving': ('n1_p50_s', 'n1_p99_s', 'n64_p50_s', 'n64_p99_s',
                'n64_samples_per_s', 'export_s', 'load_s', 'calls'),
}
# Finite, any sign (memory may shrink).
_FINITE = {'memory': ('rss_growth_mb', 'rss_growth_second_half_mb')}
# The workspace root (in Bazel's runfiles too): `-m benchmarks.all` from there.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COMMON = ('benchmark', 'base', 'preset', 'device', 'tf_version',
           'peak_rss_mb', 'method')


def _run(args, cwd, env_extra=None):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([_ROOT] + sys.path),
             TF_CPP_MIN_LOG_LEVEL='3')
  env.update(env_extra or {})
  left = _DEADLINE - time.monotonic()
  if left <= 1:
    raise AssertionError('no time left in the test target for '
                         f'benchmarks.all {" ".join(args)}')
  return subprocess.run([sys.executable, '-m', 'benchmarks.all'] + args,
                        capture_output=True, text=True, cwd=cwd, env=env,
                        timeout=left, check=False)


def _close(test, got, want, what, rtol=1e-5, atol=0.0):
  """A reported derived figure is what its reported parts give (every float
  is printed to 6 significant digits: a few 1e-7 relative apart)."""
  test.assertTrue(math.isfinite(got), what)
  test.assertAllClose(got, want, rtol=rtol, atol=atol, msg=what)


class BenchmarksTest(tf.test.TestCase):

  def test_quick_run_reports_every_figure(self):
    here = self.create_tempdir().full_path
    # One image base: the benchmarks' code is the same for each (the
    # registry builds it); a second base would cost ~15 s of CPU.
    proc = _run(['--quick', '--bases=glf', '--output=out/bench.jsonl'],
                cwd=self.create_tempdir().full_path,
                env_extra={'BUILD_WORKING_DIRECTORY': here})
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    lines = proc.stdout.strip().splitlines()
    with open(os.path.join(here, 'out/bench.jsonl')) as f:
      self.assertEqual(f.read().splitlines(), lines)  # Appended, same lines.
    records = [json.loads(line) for line in lines]
    self.assertCountEqual(
        [(r['benchmark'], r['base']) for r in records],
        [('gemm', None), ('langevin', 'glf'), ('precision', 'glf'),
         ('serving', 'glf'), ('tilt_over_base', 'glf'), ('memory', 'glf')])
    for r in records:
      name = r['benchmark']
      for key in _COMMON:
        self.assertIn(key, r, name)
      self.assertIn(r['device'], ('CPU', 'GPU'))
      self.assertEqual(r['tf_version'], tf.__version__)
      for key in _POSITIVE[name]:
        with self.subTest(benchmark=name, base=r['base'], key=key):
          self.assertTrue(math.isfinite(r[key]) and r[key] > 0, r[key])
      for key in _FINITE.get(name, ()):
        with self.subTest(benchmark=name, key=key):
          self.assertTrue(math.isfinite(r[key]), r[key])
      self.assertIs(r['quick'], True)
      self.assertGreaterEqual(r['peak_rss_mb'], 1.0)
      if name != 'gemm':
        self.assertEqual(r['preset'], 'test')
      getattr(self, f'_check_{name}')(r)
    # The langevin records' GEMM rate is the gemm record's.
    (gemm,) = [r for r in records if r['benchmark'] == 'gemm']
    for r in records:
      if r['benchmark'] == 'langevin':
        self.assertEqual(r['gemm_flop_s'], gemm['gemm_flop_s'])
    # A second run (the toy's Langevin chain, after its GEMM figure) appends
    # rather than overwrites.
    proc = _run(['--quick', '--benchmarks=langevin', '--bases=mlp_vae',
                 '--output=out/bench.jsonl'], cwd=here)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(here, 'out/bench.jsonl')) as f:
      self.assertEqual(f.read().splitlines(),
                       lines + proc.stdout.strip().splitlines())
    self._check_toy_langevin(proc)

  def _check_gemm(self, r):
    _close(self, r['gemm_flop_s'], 2 * r['size']**3 / r['seconds'], 'gemm')
    self.assertGreaterEqual(r['calls'], 1)

  def _check_langevin(self, r):
    """Every speedup and rate is the ratio of the reported times."""
    what = f'langevin {r["base"]}'
    steps = r['chain_steps']
    _close(self, r['compiled_vs_eager_speedup'],
           r['eager_chain_s'] / r['compiled_chain_s'], what + ' speedup')
    _close(self, r['xla_vs_compiled'], r['compiled_chain_s'] / r['xla_chain_s'],
           what + ' xla')
    _close(self, r['langevin_steps_per_s'], steps / r['compiled_chain_s'],
           what + ' steps/s')
    _close(self, r['langevin_steps_per_s_xla'], steps / r['xla_chain_s'],
           what + ' steps/s xla')
    _close(self, r['samples_per_s'], r['batch'] / r['sample_chain_s'],
           what + ' samples/s')
    _close(self, r['step_flop_s'], r['step_flops'] * steps /
           r['compiled_chain_s'], what + ' flop/s')
    _close(self, r['step_flop_s_xla'], r['step_flops'] * steps /
           r['xla_chain_s'], what + ' flop/s xla')
    _close(self, r['gemm_peak_fraction'], r['step_flop_s'] / r['gemm_flop_s'],
           what + ' peak fraction')
    for kind in ('compiled', 'xla', 'eager'):
      self.assertBetween(r[f'{kind}_steps_timed'], 1, steps)
    self.assertBetween(r['sample_steps_timed'], 1, r['sample_chain_steps'])

  def _check_tilt_over_base(self, r):
    """The stage estimates are step times x step counts, and their ratio."""
    what = f'tilt_over_base {r["base"]}'
    _close(self, r['base_stage_s_est'], r['base_steps'] * r['base_step_s'],
           what + ' base stage')
    _close(self, r['tilt_stage_s_est'],
           r['ebm_steps'] * r['ebm_step_s'] +
           r['monitor_checks'] * r['monitor_check_s_est'], what + ' tilt stage')
    _close(self, r['tilt_over_base_time'],
           r['tilt_stage_s_est'] / r['base_stage_s_est'], what + ' ratio')
    _close(self, r['tilt_over_base_time_without_monitor'],
           r['ebm_steps'] * r['ebm_step_s'] / r['base_stage_s_est'],
           what + ' ratio without monitor')
    self.assertBetween(r['ebm_langevin_steps_timed'], 1,
                       r['ebm_langevin_steps'])
    self.assertGreaterEqual(r['monitor_checks'], 0)

  def _check_memory(self, r):
    # RSS of ~1000 MB printed to 6 digits: +-0.005 MB each.
    _close(self, r['rss_growth_mb'],
           r['rss_mb_after_calls'] - r['rss_mb_start'], 'rss growth',
           atol=0.011)
    _close(self, r['rss_growth_second_half_mb'],
           r['rss_mb_after_calls'] - r['rss_mb_after_half'], 'rss 2nd half',
           atol=0.011)
    # Peak RSS (ru_maxrss, KiB) is at least any RSS measured (psutil, B).
    self.assertGreaterEqual(r['peak_rss_mb'], r['rss_mb_after_calls'] - 1)
    self.assertEqual(r['calls'], 20)

  def _check_serving(self, r):
    """Percentiles of the same calls; throughput = n / median latency."""
    self.assertEqual(r['calls'], 3)
    for n in (1, 64):
      self.assertLessEqual(r[f'n{n}_p50_s'], r[f'n{n}_p99_s'])
      _close(self, r[f'n{n}_samples_per_s'], n / r[f'n{n}_p50_s'],
             f'serving n={n}')

  def _check_precision(self, r):
    """The bf16 ratio is its two measured times' ratio, or a reason."""
    self.assertTrue(r['float32_chains_finite'])
    for prec in ('float32', 'bf16'):
      for part, ms in r.get(f'{prec}_parts_ms', {}).items():
        self.assertGreater(ms, 0, (prec, part))
    self.assertLen(r['float32_parts_ms'], 5)
    if r['bf16_over_float32'] is None:
      self.assertStartsWith(r['bf16'], 'not measured: this machine has')
      return
    self.assertTrue(r['bf16_chains_finite'])
    self.assertGreater(r['bf16_s_per_step'], 0)
    self.assertAllClose(r['bf16_over_float32'],
                        r['bf16_s_per_step'] / r['float32_s_per_step'],
                        rtol=1e-4)

  def _check_toy_langevin(self, proc):
    """The 25-Gaussians toy's chain: a gemm and a langevin record."""
    records = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    self.assertEqual([r['benchmark'] for r in records], ['gemm', 'langevin'])
    r = records[1]
    self.assertEqual((r['base'], r['dataset']), ('mlp_vae', '25gaussians'))
    # The ratio is the two chains' measured times, not a made-up figure.
    self.assertAllClose(r['compiled_vs_eager_speedup'],
                        r['eager_chain_s'] / r['compiled_chain_s'], rtol=1e-3)

  def test_bad_flag_is_one_line_error(self):
    cwd = self.create_tempdir().full_path
    proc = _run(['--quick', '--bases=dcgan'], cwd=cwd)
    self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
    self.assertNotIn('Traceback', proc.stderr)
    self.assertRegex(proc.stderr.strip().splitlines()[-1],
                     '^error: --bases: benchmarks cover vae, glf')
    self.assertEqual(os.listdir(cwd), [])


if __name__ == '__main__':
  tf.test.main()
