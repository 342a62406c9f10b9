"""ml_collections configs: one module per base, presets inside each.

`get_config(base, dataset, preset, overrides)` is what the binaries call;
each module's `get_config(preset)` documents its launch command.
`choose_preset(explicit, gpu_available)` picks the preset when --preset is
not given: `paper` with a GPU, else `small`. `overrides`
are 'section.field=value' strings (the train binary's `--set`), e.g.
'ebm.step_size=0.3': any existing field, parsed as the type it has.
"""

import importlib

import ml_collections

from tilt_tf.errors import UserError

PRESETS = ('paper', 'small', 'test')

# How long `--preset=small` takes end to end on a 2-core CPU, from the config
# modules' docstrings and README's measurements (GLF, VAE: idle CPU; GLOW,
# pixel EBM: a CPU shared with another job).
SMALL_CPU_TIME = {
    'glf': '43 min',
    'vae': '40 min',
    'glow': '90 min',
    'pixel_ebm': '51 min',
    'mlp_vae': 'under 15 min (the paper preset takes ~15 min)',
}

# --base -> config module.
MODULES = {
    'mlp_vae': 'toy',
    'vae': 'vae',
    'glf': 'glf',
    'glow': 'glow',
    'pixel_ebm': 'pixel_ebm',
}


def _parse(text, current, where):
  """`text` as the type of the field's `current` value."""
  try:
    if isinstance(current, bool):
      lowered = text.strip().lower()
      if lowered not in ('true', 'false', '1', '0'):
        raise ValueError(text)
      return lowered in ('true', '1')
    if isinstance(current, tuple):
      kind = type(current[0]) if current else int
      return tuple(kind(t) for t in text.split(',') if t.strip())
    if isinstance(current, int):
      return int(text)
    if isinstance(current, float):
      return float(text)
    return text
  except ValueError:
    kind = ('a comma-separated list' if isinstance(current, tuple)
            else type(current).__name__)
    raise UserError(f'--set {where!r}: the field is {kind} (now {current!r}); '
                    f'{text!r} does not parse as one') from None


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
  """Sets 'a.b=value' fields of `config` in place; unknown fields refused."""
  for item in overrides:
    path, sep, text = item.partition('=')
    keys = path.strip().split('.')
    if not sep or not all(keys):
      raise UserError(f'--set {item!r}: expected field=value, e.g. '
                      '--set=ebm.step_size=0.3')
    if path.strip() in _NOT_OVERRIDABLE:
      raise UserError(f'--set {item!r}: {path} is chosen by '
                      f'{_NOT_OVERRIDABLE[path.strip()]}, not --set')
    node = config
    for i, key in enumerate(keys):
      scope = '.'.join(keys[:i]) or 'the config'
      if not isinstance(node, ml_collections.ConfigDict):
        raise UserError(f'--set {item!r}: {scope} is a field, not a section')
      if key not in node:
        raise UserError(f'--set {item!r}: {scope} has no field {key!r}; it '
                        f'has {", ".join(sorted(node.keys()))}')
      if i + 1 < len(keys):
        node = node[key]
    current = node[keys[-1]]
    if isinstance(current, ml_collections.ConfigDict):
      raise UserError(f'--set {item!r}: {path} is a section; set one of its '
                      f'fields ({", ".join(sorted(current.keys()))})')
    node[keys[-1]] = _parse(text, current, item)
  return config


def get_config(base, dataset=None, preset='paper', overrides=()):
  """Returns the ConfigDict for a base model, data set and preset.

  `overrides` ('section.field=value') are applied before the data set's
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
  if dataset:
    config.dataset = dataset
  apply_overrides(config, overrides)
  if hasattr(module, 'adapt_to_dataset'):
    module.adapt_to_dataset(config)
  return apply_overrides(config, overrides)
