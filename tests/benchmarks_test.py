"""The benchmark binary: `--quick` reports every figure (no timing asserts)."""

import json
import math
import os
import subprocess
import sys

import tensorflow as tf

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
  return subprocess.run([sys.executable, '-m', 'benchmarks.all'] + args,
                        capture_output=True, text=True, cwd=cwd, env=env,
                        timeout=600, check=False)


class BenchmarksTest(tf.test.TestCase):

  def test_quick_run_reports_every_figure(self):
    here = self.create_tempdir().full_path
    proc = _run(['--quick', '--output=out/bench.jsonl'],
                cwd=self.create_tempdir().full_path,
                env_extra={'BUILD_WORKING_DIRECTORY': here})
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    lines = proc.stdout.strip().splitlines()
    with open(os.path.join(here, 'out/bench.jsonl')) as f:
      self.assertEqual(f.read().splitlines(), lines)  # Appended, same lines.
    records = [json.loads(line) for line in lines]
    self.assertCountEqual(
        [(r['benchmark'], r['base']) for r in records],
        [('gemm', None), ('langevin', 'vae'), ('langevin', 'glf'),
         ('precision', 'vae'), ('precision', 'glf'), ('serving', 'glf'),
         ('tilt_over_base', 'vae'), ('tilt_over_base', 'glf'),
         ('memory', 'glf')])
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
      if name == 'precision':
        self._check_precision(r)
      if name == 'serving':  # Percentiles of the same calls.
        for n in (1, 64):
          self.assertLessEqual(r[f'n{n}_p50_s'], r[f'n{n}_p99_s'])
    # A second run appends rather than overwrites.
    proc = _run(['--quick', '--benchmarks=gemm', '--output=out/bench.jsonl'],
                cwd=here)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(here, 'out/bench.jsonl')) as f:
      self.assertLen(f.read().splitlines(), len(lines) + 1)

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

  def test_toy_langevin(self):
    proc = _run(['--quick', '--benchmarks=langevin', '--bases=mlp_vae'],
                cwd=self.create_tempdir().full_path)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    (r,) = [json.loads(line) for line in proc.stdout.strip().splitlines()
            if json.loads(line)['benchmark'] == 'langevin']
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
