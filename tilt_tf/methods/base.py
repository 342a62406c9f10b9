"""The one Method interface: what a training stage fits on data and what the
sample, evaluate and export stages draw from.

Two methods implement it: `LatentTilt` (methods/latent_tilt.py, the paper's
latent EBM over a frozen Generator) and `PixelEBM` (methods/pixel_ebm.py,
the "EBM on data" baseline of Table 1, which needs no generator). Stages ask
a method what it can do (`has_latent`, `stage`) and never branch on a name.

Sampling contract: `sample(n, seed, num_steps, record_every=0)` returns a
dict with 'x_base' and 'x_tilted' (data, same convention as the training
data: images float32 in [0, 1] [n, H, W, C], points [n, D]), 'z_base' and
'z_tilted' (latents, or a chain's start images where there is no latent),
'grad_norm' and, when recording, 'trajectory' ([T, n, ...] chain states,
turned into data by `chain_states_to_data`).
"""

import abc
import functools

import tensorflow as tf

__all__ = ['Method']


class Method(tf.Module, metaclass=abc.ABCMeta):
  """Trained by one stage on batches of data; sampled by the later stages."""

  #: The training stage that fits it: 'tilt' (over a trained base) or
  #: 'base' (a method that is its own model, like the pixel EBM).
  stage = 'tilt'
  #: Whether samples have latents (a tilted prior) and a base to compare with.
  has_latent = True
  #: Whether it must run on one device (state that is not mirrored).
  single_device = False
  #: The sampling chains' step size (recorded with the samples drawn).
  sample_step_size = None

  @property
  @abc.abstractmethod
  def energy(self):
    """The energy network E(x) (for histograms and exports)."""

  @abc.abstractmethod
  def checkpoint_items(self):
    """name -> trackable: what its training checkpoint holds besides the
    optimizer, step and clock (the names are the checkpoint's keys)."""

  @abc.abstractmethod
  def make_optimizer(self):
    """The optimizer for its trainable variables, built."""

  @abc.abstractmethod
  def train_step(self, x, seed, optimizer, global_batch_size):
    """One update on a data batch; safe inside `strategy.run`. Returns
    scalar metrics (per-replica sums / global batch)."""

  @abc.abstractmethod
  def sample(self, n, seed, num_steps, record_every=0):
    """Samples as described in the module docstring."""

  @functools.cached_property
  def compiled_sample(self):
    """`sample` as one tf.function per method (reduce_retracing), shared by
    the monitor, the sample stage and the API: calls of the same signature
    reuse one trace of the chain instead of one per caller. (Cached in the
    instance's __dict__, past tf.Module's attribute tracking: nothing to
    checkpoint or export.)"""
    return tf.function(self.sample, reduce_retracing=True)

  def chain_states_to_data(self, states):
    """Recorded chain states [n, ...] -> data (latent methods decode)."""
    return tf.convert_to_tensor(states)

  def check_ready(self):
    """Raises UserError if training cannot start (e.g. a base that does not
    decode its prior); nothing by default."""

  def after_train_step(self, run_dir, step):
    """Hook for pictures of the method's state (e.g. a replay buffer) at
    log steps; nothing by default."""
