"""configs.get_config with --set overrides: types, derived fields, refusals;
the automatic preset (configs.choose_preset, train's announcement)."""

from unittest import mock

from absl import flags
from absl.testing import flagsaver
import tensorflow as tf

import configs
from tilt_tf import train
from tilt_tf.errors import UserError


def _glow(*overrides, dataset=None):
  return configs.get_config('glow', dataset, 'small', overrides=overrides)


class OverridesTest(tf.test.TestCase):

  def test_fields_parse_as_their_type(self):
    c = _glow('ebm.step_size=0.25', 'ebm.steps=40', 'ebm.channels=64,128',
              'base.preprocess=affine', 'ebm.alpha=1')
    self.assertEqual(c.ebm.step_size, 0.25)
    self.assertEqual(c.ebm.steps, 40)
    self.assertIsInstance(c.ebm.steps, int)
    self.assertEqual(c.ebm.channels, (64, 128))
    self.assertEqual(c.base.preprocess, 'affine')
    self.assertEqual(c.ebm.alpha, 1.0)
    self.assertIsInstance(c.ebm.alpha, float)
    # Untouched fields keep the preset's values.
    self.assertEqual(c.ebm.learning_rate, _glow().ebm.learning_rate)

  def test_booleans(self):
    c = configs.get_config('mlp_vae', '25gaussians', 'test')
    with c.unlocked():
      c.flag = False
    configs.apply_overrides(c, ['flag=true'])
    self.assertIs(c.flag, True)
    configs.apply_overrides(c, ['flag=0'])
    self.assertIs(c.flag, False)
    with self.assertRaisesRegex(UserError, 'is bool'):
      configs.apply_overrides(c, ['flag=yes please'])

  def test_empty_tuple_field_takes_numbers(self):
    c = configs.get_config('glf', 'fashion_mnist', 'test')
    self.assertEqual(c.ebm.energy_scale_grid, ())
    configs.apply_overrides(c, ['ebm.energy_scale_grid=2.5,4'])
    self.assertEqual(c.ebm.energy_scale_grid, (2.5, 4))
    with self.assertRaisesRegex(UserError, 'comma-separated list'):
      configs.apply_overrides(c, ['ebm.energy_scale_grid=two'])
    with self.assertRaisesRegex(UserError, r'energy_scale_grid=2.0,0.0 is out of range.*> 0'):
      configs.apply_overrides(c, ['ebm.energy_scale_grid=2,0'])
    with self.assertRaisesRegex(UserError, 'must be > 0'):
      configs.apply_overrides(c, ['ebm.sample_energy_scale=-1'])

  def test_derived_fields(self):
    # base.epochs still sets base.steps (applied before the adaptation) ...
    self.assertEqual(_glow('base.epochs=1').base.steps, 60_000 // 64)
    self.assertEqual(_glow().base.steps, 16 * (60_000 // 64))  # small: 16 epochs.
    # ... and a derived field set explicitly wins over the adaptation.
    self.assertEqual(_glow('base.steps=123').base.steps, 123)
    # A data set's adaptation still applies to --set values.
    self.assertEqual(_glow('base.epochs=1', dataset='cifar10').base.steps,
                     50_000 // 64)

  def test_refusals_name_the_problem(self):
    cases = {
        'ebm.stepsize=0.3': r"ebm has no field 'stepsize'; it has .*step_size",
        'emb.steps=3': r"the config has no field 'emb'",
        'ebm.steps=many': r"ebm.steps=many': the field is int .*'many' does "
                          'not parse',
        'ebm.channels=64,wide': 'comma-separated list',
        'ebm=3': 'ebm is a section; set one of its fields',
        'ebm.steps.x=3': 'ebm.steps is a field, not a section',
        'ebm.steps': 'expected field=value',
        '=3': 'expected field=value',
        'base_name=vae': 'chosen by --base',
        'preset=paper': 'chosen by --preset',
    }
    for item, pattern in cases.items():
      with self.assertRaisesRegex(UserError, pattern, msg=item):
        _glow(item)


class BoundsTest(tf.test.TestCase):

  def test_non_finite_floats_refused(self):
    for item in ('ebm.step_size=nan', 'ebm.alpha=inf', 'ebm.alpha=-Infinity',
                 'base.learning_rate=1e999'):
      field = item.partition('=')[0]
      with self.assertRaisesRegex(
          UserError, f"^--set '{item}': {field} must be a finite number",
          msg=item):
        _glow(item)

  def test_counts_and_sizes(self):
    cases = {
        'base.batch_size=0': r'^--set base.batch_size=0 is out of range; it '
                             'must be >= 1$',
        'sample.num=0': 'sample.num=0 is out of range; it must be >= 1',
        'ebm.steps=-1': 'ebm.steps=-1 is out of range; it must be >= 0',
        'ebm.langevin_steps=600000': r'must be <= 10_000 \(the bound is a '
                                     'guard against typos; .*BOUNDS',
        'base.steps=100000000': 'must be <= 10_000_000',
        'sample.num=2000000': 'must be <= 1_000_000',
        'ebm.channels=64,0': 'ebm.channels=64,0 is out of range',
        'seed=-3': 'seed=-3 is out of range; it must be >= 0',
        'seed=4294967296': r'must be <= 4294967295 \(seeds are unsigned',
    }
    for item, pattern in cases.items():
      with self.assertRaisesRegex(UserError, pattern, msg=item):
        _glow(item)
    # The bounds themselves are allowed.
    c = _glow('ebm.langevin_steps=10000', 'seed=4294967295', 'ebm.steps=0')
    self.assertEqual(c.seed, 2**32 - 1)

  def test_every_preset_is_within_bounds(self):
    for base in configs.MODULES:
      for preset in configs.PRESETS:
        c = configs.get_config(base, None, preset)
        for field in (list(configs.BOUNDS) + list(configs.POSITIVE) +
                      list(configs.NON_NEGATIVE) + list(configs.PROBABILITY)):
          section, _, key = field.rpartition('.')
          node = c[section] if section else c
          if key in node:
            configs.check_bounds(field, node[key], f'{base}/{preset} {field}')

  def test_check_bounds_names_the_flag(self):
    with self.assertRaisesRegex(UserError, r'^--tilt_steps=20000000 is out '
                                'of range; it must be <= 10_000_000'):
      configs.check_bounds('ebm.steps', 20_000_000, '--tilt_steps')
    configs.check_bounds('ebm.alpha', 0.0, '--x')  # Allowed.

  def test_step_sizes_and_learning_rates(self):
    cases = {
        'ebm.step_size=-0.01': r"^--set ebm.step_size=-0.01 is out of range; "
                               'it must be > 0$',
        'ebm.step_size=0': 'must be > 0',
        'ebm.learning_rate=-1e-4': 'must be > 0',
        'ebm.sample_step_size=-0.1': r'must be >= 0 \(0: ebm.step_size\)',
        'ebm.alpha=-1': 'must be >= 0',
        'ebm.reinit_prob=1.5': r'^--set ebm.reinit_prob=1.5 is out of range; '
                               r'it must be in \[0, 1\]$',
        'ebm.replay_buffer=-1': 'must be >= 0',
    }
    for item, pattern in cases.items():
      with self.assertRaisesRegex(UserError, pattern, msg=item):
        _glow(item)
    self.assertEqual(_glow('ebm.sample_step_size=0').ebm.sample_step_size, 0)


class ChoosePresetTest(tf.test.TestCase):

  def test_gpu_means_paper_none_means_small(self):
    self.assertEqual(configs.choose_preset(None, True),
                     ('paper', 'auto: GPU visible'))
    self.assertEqual(configs.choose_preset('', False),
                     ('small', 'auto: no GPU'))

  def test_explicit_preset_wins(self):
    for gpu in (True, False):
      for preset in configs.PRESETS:
        self.assertEqual(configs.choose_preset(preset, gpu), (preset, 'flag'))
    with self.assertRaisesRegex(UserError, "unknown preset 'huge'"):
      configs.choose_preset('huge', False)

  def test_every_base_has_a_small_time(self):
    self.assertCountEqual(configs.SMALL_CPU_TIME, configs.MODULES)
    line = configs.preset_announcement('glf', 'small', 'auto: no GPU')
    self.assertIn(configs.SMALL_CPU_TIME['glf'], line)
    self.assertIn('pass --preset=paper', line)
    self.assertNotIn('\n', line)


class TrainPresetTest(tf.test.TestCase):
  """tilt_tf/train.py's choice, with TensorFlow's GPU list mocked."""

  def setUp(self):
    super().setUp()
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()

  def _build(self, gpus, driver=False, **flag_values):
    with flagsaver.flagsaver(**flag_values), mock.patch.object(
        tf.config, 'list_physical_devices', return_value=gpus) as listed, \
        mock.patch.object(train.strategy_lib, 'nvidia_driver',
                          return_value=driver), \
        mock.patch.dict('os.environ', {'CUDA_VISIBLE_DEVICES': '0'}):
      with self.assertLogs('absl', level='INFO') as logs:
        train.logging.info('start')  # assertLogs needs one record at least.
        config = train.build_config()
    lines = [r.getMessage() for r in logs.records][1:]
    return config, lines, listed

  def test_no_gpu_chooses_small_and_says_so_once(self):
    config, lines, _ = self._build([], base='glf', preset=None)
    self.assertEqual(config.preset, 'small')
    self.assertEqual(config.preset_source, 'auto: no GPU')
    self.assertLen(lines, 1)
    self.assertIn('preset small', lines[0])
    self.assertIn(configs.SMALL_CPU_TIME['glf'], lines[0])
    self.assertIn('pass --preset=paper', lines[0])

  def test_driver_without_gpu_warns_in_one_line(self):
    config, lines, _ = self._build([], driver=True, base='glf', preset=None)
    self.assertEqual(config.preset, 'small')
    self.assertLen(lines, 2)
    self.assertIn('NVIDIA driver found but TensorFlow sees no GPU', lines[0])
    self.assertIn('To use the GPU', lines[0])
    self.assertNotIn('\n', lines[0])
    self.assertIn('preset small', lines[1])

  def test_gpu_chooses_paper(self):
    gpu = tf.config.PhysicalDevice('/physical_device:GPU:0', 'GPU')
    config, lines, listed = self._build([gpu], base='vae', preset=None)
    listed.assert_called_with('GPU')
    self.assertEqual(config.preset, 'paper')
    self.assertEqual(config.preset_source, 'auto: GPU visible')
    self.assertLen(lines, 1)
    self.assertIn('preset paper', lines[0])

  def test_flag_wins_silently(self):
    gpu = tf.config.PhysicalDevice('/physical_device:GPU:0', 'GPU')
    config, lines, _ = self._build([gpu], base='glf', preset='test')
    self.assertEqual(config.preset, 'test')
    self.assertNotIn('preset_source', config)
    self.assertEmpty(lines)


if __name__ == '__main__':
  tf.test.main()
