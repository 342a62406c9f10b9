"""Every Bazel target names the tilt_tf modules its sources import
(tools/check_build_deps.py): a missing dep passes under plain Python and
fails only in Bazel's sandbox."""

import os
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


if __name__ == '__main__':
  tf.test.main()
