"""GLF (generative latent flow) on images, tilted in the flow's base space.

  ./bazelw run //tilt_tf:train -- --base=glf                 # paper preset
  ./bazelw run //tilt_tf:train -- --base=glf --preset=small  # 2-core CPU

Paper B.1: the VAE's auto-encoder with latent 64, a latent flow of 4 affine
couplings (one dense layer of 256 units each), trained jointly, 256 epochs,
batch 128, Adam 1e-3. §5.4: 200 EBM steps.
"""

from configs import default
from configs import images


def get_config(preset='paper'):
  c = default.get_config()
  c.base_name = 'glf'
  c.preset = preset
  c.base.latent_dim = 64
  c.base.flow_layers = 4
  c.base.flow_hidden = 256
  c.ebm.steps = 200
  images.set_image_defaults(c, preset)
  if preset == 'small':
    images.set_short_chains(c)  # Same FID, a quarter of the tilt stage.
  return c


adapt_to_dataset = images.adapt_to_dataset
