"""Table 1 (paper §5.2): the baselines' settings, per preset.

  ./bazelw run //tilt_tf:table1 -- --dataset=fashion_mnist --preset=small
  ./bazelw run //tilt_tf:table1 -- --dataset=fashion_mnist   # paper preset

The base runs (VAE, GLF, and their EBMs) use the base configs
(configs/vae.py, configs/glf.py) with the same preset; this file only sets
what table1 adds on top of a trained VAE/GLF:

  * two_stage: Dai & Wipf's second-stage VAE over the VAE's latent codes
    (their second stage: 3 dense layers of 1024 units, latent size = the
    first stage's).
  * flow: the "VAE + flow" prior, GLF's latent flow (4 affine couplings of
    one 256-unit layer each, paper B.1) fitted to the same codes.
  * temperatures: prior sampling z ~ N(0, T^2 I) for each base (paper §1:
    better samples at the cost of diversity): one row per T and base.
"""

import ml_collections


def get_config(preset='paper'):
  """Returns the baselines' ConfigDict for a preset (paper, small, test)."""
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.temperatures = (0.7, 0.85)

  c.two_stage = ml_collections.ConfigDict()
  c.two_stage.hidden = 1024
  c.two_stage.layers = 3
  c.two_stage.batch_size = 128
  c.two_stage.learning_rate = 1e-3
  c.two_stage.steps = 40_000
  c.two_stage.log_every = 1000

  c.flow = ml_collections.ConfigDict()
  c.flow.flow_layers = 4
  c.flow.flow_hidden = 256
  c.flow.batch_size = 128
  c.flow.learning_rate = 1e-3
  c.flow.steps = 40_000
  c.flow.log_every = 1000

  if preset == 'small':
    c.two_stage.hidden = 512
    c.two_stage.steps = 10_000
    c.flow.steps = 10_000
  elif preset == 'test':
    c.two_stage.hidden = 16
    c.two_stage.layers = 1
    c.two_stage.batch_size = 32
    c.two_stage.steps = 10
    c.two_stage.log_every = 5
    c.flow.flow_layers = 2
    c.flow.flow_hidden = 16
    c.flow.batch_size = 32
    c.flow.steps = 10
    c.flow.log_every = 5
  return c
