"""What the image bases (VAE, GLF) share: data-set adaptation and presets.

Paper settings (B.1, B.2, §5.4): batch 128, Adam 1e-3, 256 epochs for the base;
EBM: ResNet 3x64 + 3x128 channels, batch 64, Langevin eps 0.01, 60 steps
training / 100 sampling, alpha 0.1; FID on 10,000 samples vs the test split.
"""

TRAIN_SIZES = {'fashion_mnist': 60_000, 'mnist': 60_000, 'cifar10': 50_000}


def set_image_defaults(c, preset):
  """Fields every image base shares, then the preset's sizes."""
  c.dataset = 'fashion_mnist'
  c.base.epochs = 256
  c.base.batch_size = 128
  c.base.learning_rate = 1e-3
  c.base.recon = 'bce'
  c.base.width = 64
  c.ebm.channels = (64, 128)
  c.ebm.blocks = 3
  c.ebm.stem_stride = 1
  c.ebm.monitor_samples = 1000
  c.log_every = 200
  c.steps_per_loop = 50
  c.checkpoint_every = 1000
  if preset == 'small':
    # A 2-core CPU run end to end in well under an hour: narrower AE, few
    # epochs, half-width energy on 14x14/7x7 maps (docs/performance.md: ~18 ms/step).
    c.base.width = 32
    c.base.epochs = 10
    c.ebm.channels = (32, 64)
    c.ebm.stem_stride = 2
    c.ebm.monitor_every = 50
    # Four checks of 500 chains x 100 Langevin steps (~3 min on 2 cores);
    # 1,000 chains cost ~7 min and put GLF over the 45-min budget.
    c.ebm.monitor_samples = 500
    c.ebm.log_every = 10
  elif preset == 'test':
    c.n_train = 512
    c.base.width = 8
    c.base.epochs = 0
    c.base.steps = 8
    c.base.batch_size = 32
    c.ebm.channels = (8, 8)
    c.ebm.blocks = 1
    c.ebm.stem_stride = 2
    c.ebm.batch_size = 16
    c.ebm.steps = 4
    c.ebm.langevin_steps = 3
    c.ebm.sample_langevin_steps = 3
    c.ebm.monitor_every = 2
    c.ebm.monitor_samples = 64
    c.ebm.validation = 64
    c.ebm.log_every = 2
    c.sample.num = 128
    c.sample.batch_size = 64
    c.sample.grid = 16
    c.sample.chain_every = 1
    c.eval.classifier_epochs = 1
    c.log_every = 4
    c.steps_per_loop = 4
    c.checkpoint_every = 4
  return c


def set_short_chains(c):
  """`small` VAE and GLF: the paper's chains in fewer, larger steps.

  Training chains 20 x eps 0.03 instead of 60 x 0.01, sampling (monitor,
  sample stage, export) 15 x 0.0667 instead of 100 x 0.01: the same eps x
  steps, 3x and 6.7x fewer energy gradients. Same base and seed
  (docs/performance.md): GLF 36.75 -> 21.61 (60/100-step chains: 21.69) with
  the tilt stage 302 s instead of 1,202 s and sampling at 195 samples/s;
  VAE at 600 EBM steps 56.36 -> 36.28 (200 EBM steps of 60-step chains:
  40.29) in 832 s instead of 1,567 s.
  """
  c.ebm.langevin_steps = 20
  c.ebm.step_size = 0.03
  c.ebm.sample_langevin_steps = 15
  c.ebm.sample_step_size = 0.0667


def adapt_to_dataset(c):
  """Reconstruction loss and step count follow the data set."""
  c.base.recon = 'mse' if c.dataset == 'cifar10' else 'bce'
  if c.base.epochs:
    n = c.n_train or TRAIN_SIZES.get(c.dataset, 60_000)
    c.base.steps = c.base.epochs * (n // c.base.batch_size)
