"""Tilting a user's own pretrained generator (no base stage).

  ./bazelw run //tilt_tf:train -- --generator=/path/decoder.keras --data=/path/images.npz
  ./bazelw run //tilt_tf:train -- --generator=/path/saved_model --latent_dim=100 --dataset=fashion_mnist

The energy follows the data's shape: images get the paper's ResNet energy
(B.2; `small`: half width on half-resolution maps), vectors the MLP energy.
`paper`: EBM settings as the paper's GLF/GLOW runs (§5.4: 200 steps, eps
0.01, 60 Langevin steps in training, 100 when sampling). `small`: the short
chains of the VAE/GLF `small` presets (configs/images.py) and 300 steps.
Both choose the sampling energy scale beta (p0(z) exp(-beta E(G(z))), 1 = the
trained model) on the held-out data after tilting
(tilt_tf/runtime/energy_scale.py); measurements: docs/user_decoder_gain.md.
"""

import ml_collections

from configs import default
from configs import images

# Sampling energy scales the monitor may pick after tilting (1 is always a
# candidate). A Keras VAE decoder tilt_tf did not train: FID 82.2 (base) ->
# 68.0 / 56.5 / 45.3 / 42.4 / 45.7 at scales 1 / 2 / 4 / 8 / 16, recall
# 0.038 -> 0.042 / 0.047 / 0.055 / 0.098 / 0.169 (docs/user_decoder_gain.md).
ENERGY_SCALE_GRID = (2.0, 4.0, 8.0, 16.0)


def get_config(preset='paper'):
  c = default.get_config()
  c.base_name = 'generator'
  c.preset = preset
  c.dataset = ''
  c.generator = ml_collections.ConfigDict()
  c.generator.path = ''  # A .keras/.h5 file or a SavedModel folder.
  c.generator.kind = ''  # keras | saved_model (from the path).
  c.generator.latent_dim = 0  # 0: from the model's input.
  c.generator.signature = ''  # SavedModel signature ('' : the default one).
  c.generator.allow_unsafe = False  # Keras Lambda layers (arbitrary code).
  c.generator.data_shape = ()  # Filled in from the generator's outputs.
  c.generator.fingerprint = ''  # Of the model itself (its weights).
  c.base.steps = 0
  c.ebm.steps = 200
  c.ebm.log_every = 10
  c.ebm.monitor_every = 20
  c.ebm.monitor_samples = 500
  c.log_every = 100
  c.steps_per_loop = 10
  c.checkpoint_every = 100
  c.ebm.energy_scale_grid = ENERGY_SCALE_GRID
  if preset == 'small':
    c.ebm.channels = (32, 64)
    c.ebm.stem_stride = 2
    c.ebm.hidden = 256
    c.ebm.monitor_every = 50
    images.set_short_chains(c)
    c.ebm.steps = 300
    # A third of the paper's energy regularisation (0.1): alpha bounds E's
    # range, which at 0.1 a decoder tilt_tf did not train spends on telling
    # its samples from the data, barely moving the chains (0.01 moves them
    # but ends with a lower recall); measured in docs/user_decoder_gain.md.
    c.ebm.alpha = 0.03
  elif preset == 'test':
    c.ebm.channels = (8, 8)
    c.ebm.blocks = 1
    c.ebm.hidden = 32
    c.ebm.batch_size = 16
    c.ebm.steps = 4
    c.ebm.langevin_steps = 3
    c.ebm.sample_langevin_steps = 3
    c.ebm.monitor_every = 2
    c.ebm.energy_scale_grid = (2.0,)
    c.ebm.monitor_samples = 32
    c.ebm.validation = 32
    c.ebm.log_every = 2
    c.sample.num = 64
    c.sample.batch_size = 32
    c.sample.grid = 16
    c.sample.chain_every = 1
    c.eval.classifier_epochs = 1
    c.steps_per_loop = 2
    c.checkpoint_every = 4
  return c
