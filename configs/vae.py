"""VAE (DCGAN decoder, symmetric encoder) on images, tilted in its prior.

  ./bazelw run //tilt_tf:train -- --base=vae                 # paper preset
  ./bazelw run //tilt_tf:train -- --base=vae --preset=small  # 2-core CPU

Paper B.1: latent 100, BCE (MNIST/Fashion) or MSE (CIFAR), 256 epochs,
batch 128, Adam 1e-3. §5.4: 1000 EBM steps.
"""

from configs import default
from configs import images


def get_config(preset='paper'):
  c = default.get_config()
  c.base_name = 'vae'
  c.preset = preset
  c.base.latent_dim = 100
  c.ebm.steps = 1000
  images.set_image_defaults(c, preset)
  if preset == 'small':
    # The Langevin chains dominate a CPU run (docs/performance.md): 200 EBM steps as
    # for GLF, not the paper's 1000.
    c.ebm.steps = 200
  return c


adapt_to_dataset = images.adapt_to_dataset
