"""The train binary: a dry run, and one clear line for each kind of bad input."""

import json
import os
import subprocess
import sys

import tensorflow as tf


def _run(args, cwd=None, env_extra=None):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path),
             TF_CPP_MIN_LOG_LEVEL='3')
  env.update(env_extra or {})
  return subprocess.run([sys.executable, '-m', 'tilt_tf.train'] + args,
                        capture_output=True, text=True, cwd=cwd, env=env,
                        timeout=300, check=False)


class TrainCLITest(tf.test.TestCase):

  def _assert_user_error(self, proc, pattern):
    self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
    self.assertNotIn('Traceback', proc.stderr)
    last = proc.stderr.strip().splitlines()[-1]
    self.assertRegex(last, '^error: ' + pattern)

  def test_dry_run_resolves_workdir_against_invocation_dir(self):
    here = self.create_tempdir().full_path
    proc = _run(['--base=mlp_vae', '--dataset=25gaussians', '--preset=test',
                 '--workdir=rel/run'], cwd=self.create_tempdir().full_path,
                env_extra={'BUILD_WORKING_DIRECTORY': here})
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(os.path.join(here, 'rel/run/metrics.json')) as f:
      metrics = json.load(f)
    self.assertIn('tilted', metrics)
    self.assertIn('high_quality_fraction', proc.stdout)
    self.assertRegex(proc.stderr, r'tilt \d+/20 .*steps/s ETA')

  def test_bad_inputs(self):
    cases = [
        (['--base=gan'], "unknown base 'gan'"),
        (['--base=mlp_vae', '--dataset=imagenet'], "unknown dataset 'imagenet'"),
        (['--base=mlp_vae', '--preset=huge'], "unknown preset 'huge'"),
        (['--base=mlp_vae', '--langevin_steps=-5'], '--langevin_steps=-5 is out of range'),
        (['--base=mlp_vae', '--num_samples=0'], '--num_samples=0 is out of range'),
        (['--base=mlp_vae', '--stage=fly'], "unknown --stage 'fly'"),
        (['--base=mlp_vae', 'extra'], 'unexpected arguments'),
        (['--base=mlp_vae', '--dataset=mnist', '--data_dir=/no/such/dir'],
         '--data_dir /no/such/dir does not exist'),
    ]
    for args, pattern in cases:
      with self.subTest(args=args):
        cwd = self.create_tempdir().full_path
        self._assert_user_error(_run(args, cwd=cwd), pattern)
        self.assertEqual(os.listdir(cwd), [])  # Nothing written.


if __name__ == '__main__':
  tf.test.main()
