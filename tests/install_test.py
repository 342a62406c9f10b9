"""`pip install .` (pyproject.toml) without Bazel: the console scripts work.

Offline and in seconds: a new venv of the suite's interpreter sees the suite's
site-packages through a .pth file (so tensorflow, pip and setuptools are
there already) and gets only this project, `pip install --no-deps
--no-build-isolation --no-index`, from a copy of the sources; then its
`tilt-train` runs the toy pipeline with the test preset.
"""

import os
import shutil
import subprocess
import sys
import sysconfig

import tensorflow as tf

from tilt_tf import cli

SCRIPTS = ('tilt-train', 'tilt-evaluate', 'tilt-export', 'tilt-table1')


def _env():
  """The caller's environment without the runfiles on PYTHONPATH (the
  installed copy must be the one imported)."""
  env = dict(os.environ)
  env.pop('PYTHONPATH', None)
  env.pop('BUILD_WORKING_DIRECTORY', None)
  env['PIP_NO_CACHE_DIR'] = '1'
  env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
  return env


def _run(cmd, cwd, timeout):
  proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True,
                        text=True, timeout=timeout, check=False)
  if proc.returncode != 0:
    raise AssertionError(f'{" ".join(cmd)} exited {proc.returncode}\n'
                         f'stdout: {proc.stdout[-3000:]}\n'
                         f'stderr: {proc.stderr[-5000:]}')
  return proc


class InstallTest(tf.test.TestCase):

  def test_pip_install_and_tilt_train(self):
    tmp = self.create_tempdir().full_path
    # The sources as a checkout has them (runfiles are read-only symlinks).
    package_dir = os.path.dirname(os.path.abspath(cli.__file__))
    root = os.path.dirname(package_dir)
    src = os.path.join(tmp, 'src')
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', 'BUILD')
    for folder in (package_dir, os.path.join(root, 'configs')):
      shutil.copytree(folder, os.path.join(src, os.path.basename(folder)),
                      ignore=ignore)
    for package in ('tilt_tf', 'tilt_tf/generators', 'configs'):
      self.assertTrue(os.path.exists(os.path.join(src, package,
                                                  '__init__.py')), package)
    for name in ('pyproject.toml', 'requirements.txt'):
      shutil.copy(os.path.join(root, name), src)

    venv = os.path.join(tmp, 'venv')
    _run([sys.executable, '-m', 'venv', '--without-pip', venv], tmp, 120)
    python = os.path.join(venv, 'bin', 'python')
    site = _run([python, '-c', 'import sysconfig; '
                 'print(sysconfig.get_paths()["purelib"])'], tmp, 60)
    with open(os.path.join(site.stdout.strip(), 'suite.pth'), 'w') as f:
      f.write(sysconfig.get_paths()['purelib'] + '\n')

    _run([python, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
          '--no-index', '-q', src], tmp, 300)
    for script in SCRIPTS:
      self.assertTrue(os.access(os.path.join(venv, 'bin', script), os.X_OK),
                      script)
    where = _run([python, '-c', 'import tilt_tf.generators, configs; '
                  'print(tilt_tf.__file__); print(configs.__file__)'], tmp, 60)
    for path in where.stdout.split():
      self.assertStartsWith(path, venv)

    workdir = os.path.join(tmp, 'run')
    proc = _run([os.path.join(venv, 'bin', 'tilt-train'), '--base=mlp_vae',
                 '--preset=test', f'--workdir={workdir}'], tmp, 600)
    self.assertTrue(os.path.exists(os.path.join(workdir, 'metrics.json')),
                    proc.stderr[-3000:])
    # absl's --help exits 1; it shows the binary's docstring and flags.
    proc = subprocess.run([os.path.join(venv, 'bin', 'tilt-evaluate'),
                           '--help'], cwd=tmp, env=_env(), capture_output=True,
                          text=True, timeout=120, check=False)
    self.assertIn('Scores sample files', proc.stdout)
    self.assertIn('--samples', proc.stdout)
    self.assertNotIn('oneDNN', proc.stderr)


if __name__ == '__main__':
  tf.test.main()
