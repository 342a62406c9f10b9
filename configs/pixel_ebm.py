""""EBM on data" (Table 1): a pixel-space EBM, Du & Mordatch (2019).

  ./bazelw run //tilt_tf:train -- --base=pixel_ebm                 # paper
  ./bazelw run //tilt_tf:train -- --base=pixel_ebm --preset=small  # CPU

Paper B.2: the latent EBM's ResNet energy trained on pixels with
persistent Langevin chains from a replay buffer, Du & Mordatch's settings
(step size 10, noise 0.005, per-pixel gradient clip 0.01, 60 steps, 5% of
the chains restarted from uniform noise, buffer 10,000, alpha 1, Adam 1e-4
with beta_1 = 0, batch 128), 20k steps on MNIST / Fashion-MNIST and 100k on
CIFAR-10; samples from chains started in the buffer (tilt_tf/pixel_ebm.py).

The base stage trains the energy (`--base_steps` sets its steps); there is
no tilt stage (`--tilt_steps` and `--langevin_steps` do not apply; the
training chain length is base.langevin_steps); `--sample_langevin_steps`
sets the sampling chains (default: the training length, 60).

Presets:
  * paper: the above.
  * small: half-width energy on 14x14/7x7 maps (as the other small presets'
    energies), batch 64, 1,500 steps of 20-step chains (60 in `paper`): the
    chains are persistent, so a buffer image has still been refined for
    ~190 steps on average by the end. 60-step chains ran at 0.18 steps/s
    beside another run on this 2-core CPU (1,500 steps: 2 h 17 min);
    sampling keeps 60 steps.
  * test: a tiny energy, 6 steps, buffer of 64 (seconds).
"""

from configs import default
from configs import images


def get_config(preset='paper'):
  c = default.get_config()
  c.base_name = 'pixel_ebm'
  c.method = 'pixel_ebm'
  c.preset = preset
  images.set_image_defaults(c, preset)
  for unused in ('recon', 'width', 'epochs'):
    del c.base[unused]
  b = c.base
  b.steps = 20_000
  b.batch_size = 128
  b.learning_rate = 1e-4
  b.beta_1 = 0.0
  b.alpha = 1.0
  b.channels = (64, 128)  # The latent EBM's energy (paper B.2).
  b.blocks = 3
  b.stem_stride = 1
  b.buffer_size = 10_000
  b.reinit_prob = 0.05
  b.langevin_steps = 60
  b.step_size = 10.0
  b.noise = 0.005
  b.grad_clip = 0.01
  # Du & Mordatch's clip of the energy's parameter gradients to
  # +-(k sqrt(v) + 0.1) (tilt_tf/methods/pixel_ebm.py); 0 = off.
  b.param_clip = 0.0
  c.ebm.steps = 0  # No tilt stage.
  c.ebm.sample_langevin_steps = 60
  c.log_every = 100
  c.checkpoint_every = 500
  if preset == 'small':
    b.steps = 1500
    b.batch_size = 64
    b.langevin_steps = 20
    b.channels = (32, 64)
    b.stem_stride = 2
    c.log_every = 50
  elif preset == 'test':
    b.steps = 6
    b.batch_size = 16
    b.channels = (8, 8)
    b.blocks = 1
    b.stem_stride = 2
    b.buffer_size = 64
    b.langevin_steps = 3
    c.ebm.sample_langevin_steps = 3
    c.log_every = 2
    c.steps_per_loop = 2
    c.checkpoint_every = 4
  return c


def adapt_to_dataset(c):
  """CIFAR-10: 100k steps in the paper preset (paper B.2)."""
  if c.dataset == 'cifar10' and c.preset == 'paper':
    c.base.steps = 100_000
