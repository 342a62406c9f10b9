"""ml_collections configs: one module per base, presets inside each.

`get_config(base, dataset, preset, overrides)` is what the binaries call;
each module's `get_config(preset)` documents its launch command.
`choose_preset(explicit, gpu_available)` picks the preset when --preset is
not given: `paper` with a GPU, else `small`. `overrides`
are 'section.field=value' strings (the train binary's `--set`), e.g.
'ebm.step_size=0.3': any existing field, parsed as the type it has.
"""

import importlib
import math

import ml_collections

from tilt_tf.errors import UserError

PRESETS = ('paper', 'small', 'test')

_STEPS = 10_000_000  # Training steps.
_LANGEVIN = 10_000  # Langevin steps per chain.
_COUNT = 1_000_000  # Samples, sizes.
_SEED = 2**32 - 1

# Integer fields that are counts, sizes, periods or seeds: field ->
# (smallest, largest) value a --set (or its flag) may give. The upper bounds
# are a guard against typos (an extra 0 that would run for days); raise one
# here if a run really needs more. Tuples (e.g. ebm.channels) are checked
# element by element. Fields not listed are not range-checked.
BOUNDS = {
    'seed': (0, _SEED),
    'base.flow_seed': (0, _SEED),
    'n_train': (0, 100_000_000),
    'base.steps': (0, _STEPS),
    'ebm.steps': (0, _STEPS),
    'base.epochs': (0, 100_000),
    'base.langevin_steps': (0, _LANGEVIN),
    'ebm.langevin_steps': (0, _LANGEVIN),
    'ebm.sample_langevin_steps': (0, _LANGEVIN),
    'sample.num': (1, _COUNT),
    'ebm.monitor_samples': (1, _COUNT),
    'base.batch_size': (1, 100_000),
    'ebm.batch_size': (1, 100_000),
    'sample.batch_size': (1, 100_000),
    'base.buffer_size': (1, _STEPS),
    'log_every': (1, _STEPS),
    'steps_per_loop': (1, _STEPS),
    'checkpoint_every': (1, _STEPS),
    'keep_checkpoints': (1, 1000),
    'ebm.log_every': (1, _STEPS),
    'ebm.monitor_every': (1, _STEPS),
    'ebm.patience': (0, _STEPS),
    'sample.grid': (1, 10_000),
    'sample.chain_every': (1, _LANGEVIN),
    'eval.classifier_epochs': (0, 10_000),
    # Architecture sizes.
    'base.latent_dim': (1, _COUNT),
    'base.hidden': (1, _COUNT),
    'base.layers': (1, 10_000),
    'base.width': (1, _COUNT),
    'base.channels': (1, _COUNT),
    'base.blocks': (1, 10_000),
    'base.num_blocks': (1, 10_000),
    'base.steps_per_block': (1, 10_000),
    'base.flow_hidden': (1, _COUNT),
    'base.flow_layers': (1, 10_000),
    'base.stem_stride': (1, 64),
    'ebm.hidden': (1, _COUNT),
    'ebm.layers': (1, 10_000),
    'ebm.channels': (1, _COUNT),
    'ebm.blocks': (1, 10_000),
    'ebm.stem_stride': (1, 64),
    'ebm.stem_pool': (1, 64),
    'ebm.fourier_features': (0, _COUNT),
    'ebm.replay_buffer': (0, _COUNT),
    'distill.components': (1, 10_000),
    'distill.em_iterations': (1, _STEPS),
}

# String fields with a fixed set of values.
CHOICES = {
    'precision': ('float32', 'bf16'),
    'method': ('latent_tilt', 'pixel_ebm'),
    'distill.model': ('kde', 'mixture', 'flow'),
}

# Upper bounds that are limits, not typo guards.
_HARD_BOUNDS = {'seed': 'seeds are unsigned 32-bit integers',
                'base.flow_seed': 'seeds are unsigned 32-bit integers'}


# Float fields that must be > 0 (step sizes, learning rates) or >= 0.
POSITIVE = ('ebm.step_size', 'base.step_size', 'ebm.learning_rate',
            'base.learning_rate', 'ebm.sample_energy_scale',
            'ebm.energy_scale_grid', 'distill.reg_covar',
            'distill.bandwidth')
NON_NEGATIVE = {'ebm.sample_step_size': ' (0: ebm.step_size)',
                'ebm.alpha': '', 'base.alpha': '',
                'base.param_clip': ' (0: no parameter-gradient clip)'}
PROBABILITY = ('ebm.reinit_prob', 'base.reinit_prob')


def check_bounds(field, value, name):
  """Raises UserError if `value` of config `field` ('ebm.steps') is outside
  BOUNDS (or POSITIVE / NON_NEGATIVE for floats); `name` is how the user gave
  it (e.g. '--tilt_steps' or the field itself), named in the message."""
  if field in POSITIVE and any(
      isinstance(v, (int, float)) and not v > 0
      for v in (value if isinstance(value, tuple) else (value,))):
    raise UserError(f'{name}={_show(value)} is out of range; it must be > 0')
  if isinstance(value, float) and field in NON_NEGATIVE and value < 0:
    raise UserError(f'{name}={value} is out of range; it must be >= 0'
                    f'{NON_NEGATIVE[field]}')
  if field in PROBABILITY and not 0 <= value <= 1:
    raise UserError(f'{name}={value} is out of range; it must be in [0, 1]')
  if field in CHOICES and value not in CHOICES[field]:
    raise UserError(f'{name}={value!r} is not one of '
                    f'{", ".join(CHOICES[field])}')
  if field not in BOUNDS:
    return
  low, high = BOUNDS[field]
  for v in (value if isinstance(value, tuple) else (value,)):
    if isinstance(v, bool) or not isinstance(v, int):
      continue
    if v < low:
      raise UserError(f'{name}={_show(value)} is out of range; it must be '
                      f'>= {low}')
    if v > high and field in _HARD_BOUNDS:
      raise UserError(f'{name}={_show(value)} is out of range; it must be '
                      f'<= {high} ({_HARD_BOUNDS[field]})')
    if v > high:
      raise UserError(
          f'{name}={_show(value)} is out of range; it must be <= {high:_} '
          '(the bound is a guard against typos; to go beyond it, raise '
          f'BOUNDS[{field!r}] in configs/__init__.py)')


def _show(value):
  return ','.join(map(str, value)) if isinstance(value, tuple) else value


# How long `--preset=small` takes end to end on a 2-core CPU, from
# docs/performance.md's measurements (GLF, VAE: idle 2-core AMD EPYC, short
# chains; GLOW, pixel EBM: a CPU shared with another job).
SMALL_CPU_TIME = {
    'glf': '12 min',
    'vae': '19 min',
    'glow': '90 min',
    'pixel_ebm': '51 min',
    'mlp_vae': 'under 15 min (the paper preset takes ~15 min)',
    # A user's generator: no base stage, and the paper's chains (60 / 100
    # steps of eps 0.01; short chains were measured on VAE and GLF only).
    'generator': 'depends on your model (GLF small\'s stages without the '
                 'base, with the paper\'s chains: ~35 min)',
}

# --base -> config module.
MODULES = {
    'mlp_vae': 'toy',
    'vae': 'vae',
    'glf': 'glf',
    'glow': 'glow',
    'pixel_ebm': 'pixel_ebm',
    'generator': 'generator',  # A user's model: --generator=PATH.
}


def _number(text):
  """An item of an empty tuple field: an int if it reads as one, else a
  float (e.g. ebm.energy_scale_grid=2.5,4)."""
  try:
    return int(text)
  except ValueError:
    return float(text)


def _parse(text, current, where, said):
  """`text` as the type of the field's `current` value (`where`: the
  field; `said`: the override as the user gave it, for messages)."""
  try:
    if isinstance(current, bool):
      lowered = text.strip().lower()
      if lowered not in ('true', 'false', '1', '0'):
        raise ValueError(text)
      return lowered in ('true', '1')
    if isinstance(current, tuple):
      kind = type(current[0]) if current else _number
      value = tuple(kind(t) for t in text.split(',') if t.strip())
    elif isinstance(current, int):
      value = int(text)
    elif isinstance(current, float):
      value = float(text)
    else:
      return text
  except ValueError:
    kind = ('a comma-separated list' if isinstance(current, tuple)
            else type(current).__name__)
    raise UserError(f'{said}: the field is {kind} (now {current!r}); '
                    f'{text!r} does not parse as one') from None
  for v in (value if isinstance(value, tuple) else (value,)):
    if isinstance(v, float) and not math.isfinite(v):
      raise UserError(f'{said}: {where} must be a finite number, not {v}')
  return value


# Fields chosen by their own flags (they pick the config module and preset).
_NOT_OVERRIDABLE = {'base_name': '--base', 'preset': '--preset',
                    'preset_source': '--preset'}


def choose_preset(explicit, gpu_available):
  """The preset to run: an explicit --preset always wins, else the paper's
  settings where a GPU is visible and `small` on a CPU.

  Args:
    explicit: the --preset flag's value; None or '' means choose.
    gpu_available: whether TensorFlow sees a GPU.
  Returns:
    (preset, source): source is 'flag', 'auto: GPU visible' or
    'auto: no GPU'.
  Raises:
    UserError: an explicit preset that does not exist.
  """
  if explicit:
    if explicit not in PRESETS:
      raise UserError(f'unknown preset {explicit!r}; choose one of '
                      f'{", ".join(PRESETS)}')
    return explicit, 'flag'
  if gpu_available:
    return 'paper', 'auto: GPU visible'
  return 'small', 'auto: no GPU'


def preset_announcement(base, preset, source):
  """The one log line naming an automatically chosen preset."""
  if preset == 'paper':
    return (f'preset paper ({source}; no --preset): the paper\'s settings, '
            'sized for a GPU; pass --preset=small for a run that fits a CPU')
  time = SMALL_CPU_TIME.get(base, 'not measured')
  return (f'preset {preset} ({source}; no --preset): expected time on a '
          f'2-core CPU {time}; pass --preset=paper for the paper\'s settings')


def apply_overrides(config, overrides):
  """Sets 'a.b=value' fields of `config` in place; unknown fields refused.

  An override is 'a.b=value' (the train binary's --set, named so in
  messages) or a pair (flag, 'a.b=value') named as `flag` (its
  --config.a.b flag).
  """
  for entry in overrides:
    flag, item = entry if isinstance(entry, tuple) else (None, entry)
    path, sep, text = item.partition('=')
    keys = path.strip().split('.')
    said = f'{flag}={text}' if flag else f'--set {item!r}'
    if not sep or not all(keys):
      raise UserError(f'{said}: expected field=value, e.g. '
                      '--set=ebm.step_size=0.3')
    if path.strip() in _NOT_OVERRIDABLE:
      raise UserError(f'{said}: {path} is chosen by '
                      f'{_NOT_OVERRIDABLE[path.strip()]}, not '
                      f'{flag or "--set"}')
    node = config
    for i, key in enumerate(keys):
      scope = '.'.join(keys[:i]) or 'the config'
      if not isinstance(node, ml_collections.ConfigDict):
        raise UserError(f'{said}: {scope} is a field, not a section')
      if key not in node:
        raise UserError(f'{said}: {scope} has no field {key!r}; it '
                        f'has {", ".join(sorted(node.keys()))}')
      if i + 1 < len(keys):
        node = node[key]
    current = node[keys[-1]]
    if isinstance(current, ml_collections.ConfigDict):
      raise UserError(f'{said}: {path} is a section; set one of its '
                      f'fields ({", ".join(sorted(current.keys()))})')
    value = _parse(text, current, path.strip(), said)
    check_bounds(path.strip(), value, flag or f'--set {path.strip()}')
    node[keys[-1]] = value
  return config


def get_config(base, dataset=None, preset='paper', overrides=()):
  """Returns the ConfigDict for a base model, data set and preset.

  `overrides` ('section.field=value', or (flag, 'section.field=value')
  pairs: `apply_overrides`) are applied before the data set's
  adaptation (so e.g. base.epochs still sets base.steps) and again after it
  (so a field it derives, such as base.steps, can be set explicitly).
  """
  if base not in MODULES:
    raise UserError(f'unknown base {base!r}; choose one of '
                    f'{", ".join(sorted(MODULES))}')
  if preset not in PRESETS:
    raise UserError(f'unknown preset {preset!r}; choose one of '
                    f'{", ".join(PRESETS)}')
  module = importlib.import_module(f'configs.{MODULES[base]}')
  config = module.get_config(preset)
  if preset == 'test' and 'distill' in config:  # Seconds, as the rest.
    config.distill.update(couplings=2, hidden=16, steps=20, batch_size=32,
                          validation=16, eval_every=10, patience=0,
                          components=3)
  if dataset:
    config.dataset = dataset
  apply_overrides(config, overrides)
  if hasattr(module, 'adapt_to_dataset'):
    module.adapt_to_dataset(config)
  return apply_overrides(config, overrides)
