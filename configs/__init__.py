"""ml_collections configs: one module per base, presets inside each.

`get_config(base, dataset, preset, overrides)` is what the binaries call;
each module's `get_config(preset)` documents its launch command. `overrides`
are 'section.field=value' strings (the train binary's `--set`), e.g.
'ebm.step_size=0.3': any existing field, parsed as the type it has.
"""

import importlib

import ml_collections

from tilt_tf.errors import UserError

PRESETS = ('paper', 'small', 'test')

# --base -> config module.
MODULES = {
    'mlp_vae': 'toy',
    'vae': 'vae',
    'glf': 'glf',
    'glow': 'glow',
    'pixel_ebm': 'pixel_ebm',
    'generator': 'generator',  # A user's model: --generator=PATH.
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
_NOT_OVERRIDABLE = {'base_name': '--base', 'preset': '--preset'}


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
