"""ml_collections configs: one module per base, presets inside each.

`get_config(base, dataset, preset)` is what the binaries call; each module's
`get_config(preset)` documents its launch command.
"""

import importlib

from tilt_tf.errors import UserError

PRESETS = ('paper', 'small', 'test')

# --base -> config module.
MODULES = {
    'mlp_vae': 'toy',
    'vae': 'vae',
    'glf': 'glf',
    'glow': 'glow',
    'pixel_ebm': 'pixel_ebm',
}


def get_config(base, dataset=None, preset='paper'):
  """Returns the ConfigDict for a base model, data set and preset."""
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
  if hasattr(module, 'adapt_to_dataset'):
    module.adapt_to_dataset(config)
  return config
