"""`pip install .` (pyproject.toml) without Bazel: the console scripts work,
and installing keeps the numpy and scipy an environment already has.

Offline and in seconds: a new venv of the suite's interpreter sees the suite's
site-packages through a .pth file (so tensorflow, pip and setuptools are
there already) and gets only this project, `pip install --no-deps
--no-build-isolation --no-index`, from a copy of the sources; then its
`tilt-train` runs the toy pipeline with the test preset.

The dependency check resolves for real (`pip install --dry-run --report`,
with dependencies, offline): the venv first holds numpy 2.1.0 and scipy
1.14.1, older than requirements.txt's, as metadata-only installs (no modules:
nothing imports them), and a local wheelhouse offers requirements.txt's numpy
and scipy (metadata-only wheels), as PyPI would. pip must plan to install
tilt_tf alone, everything else being satisfied by what is installed.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

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


def _root():
  return os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))


def _metadata(name, version, requires=()):
  return ''.join([f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n'
                  'Requires-Python: >=3.10\n'] +
                 [f'Requires-Dist: {r}\n' for r in requires])


def _fake_install(site, name, version, requires=()):
  """A metadata-only install of `name` (a dist-info, no modules)."""
  info = os.path.join(site, f'{name}-{version}.dist-info')
  os.makedirs(info)
  files = {'METADATA': _metadata(name, version, requires),
           'INSTALLER': 'pip\n'}
  for file, text in files.items():
    with open(os.path.join(info, file), 'w') as f:
      f.write(text)
  with open(os.path.join(info, 'RECORD'), 'w') as f:
    f.writelines(f'{name}-{version}.dist-info/{file},,\n'
                 for file in (*files, 'RECORD'))


def _fake_wheel(folder, name, version, requires=()):
  """A metadata-only wheel of `name` (what an index would offer)."""
  info = f'{name}-{version}.dist-info'
  path = os.path.join(folder, f'{name}-{version}-py3-none-any.whl')
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr(f'{info}/METADATA', _metadata(name, version, requires))
    z.writestr(f'{info}/WHEEL', 'Wheel-Version: 1.0\nGenerator: test\n'
               'Root-Is-Purelib: true\nTag: py3-none-any\n')
    z.writestr(f'{info}/RECORD', f'{info}/METADATA,,\n{info}/WHEEL,,\n'
               f'{info}/RECORD,,\n')


def _pins():
  """requirements.txt as {name: version}."""
  pins = {}
  with open(os.path.join(_root(), 'requirements.txt')) as f:
    for line in f:
      line = line.split('#', 1)[0].strip()
      if line:
        name, version = line.split('==')
        pins[name.lower()] = version
  return pins


class InstallTest(tf.test.TestCase):

  def _sources(self, tmp):
    """A copy of the sources as a checkout has them (runfiles are read-only
    symlinks)."""
    root = _root()
    src = os.path.join(tmp, 'src')
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', 'BUILD')
    for folder in ('tilt_tf', 'configs'):
      shutil.copytree(os.path.join(root, folder), os.path.join(src, folder),
                      ignore=ignore)
    for package in ('tilt_tf', 'tilt_tf/generators', 'configs'):
      self.assertTrue(os.path.exists(os.path.join(src, package,
                                                  '__init__.py')), package)
    for name in ('pyproject.toml', 'requirements.txt'):
      shutil.copy(os.path.join(root, name), src)
    return src

  def _venv(self, tmp):
    """A new venv that sees the suite's site-packages (after its own):
    (python, its site-packages)."""
    venv = os.path.join(tmp, 'venv')
    _run([sys.executable, '-m', 'venv', '--without-pip', venv], tmp, 120)
    python = os.path.join(venv, 'bin', 'python')
    site = _run([python, '-c', 'import sysconfig; '
                 'print(sysconfig.get_paths()["purelib"])'], tmp, 60)
    site = site.stdout.strip()
    with open(os.path.join(site, 'suite.pth'), 'w') as f:
      f.write(sysconfig.get_paths()['purelib'] + '\n')
    return python, site

  def test_install_keeps_older_numpy_and_scipy(self):
    tmp = self.create_tempdir().full_path
    src = self._sources(tmp)
    python, site = self._venv(tmp)
    pins = _pins()
    mine = {'numpy': '2.1.0', 'scipy': '1.14.1'}
    for name in mine:  # Older than the lock, or the test proves nothing.
      self.assertLess(tuple(map(int, mine[name].split('.'))),
                      tuple(map(int, pins[name].split('.'))), name)
    _fake_install(site, 'numpy', mine['numpy'])
    _fake_install(site, 'scipy', mine['scipy'], ['numpy<2.3,>=1.23.5'])
    wheels = os.path.join(tmp, 'wheels')
    os.mkdir(wheels)
    _fake_wheel(wheels, 'numpy', pins['numpy'])
    _fake_wheel(wheels, 'scipy', pins['scipy'], ['numpy<2.7,>=1.26.4'])
    seen = _run([python, '-c', 'from importlib import metadata; '
                 'print(metadata.version("numpy"), metadata.version("scipy"))'],
                tmp, 60)
    self.assertEqual(seen.stdout.split(), [mine['numpy'], mine['scipy']])

    report = os.path.join(tmp, 'report.json')
    _run([python, '-m', 'pip', 'install', '--dry-run', '--report', report,
          '--no-index', '--find-links', wheels, '--no-build-isolation', '-q',
          src], tmp, 300)
    with open(report) as f:
      planned = {re.sub(r'[-_.]+', '-', item['metadata']['name'].lower()):
                 item['metadata']['version']
                 for item in json.load(f)['install']}
    self.assertEqual(planned, {'tilt-tf': '0.1.0'},
                     f'pip plans to install {planned} over numpy/scipy '
                     f'{mine} (exact pins in pyproject.toml, not ranges?)')

  def test_pip_install_and_tilt_train(self):
    tmp = self.create_tempdir().full_path
    src = self._sources(tmp)
    python, _ = self._venv(tmp)
    venv = os.path.dirname(os.path.dirname(python))

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
