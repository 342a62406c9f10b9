"""The train binary's config overrides: --config.section.field=value
(ml_collections config_flags) and its alias --set, applied by build_config()
to the config --base/--preset choose, with the bounds and choices checks."""

import sys

from absl import flags
from absl.testing import absltest
from absl.testing import flagsaver

# config_flags defines one flag per --config.* override on the command line
# when tilt_tf.train is imported: the overrides these tests use.
_NAMES = ('ebm.step_size', 'ebm.channels', 'ebm.stepsize', 'ebm.steps',
          'base.flow_hidden', 'precision', 'base_name', 'sample.num')
_saved_argv = sys.argv
sys.argv = sys.argv[:1] + [f'--config.{n}=None' for n in _NAMES]
try:
  from tilt_tf import train  # pylint: disable=g-import-not-at-top
finally:
  sys.argv = _saved_argv
from tilt_tf.errors import UserError  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS


def _config(*args):
  """build_config() after parsing `args` as the binary's command line."""
  FLAGS(['train', '--preset=test'] + list(args))
  return train.build_config()


class TrainFlagsTest(absltest.TestCase):

  @flagsaver.flagsaver
  def test_config_flags_set_fields_as_their_type(self):
    config = _config('--base=vae', '--config.ebm.step_size=0.3',
                     '--config.ebm.channels=64,128', '--config.sample.num=7')
    self.assertEqual(config.ebm.step_size, 0.3)
    self.assertEqual(config.ebm.channels, (64, 128))
    self.assertEqual(config.sample.num, 7)
    config = _config('--base=vae', '--config.ebm.step_size=1',
                     '--config.ebm.channels=32')
    self.assertIsInstance(config.ebm.step_size, float)  # The field's type.
    self.assertEqual(config.ebm.channels, (32,))

  @flagsaver.flagsaver
  def test_set_is_an_alias_applied_before_config_flags(self):
    config = _config('--base=vae', '--set=ebm.step_size=0.5',
                     '--config.ebm.step_size=0.25', '--set=ebm.alpha=0.02')
    self.assertEqual(config.ebm.step_size, 0.25)
    self.assertEqual(config.ebm.alpha, 0.02)

  @flagsaver.flagsaver
  def test_fields_are_those_of_the_chosen_base(self):
    self.assertEqual(_config('--base=glf', '--config.base.flow_hidden=32')
                     .base.flow_hidden, 32)
    with self.assertRaisesRegex(UserError, "base has no field 'flow_hidden'"):
      _config('--base=vae', '--config.base.flow_hidden=32')

  def test_bad_values_are_user_errors(self):
    cases = [
        ('--config.ebm.step_size=-1',
         r'^--config.ebm.step_size=-1.0 is out of range; it must be > 0$'),
        ('--config.ebm.stepsize=1',
         r"^--config.ebm.stepsize=1: ebm has no field 'stepsize'; it has "),
        ('--config.ebm.steps=ten', r'^--config.ebm.steps=ten: the field is '
                                   r'int \(now \d+\)'),
        ('--config.ebm.steps=20000000',
         r'^--config.ebm.steps=20000000 is out of range; it must be <= '),
        ('--config.precision=fp16',
         r"^--config.precision='fp16' is not one of float32, bf16$"),
        ('--config.base_name=glow',
         r'^--config.base_name=glow: base_name is chosen by --base'),
    ]
    for arg, pattern in cases:
      with self.subTest(arg=arg), flagsaver.flagsaver():
        with self.assertRaisesRegex(UserError, pattern):
          _config('--base=vae', arg)


if __name__ == '__main__':
  absltest.main()
