"""Running a subprocess that cannot write into a read-only folder, as root
too (CI runs as root), for the permission tests.

Root writes through chmod 0555 by its CAP_DAC_OVERRIDE. A permission test
then runs its subprocess as root without the capabilities that bypass file
permissions (setpriv, util-linux: a Debian essential), so the kernel refuses
it as it refuses any user. (Not as `nobody`: the venv's interpreter may live
under /root, mode 0700, which nobody cannot reach.)
"""

import subprocess
import sys

__all__ = ['NO_DAC_CAPS', 'unprivileged']

NO_DAC_CAPS = ['setpriv',
               '--inh-caps=-dac_override,-dac_read_search,-fowner',
               '--bounding-set=-dac_override,-dac_read_search,-fowner']


def unprivileged(folder):
  """The command prefix under which this Python cannot write into `folder`
  (chmod 0555): none for an ordinary user, NO_DAC_CAPS for root."""
  probe = [sys.executable, '-c', 'import sys, tempfile\n'
           'tempfile.TemporaryFile(dir=sys.argv[1])', folder]
  for prefix in ([], NO_DAC_CAPS):
    proc = subprocess.run(prefix + probe, capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode and 'PermissionError' in proc.stderr:
      return prefix
    if proc.returncode:
      raise AssertionError(f'probe {prefix + probe} failed: {proc.stderr}')
  raise AssertionError(f'{folder} (chmod 0555) stays writable even without '
                       'CAP_DAC_OVERRIDE')
