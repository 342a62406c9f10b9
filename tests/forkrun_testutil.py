"""`python -m MODULE ARGS` many times in one test without importing
TensorFlow each time.

Each run of a binary (tilt_tf.train, tilt_tf.table1, ...) in a new process
spends ~5 s of CPU importing TensorFlow before its first line of its own: a
test that checks a dozen one-line refusals spent a minute of CPU there. A
ForkServer is a process that imports TensorFlow and other third-party
modules once (never tilt_tf, and it runs no TensorFlow op); each run is a
child forked from it that runs the module as `python -m` does (runpy,
`__main__`, sys.argv, alter_sys) in its own folder and environment, stdin
from /dev/null, stdout and stderr to files, exit code from its SystemExit,
os._exit or uncaught exception, atexit handlers run. The binary's flags,
its tilt_tf imports, quiet.py and its error boundary are all its own.

TensorFlow's runtime (thread pools, devices) starts in each child at its
first op, as in a new process, so a run may train too. A test file that
forks a binary's runs still starts that binary as a plain process
somewhere (train_cli_test, table1_test, ...): that is what a user starts.
Environment variables that only TensorFlow's C++ start-up reads
(TF_CPP_MIN_LOG_LEVEL) are the server's: start it with the runs'
environment.
"""

import json
import os
import subprocess
import sys
import tempfile

__all__ = ['ForkServer', 'Forked']

_SERVER = r'''
import atexit, json, os, runpy, signal, sys, time, types
for _name in sys.argv[1:]:
  __import__(_name)
_replies = os.fdopen(os.dup(1), 'w')
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # Imports' prints: not replies.


def _exit_code(e):
  if e.code is None:
    return 0
  if isinstance(e.code, int):
    return e.code
  print(e.code, file=sys.stderr)
  return 1


def _child(req):
  code = 1
  try:
    os.setpgid(0, 0)
    _replies.close()
    os.chdir(req['cwd'])
    os.environ.clear()
    os.environ.update(req['env'])
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    sys.stdin = open(os.devnull)
    for fd, path in ((1, req['stdout']), (2, req['stderr'])):
      os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.argv = [req['module'] or '-c'] + req['args']
    try:
      if req['inject']:
        exec(compile(req['inject'], '<inject>', 'exec'), {})
      if req['module']:
        runpy.run_module(req['module'], run_name='__main__', alter_sys=True)
      else:  # python -c CODE
        main = sys.modules['__main__'] = types.ModuleType('__main__')
        exec(compile(req['code'], '<string>', 'exec'), main.__dict__)
      code = 0
    except SystemExit as e:
      code = _exit_code(e)
    except BaseException as e:  # As the interpreter reports an uncaught one.
      sys.excepthook(type(e), e, e.__traceback__)
      code = 1
    atexit._run_exitfuncs()
  finally:
    for stream in (sys.stdout, sys.stderr):
      try:
        stream.flush()
      except Exception:
        pass
    os._exit(code)


def _wait(pid, timeout):
  deadline = time.monotonic() + timeout
  while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
      return os.waitstatus_to_exitcode(status)
    if time.monotonic() > deadline:
      os.killpg(pid, signal.SIGKILL)
      os.waitpid(pid, 0)
      return 'timeout'
    time.sleep(0.02)


for line in sys.stdin:
  req = json.loads(line)
  sys.stdout.flush()
  sys.stderr.flush()
  pid = os.fork()
  if pid == 0:
    _child(req)
  try:  # The child does it too: a killpg(pid) right after the reply works.
    os.setpgid(pid, pid)
  except OSError:
    pass
  _replies.write(json.dumps({'pid': pid}) + '\n')
  _replies.flush()
  _replies.write(json.dumps({'returncode': _wait(pid, req['timeout'])}) + '\n')
  _replies.flush()
'''


class Forked:
  """A run started by ForkServer.start: `pid` (also its process group's
  id: kill it with os.killpg), `wait()` -> its exit code (-N: killed by
  signal N)."""

  def __init__(self, reply, pid, command, timeout):
    self._reply, self.pid, self.command = reply, pid, command
    self.timeout = timeout
    self.returncode = None

  def wait(self):
    if self.returncode is None:
      self.returncode = self._reply()['returncode']
      if self.returncode == 'timeout':
        raise subprocess.TimeoutExpired(self.command, self.timeout)
    return self.returncode


class ForkServer:
  """Runs `python -m module args` in children of one warm process.

  server = ForkServer(env)  # env: the runs' environment (PYTHONPATH, ...)
  proc = server.run('tilt_tf.train', ['--base=gan'], cwd=folder)
  proc = server.run(None, ['arg'], code='import sys; ...')  # python -c
  proc.returncode, proc.stdout, proc.stderr  # As subprocess.run's.
  server.close()
  """

  # What every run imports (tilt_tf's own modules stay the run's): with
  # TensorFlow Probability and pyplot too, a run starts ~0.7 s of CPU sooner.
  PRELOAD = ('tensorflow', 'tf_keras', 'keras', 'tensorflow_probability',
             'matplotlib.pyplot')

  def __init__(self, env, preload=PRELOAD):
    self.env = dict(env)
    self._log = tempfile.TemporaryFile()
    self._proc = subprocess.Popen(
        [sys.executable, '-c', _SERVER] + list(preload),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        env=self.env, text=True)

  def start(self, module, args, stdout, stderr, cwd=None, env_extra=None,
            inject=None, timeout=300, code=None):
    """Starts `python -m module args` (module=None: `python -c code args`)
    in a fork, its output to the files `stdout` and `stderr`, and returns
    at once: a Forked. The server runs one at a time: wait() for it before
    the next start or run."""
    req = dict(module=module, code=code, args=list(args),
               cwd=os.path.abspath(cwd or os.getcwd()),
               env=dict(self.env, **(env_extra or {})), inject=inject,
               stdout=stdout, stderr=stderr, timeout=timeout)
    self._proc.stdin.write(json.dumps(req) + '\n')
    self._proc.stdin.flush()
    command = [sys.executable] + (['-m', module] if module else
                                  ['-c', code]) + list(args)
    return Forked(self._reply, self._reply()['pid'], command, timeout)

  def run(self, module, args, cwd=None, env_extra=None, inject=None,
          timeout=300, code=None):
    """subprocess.run([python, '-m', module] + args, ...) in a fork (with
    module=None: [python, '-c', code] + args); `inject`: Python code the
    child runs first (fault injection)."""
    with tempfile.TemporaryDirectory() as tmp:
      paths = [os.path.join(tmp, name) for name in ('stdout', 'stderr')]
      forked = self.start(module, args, *paths, cwd=cwd, env_extra=env_extra,
                          inject=inject, timeout=timeout, code=code)
      try:
        returncode = forked.wait()
      except subprocess.TimeoutExpired as e:
        e.output, e.stderr = (_read(path) for path in paths)
        raise
      outs = [_read(path) for path in paths]
    return subprocess.CompletedProcess(forked.command, returncode, *outs)

  def _reply(self):
    reply = self._proc.stdout.readline()
    if not reply:
      self._log.seek(0)
      raise AssertionError('the fork server died: ' + self._log.read()
                           .decode('utf-8', 'replace')[-3000:])
    return json.loads(reply)

  def close(self):
    self._proc.stdin.close()
    self._proc.wait(timeout=60)
    self._proc.stdout.close()
    self._log.close()


def _read(path):
  with open(path, encoding='utf-8', errors='replace') as f:
    return f.read()
