"""Every Bazel target names the tilt_tf modules its sources import
(tools/check_build_deps.py): a missing dep passes under plain Python and
fails only in Bazel's sandbox."""

import ast
import os
import re
import sys
import tempfile

import tensorflow as tf


def _checkout():
  """The source tree: this file's real path (Bazel's runfiles link to it)."""
  return os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


ROOT = _checkout()
sys.path.insert(0, os.path.join(ROOT, 'tools'))
import check_build_deps  # pylint: disable=g-import-not-at-top,wrong-import-position


class BuildDepsTest(tf.test.TestCase):

  def test_the_checkout_is_found(self):
    self.assertTrue(os.path.exists(os.path.join(ROOT, 'WORKSPACE')), ROOT)
    self.assertTrue(os.path.exists(os.path.join(ROOT, 'tilt_tf', 'BUILD')))

  def test_no_target_imports_without_a_dep(self):
    self.assertEqual(check_build_deps.missing_deps(ROOT), {})

  def test_a_missing_dep_is_found(self):
    root = tempfile.mkdtemp(dir=self.get_temp_dir())
    os.makedirs(os.path.join(root, 'tilt_tf'))
    with open(os.path.join(root, 'tilt_tf', 'BUILD'), 'w') as f:
      f.write('py_library(\n    name = "a",\n    srcs = ["a.py"],\n)\n\n'
              'py_library(\n    name = "b",\n    srcs = ["b.py"],\n'
              '    deps = [":a"],\n)\n\n'
              'py_library(\n    name = "c",\n    srcs = ["c.py"],\n)\n')
    for name, text in (('a', ''), ('b', 'from tilt_tf import a\n'),
                       ('c', 'def f():\n  from tilt_tf import a\n')):
      with open(os.path.join(root, 'tilt_tf', name + '.py'), 'w') as f:
        f.write(text)
    self.assertEqual(check_build_deps.missing_deps(root),
                     {'//tilt_tf:c': ['//tilt_tf:a']})


def _grouped(build_text):
  """{test module: group} for the py_tests tagged to run in a group, and
  {group: the modules its srcs list}, from tests/BUILD's text."""
  tagged, listed = {}, {}
  for kind, name, body, srcs, _ in check_build_deps.parse_targets(build_text):
    if kind != 'py_test':
      continue
    tag = re.search(r'tags = \["manual"\],  # Runs in :(\w+)\.', body)
    if tag:
      tagged[name[:-len('_test')]] = tag.group(1)
    elif 'main = ' in body:
      listed[name] = {s[:-len('_test.py')] for s in srcs
                      if s.endswith('_test.py')}
  return tagged, listed


def _runner_modules(path):
  """The MODULES tuple of a group runner (tests/unit_tests.py, ...)."""
  tree = ast.parse(open(path).read())
  for node in tree.body:
    if (isinstance(node, ast.Assign) and
        getattr(node.targets[0], 'id', None) == 'MODULES'):
      return set(ast.literal_eval(node.value))
  return set()


class GroupedTestsTest(tf.test.TestCase):
  """A test module tagged manual runs only in its group: it must be in the
  group's srcs and in its runner's MODULES, or CI never runs it."""

  def test_every_manual_test_module_runs_in_its_group(self):
    with open(os.path.join(ROOT, 'tests', 'BUILD')) as f:
      tagged, listed = _grouped(f.read())
    self.assertNotEmpty(tagged)
    for group in set(tagged.values()):
      members = {m for m, g in tagged.items() if g == group}
      self.assertEqual(listed.get(group), members, group)
      self.assertEqual(
          _runner_modules(os.path.join(ROOT, 'tests', f'{group}.py')),
          members, group)

  def test_a_module_left_out_of_its_runner_is_found(self):
    build = ('py_test(\n    name = "a_test",\n    tags = ["manual"],  # Runs '
             'in :unit_tests.\n    srcs = ["a_test.py"],\n)\n\n'
             'py_test(\n    name = "unit_tests",\n    srcs = [\n        '
             '"unit_tests.py",\n        "b_test.py",\n    ],\n    main = '
             '"unit_tests.py",\n)\n')
    tagged, listed = _grouped(build)
    self.assertEqual(tagged, {'a': 'unit_tests'})
    self.assertEqual(listed, {'unit_tests': {'b'}})

if __name__ == '__main__':
  tf.test.main()
