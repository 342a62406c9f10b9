"""GLOW on images, tilted in the flow's full latent (784 dims for 28x28x1).

  ./bazelw run //tilt_tf:train -- --base=glow                 # paper preset
  ./bazelw run //tilt_tf:train -- --base=glow --preset=small  # 2-core CPU

Paper B.1: for MNIST / Fashion-MNIST 2 blocks x 16 affine couplings, coupling
nets of 64 channels, squeeze between the blocks, 128 epochs; for CIFAR-10
3 blocks x 32 couplings, 256 channels, multi-scale, 256 epochs; batch 64,
Adam 5e-4. §5.4: 200 EBM steps.

Presets:
  * paper: the above.
  * small: a CPU-sized GLOW, 2 blocks x 4 couplings of 32 channels, 16 epochs
    (15,000 steps; 8.6 steps/s on an idle 2-core CPU, ~29 min of base
    training); the EBM as the other small presets but with Langevin eps = 0.3
    (training and sampling), 20-step training chains, energy learning rate
    1e-3 and 400 EBM steps. Why 16 epochs and 400 steps: with 4 epochs
    (4.01 test bits/dim) the tilt took FID 62.4 -> 59.0 (-5.4 %); with 16
    (3.67 bits/dim) 62.5 -> 57.1 (-8.7 %) at 200 EBM steps, and the monitor
    kept falling to 400 steps (66.3 -> 56.9 on 500 samples; README, "GLOW").
    Why eps = 0.3: the paper's eps = 0.01 barely moves the chains
    (eq. 8's drift is eps/2 grad U, so the prior pulls z in by a factor 1 -
    eps/2 per step: ~2/eps steps to mix, 200 for 0.01 against 60-step chains,
    7 for 0.3) and the monitored FID (500 samples) stayed within 1 of the
    base's; eps = 0.1 with 60-step chains reached 61.4 vs 65.1 (62.48 -> 60.91
    on 10,000 samples); eps = 0.3 with 20-step chains (a third of the cost)
    scored 60.5 / 60.2 / 76.4 / 60.0 at EBM steps 50 / 100 / 150 / 200 (the
    monitor keeps the best; docs/results.md, "GLOW"). Sampling (monitor,
    sample stage, export) uses 20-step chains as training does, not 100,
    and the sampling energy scale is chosen on the held-out monitor from
    1, 2, 4, 8, 16 (tilt_tf/runtime/energy_scale.py): a tilt experiment on a
    trained base took 38 min on a busy CPU instead of ~2 h, FID 68.67 ->
    59.64 (recall 0.199 -> 0.288; scale 2 chosen), where a base of the same
    preset with 100-step chains at scale 1 gave 68.90 -> 61.85
    (docs/results.md, "GLOW: short sampling chains").
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
  # The distilled q: the default kernel density (FID 58.2 on `small`, the
  # chain 59.6; its 9,000 stored 784-d latents make the export 37 MB instead
  # of 9). With `distill.model='mixture'`, one Gaussian: in the 784-d latent
  # EM with 10 components took 529 s for 59.9, one 8 s for 59.7
  # (docs/distill.md).
  c.distill.components = 1
  if preset == 'small':
    c.base.epochs = 16
    c.base.steps_per_block = 4
    c.base.width = 32
    c.ebm.steps = 400
    c.ebm.step_size = 0.3
    c.ebm.langevin_steps = 20
    c.ebm.learning_rate = 1e-3
    c.ebm.sample_langevin_steps = 20  # As in training: eps 0.3 mixes in ~7.
    c.ebm.energy_scale_grid = (2.0, 4.0, 8.0, 16.0)
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
