"""Settings shared by every base (the paper's: §5.4, appendices B.1, B.2).

Each base's module starts from `get_config()` here and overrides what
differs; presets then shrink sizes (`small`: a CPU run, `test`: seconds).
"""

import ml_collections


def get_config():
  """Returns the settings every base starts from, one section at a time."""
  c = ml_collections.ConfigDict()
  _set_run(c)
  _set_base(c)
  _set_ebm(c)
  _set_distill(c)
  _set_sample(c)
  _set_eval(c)
  _set_loops(c)
  return c


def _set_run(c):
  """The run's top-level fields: base, data, method, seed, precision."""
  c.base_name = ''
  c.dataset = ''
  c.preset = 'paper'
  c.seed = 0
  c.data_dir = ''
  c.n_train = 0  # 0: the whole train split (toys: points to draw).
  # What is trained on the data: 'latent_tilt' (a base + a latent EBM, the
  # paper's method) or 'pixel_ebm' (the "EBM on data" baseline).
  c.method = 'latent_tilt'
  c.data_path = ''  # A user's data file (.npz/.npy) instead of `dataset`.
  # Compute precision of the image energy and the VAE/GLF decoders:
  # 'float32' or 'bf16' (bfloat16 hardware only; tilt_tf/precision.py).
  # Variables stay float32, so a run may switch it on resume.
  c.precision = 'float32'


def _set_base(c):
  """Base model training."""
  c.base = ml_collections.ConfigDict()
  c.base.batch_size = 128
  c.base.steps = 10_000
  c.base.learning_rate = 1e-3


def _set_ebm(c):
  """Latent EBM (tilting), paper §5.4 and B.2."""
  c.ebm = ml_collections.ConfigDict()
  c.ebm.batch_size = 64
  c.ebm.steps = 200  # --tilt_steps: the maximum; the monitor keeps the best.
  c.ebm.learning_rate = 1e-4
  c.ebm.beta_1 = 0.5
  c.ebm.alpha = 0.1  # Energy regularization.
  c.ebm.step_size = 0.01  # Langevin epsilon.
  c.ebm.langevin_steps = 60  # While training.
  c.ebm.sample_langevin_steps = 100  # When sampling.
  # Langevin epsilon when sampling; 0: ebm.step_size.
  c.ebm.sample_step_size = 0.0
  # beta of p0(z) exp(-beta E(G(z))) when sampling (1: the trained model), and
  # the scales the monitor may choose from on held-out data after tilting
  # (tilt_tf/runtime/energy_scale.py; () : none, keep sample_energy_scale).
  c.ebm.sample_energy_scale = 1.0
  c.ebm.energy_scale_grid = ()
  # Persistent training chains (tilt_tf/replay.py): latents kept from earlier
  # chains; 0: the paper's short-run chains, every one from the prior.
  c.ebm.replay_buffer = 0
  c.ebm.reinit_prob = 0.05  # With a buffer: chains that start from the prior.
  _set_ebm_monitor(c.ebm)
  _set_ebm_network(c.ebm)


def _set_ebm_monitor(ebm):
  """The EBM's logging and quality monitor (which keeps the best step)."""
  ebm.log_every = 10
  ebm.monitor_every = 20  # Quality monitor period (EBM steps).
  ebm.monitor_samples = 1000
  # Monitor checks without improvement before stopping; 0: never stop early.
  ebm.patience = 0
  # Images held out of the energy's training for the monitor to score
  # against (the last ones of the train split); the test split is only read
  # by the final evaluation. Toys draw fresh points instead.
  ebm.validation = 10_000


def _set_ebm_network(ebm):
  """Energy network: image ResNet fields and toy MLP fields."""
  ebm.channels = (64, 128)
  ebm.blocks = 3
  ebm.stem_stride = 1
  ebm.stem_pool = 1  # Average pooling after the stem (1: none).
  ebm.hidden = 512
  ebm.layers = 3
  # Toy MLP: random Fourier input features (0: plain MLP).
  ebm.fourier_features = 0
  ebm.fourier_scale = 1.0


def _set_distill(c):
  """Distillation (tilt_tf/distill.py): q(z) fitted to the sample stage's
  tilted latents; samples with no chain.

  'kde' (default): a Gaussian kernel on each tilted latent, its covariance
  `bandwidth`^2 x the latents' covariance; 'mixture': `components` Gaussians
  with one shared covariance, fitted by EM; 'flow': a RealNVP flow fitted by
  maximum likelihood (couplings .. patience). Measured FIDs per model are
  in docs/distill.md.
  """
  c.distill = ml_collections.ConfigDict()
  c.distill.model = 'kde'
  c.distill.bandwidth = 0.4  # 'kde': kernel scale / the latents' scale.
  c.distill.components = 10  # 'mixture'.
  c.distill.reg_covar = 1e-3  # Added to the covariance's diagonal.
  c.distill.em_iterations = 100
  c.distill.couplings = 4
  c.distill.hidden = 64
  c.distill.steps = 3000
  c.distill.batch_size = 256
  c.distill.learning_rate = 1e-3
  c.distill.validation = 1000  # Latents held out (NLL; the flow's best).
  c.distill.eval_every = 100
  c.distill.patience = 5  # Checks without a better held-out NLL: stop.


def _set_sample(c):
  """Sampling and evaluation."""
  c.sample = ml_collections.ConfigDict()
  c.sample.num = 10_000
  c.sample.batch_size = 500
  c.sample.grid = 64  # Images in each PNG grid.
  c.sample.chain_every = 10  # Fig. 5.3: a column every k Langevin steps.


def _set_eval(c):
  """Evaluation (images).

  FID/precision/recall in the feature space of a classifier trained on the
  data set (cached), see tilt_tf/fid.py.
  """
  c.eval = ml_collections.ConfigDict()
  c.eval.classifier_epochs = 0  # 0: fid.py's default budget.


def _set_loops(c):
  """Loops, logging, checkpoints."""
  c.log_every = 100
  c.steps_per_loop = 50
  c.checkpoint_every = 1000
  c.keep_checkpoints = 2
