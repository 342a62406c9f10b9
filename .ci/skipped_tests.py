"""Lists the test methods that were skipped, from Bazel's JUnit XML files.

  python3 .ci/skipped_tests.py bazel-testlogs/tests/a_test ...  # target folders

Prints one line, "<folder>: Class.method, ...; <folder>: ..." for the
folders with skipped methods (shards' test.xml files included).

absltest writes a skipped method as <testcase status="notrun"
result="suppressed">; other JUnit writers use result="skipped" or a
<skipped/> child: all count. tf.test.TestCase's own `test_session` (a
deprecated helper that always skips itself, "Not a test.") is not one of
the project's tests and is left out. Exit code 1 when any was skipped.
"""

import os
import sys
import xml.etree.ElementTree as ET

_NOT_A_TEST = 'test_session'


def _skipped(path):
  """'target: Class.method' of each skipped test case in one test.xml."""
  try:
    root = ET.parse(path).getroot()
  except ET.ParseError as e:
    print(f'ci: {path} is not valid XML ({e})', file=sys.stderr)
    return []
  out = []
  for case in root.iter('testcase'):
    name = case.get('name', '')
    skipped = (case.get('status') == 'notrun' or
               case.get('result') in ('suppressed', 'skipped') or
               case.find('skipped') is not None)
    if skipped and name != _NOT_A_TEST:
      cls = case.get('classname', '').replace('__main__.', '')
      out.append(f'{cls}.{name}' if cls else name)
  return out


def main(folders):
  found = []
  for top in folders:
    methods = []
    for folder, _, names in sorted(os.walk(top, followlinks=True)):
      if 'test.xml' in names:
        methods += _skipped(os.path.join(folder, 'test.xml'))
    if methods:
      found.append(f'{top}: {", ".join(sorted(set(methods)))}')
  if found:
    print('; '.join(found))
  return 1 if found else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
