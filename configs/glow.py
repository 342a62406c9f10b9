"""GLOW on images, tilted in the flow's full latent (784 dims for 28x28x1).

  ./bazelw run //tilt_tf:train -- --base=glow                 # paper preset
  ./bazelw run //tilt_tf:train -- --base=glow --preset=small  # 2-core CPU

Paper B.1: for MNIST / Fashion-MNIST 2 blocks x 16 affine couplings, coupling
nets of 64 channels, squeeze between the blocks, 128 epochs; for CIFAR-10
3 blocks x 32 couplings, 256 channels, multi-scale, 256 epochs; batch 64,
Adam 5e-4. §5.4: 200 EBM steps.

Presets:
  * paper: the above.
  * small: a CPU-sized GLOW, 2 blocks x 4 couplings of 32 channels, 4 epochs
    (~3,750 steps; 5.5 steps/s on this 2-core CPU, ~12 min of base
    training); the EBM as the other small presets but with Langevin
    eps = 0.1 (training and sampling), energy learning rate 1e-3 and 100
    EBM steps. With the paper's eps = 0.01 and lr 1e-4 this GLOW's chains
    barely move in its 784 dimensions (|grad_z E| ~ 1.6 next to the prior's
    |z| ~ 28) and the monitored FID (500 samples) stayed within 1 of the
    base's; eps = 0.1 / lr 1e-3 reached 61.6 / 61.5 / 61.7 at EBM steps
    20 / 40 / 60 vs 65.1 (a plateau from step 20, hence 100 steps); on
    10,000 samples that is 62.48 -> 60.91, far from the paper's -29 %
    (README, "GLOW"). The flow's decoder is the expensive part of every
    Langevin step here (~3x GLF's), so tilting and sampling cost more than
    base training.
  * test: 2 blocks x 2 couplings of 8 channels, 8 steps (seconds).
"""

from configs import default
from configs import images


def get_config(preset='paper'):
  c = default.get_config()
  c.base_name = 'glow'
  c.preset = preset
  c.ebm.steps = 200
  images.set_image_defaults(c, preset)
  del c.base['recon']  # Not an auto-encoder: the loss is the flow's NLL.
  c.base.epochs = 128
  c.base.batch_size = 64
  c.base.learning_rate = 5e-4
  c.base.num_blocks = 2
  c.base.steps_per_block = 16
  c.base.width = 64
  c.base.preprocess = 'logit'  # Or 'affine' (x - 1/2), see generators/glow.py.
  c.base.logit_alpha = 0.05
  c.base.flow_seed = 0  # Init of the invertible 1x1 convolutions.
  # Soft clamp of the coupling scale logits (generators/glow.py): decoding
  # N(0, I) draws stays finite; 0 = TFP's unbounded GlowDefaultNetwork.
  c.base.coupling_clamp = 4.0
  if preset == 'small':
    c.base.epochs = 4
    c.base.steps_per_block = 4
    c.base.width = 32
    c.ebm.step_size = 0.1
    c.ebm.learning_rate = 1e-3
    c.ebm.steps = 100
  elif preset == 'test':
    c.base.epochs = 0
    c.base.steps = 8
    c.base.batch_size = 32
    c.base.steps_per_block = 2
    c.base.width = 8
  return c


def adapt_to_dataset(c):
  """CIFAR-10 gets the 3-level GLOW; steps follow the data set's size."""
  if c.dataset == 'cifar10':
    c.base.num_blocks = 3
    if c.preset == 'paper':
      c.base.epochs = 256
      c.base.steps_per_block = 32
      c.base.width = 256
  if c.base.epochs:
    n = c.n_train or images.TRAIN_SIZES.get(c.dataset, 60_000)
    c.base.steps = c.base.epochs * (n // c.base.batch_size)
