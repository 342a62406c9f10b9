"""Finds Bazel targets whose Python sources import a tilt_tf module their
`deps` do not name.

Plain Python finds every module of the checkout, so a missing dep only
shows under Bazel's sandbox, where a test sees just its deps' files
(`cannot import name 'rng' from 'tilt_tf'`). This reads the BUILD files
and the sources' `from tilt_tf... import ...` lines (lazy imports inside
functions too) and lists what each target lacks, directly. A rough parser
for this repository's BUILD style (tools/BUILD_CONVENTIONS.md), not Starlark.

  python3 tools/check_build_deps.py            # prints the gaps; exit 1 if any
"""

import os
import re
import sys

_TARGET = re.compile(r'(py_library|py_binary|py_test)\((.*?)\n\)', re.S)
_IMPORT = re.compile(r'\s*(?:from (tilt_tf(?:\.\w+)*) import (\w+)|'
                     r'import (tilt_tf(?:\.\w+)*)\.(\w+))')
_SKIP = ('bazel-', '.venv', '.git', 'runs')


def parse_targets(text):
  """(kind, name, body, srcs, deps) of each py_* target in a BUILD file's
  text; srcs are the .py files, deps the labels as written."""
  for m in _TARGET.finditer(text):
    kind, body = m.groups()
    name = re.search(r'name = "([^"]+)"', body).group(1)
    srcs = re.search(r'srcs = \[(.*?)\]', body, re.S)
    deps = re.search(r'deps = \[(.*?)\]', body, re.S)
    yield (kind, name, body,
           re.findall(r'"([^"]+\.py)"', srcs.group(1)) if srcs else [],
           re.findall(r'"([^"]+)"', deps.group(1)) if deps else [])


def _targets(root, build):
  pkg = os.path.relpath(os.path.dirname(build), root)
  for _, name, _, srcs, deps in parse_targets(open(build).read()):
    yield pkg, name, srcs, deps


def _build_files(root):
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if not d.startswith(_SKIP)]
    if 'BUILD' in filenames:
      yield os.path.join(dirpath, 'BUILD')


def _label(dep, pkg):
  if dep.startswith(':'):
    return f'//{pkg}{dep}'
  if dep.startswith('//') and ':' not in dep:
    return f'{dep}:{dep.rsplit("/", 1)[1]}'
  return dep


def _imported(root, pkg, srcs):
  """Module paths (relative to root) the sources import from tilt_tf."""
  for src in srcs:
    path = os.path.join(root, pkg, src)
    if not os.path.exists(path):
      continue
    for line in open(path):
      m = _IMPORT.match(line)
      if not m:
        continue
      package, name = (m.group(1), m.group(2)) if m.group(1) else (
          m.group(3), m.group(4))
      module = os.path.join(*package.split('.'), name + '.py')
      if not os.path.exists(os.path.join(root, module)):
        module = os.path.join(*package.split('.')) + '.py'
      yield module


def missing_deps(root):
  """{'//pkg:target': sorted labels it imports without naming them}."""
  targets = [t for b in _build_files(root) for t in _targets(root, b)]
  owner = {}
  for pkg, name, srcs, _ in targets:
    for src in srcs:
      if src != '__init__.py':
        owner.setdefault(os.path.join(pkg, src), f'//{pkg}:{name}')
  gaps = {}
  for pkg, name, srcs, deps in targets:
    me, have = f'//{pkg}:{name}', {_label(d, pkg) for d in deps}
    need = {owner[m] for m in _imported(root, pkg, srcs) if m in owner}
    need -= have | {me}
    if need:
      gaps[me] = sorted(need)
  return gaps


def main():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  gaps = missing_deps(root)
  for target, need in sorted(gaps.items()):
    print(f'{target} imports without a dep: {", ".join(need)}')
  return 1 if gaps else 0


if __name__ == '__main__':
  sys.exit(main())
