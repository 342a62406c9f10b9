"""The paper's method: a latent EBM tilting a frozen generator.

p(z) ∝ p0(z) exp(-E(G(z))): the energy E is trained by maximum likelihood
with short-run Langevin chains in z from the prior (paper eq. 5/7/8, see
tilt_tf/ebm.py for the loss), G and p0 stay fixed. With
`ebm.replay_buffer` > 0 the training chains are persistent instead: they
start from a buffer of earlier chains' end latents (a fraction
`ebm.reinit_prob` from the prior; tilt_tf/replay.py); sampling still runs
chains from the prior. Any `Generator` works:
the built-in bases and users' own decoders and flows
(tilt_tf/generators/adapters.py).
"""

import tensorflow as tf
import tf_keras

from tilt_tf import ebm as ebm_lib
from tilt_tf import replay as replay_lib
from tilt_tf import rng
from tilt_tf.errors import UserError
from tilt_tf.generators import base as generator_base
from tilt_tf.methods import base

__all__ = ['LatentTilt', 'sampling_step_size']


def sampling_step_size(cfg):
  """The sampling chains' epsilon: `cfg.sample_step_size`, or, when it is 0
  (or the run predates the field), the training chains' `cfg.step_size`."""
  return float(cfg.get('sample_step_size') or cfg.step_size)


class LatentTilt(base.Method):
  """E_theta over G's outputs, trained and sampled by Langevin in z.

  Args:
    generator: a Generator (latent_dim, prior, decode).
    cfg: the `ebm` config section (energy architecture, learning rate,
      beta_1, alpha, step_size, langevin_steps, sample_step_size, ...).
    data_shape: shape of one data point; picks the energy (images: ResNet,
      vectors: MLP).
    seed: seeds the energy's fixed random features, if any.
    precision: the image energy's compute precision, 'float32' or 'bf16'
      (tilt_tf/precision.py).
  """

  stage = 'tilt'
  has_latent = True

  def __init__(self, generator, cfg, data_shape, *, seed=0, precision='float32',
               name='latent_tilt'):
    super().__init__(name=name)
    self.generator = generator
    self.cfg = cfg
    self._energy = ebm_lib.make_energy(cfg, data_shape, seed=seed,
                                       precision=precision)
    self.latent_ebm = ebm_lib.LatentEBM(generator, self._energy,
                                        alpha=cfg.alpha)
    # Training chains use cfg.step_size; sampling (monitor, sample stage,
    # export) may take fewer, larger steps.
    self.sample_step_size = sampling_step_size(cfg)
    self.replay = None
    if cfg.get('replay_buffer', 0):
      self.replay = replay_lib.ReplayBuffer(
          cfg.replay_buffer, (generator.latent_dim,),
          owner='the latent EBM with ebm.replay_buffer > 0')

  @property
  def energy(self):
    return self._energy

  def checkpoint_items(self):
    items = {'energy': self._energy}
    if self.replay is not None:
      items['replay_buffer'] = self.replay
    return items

  def make_optimizer(self):
    opt = tf_keras.optimizers.Adam(self.cfg.learning_rate,
                                   beta_1=self.cfg.beta_1)
    opt.build(self._energy.trainable_variables)
    return opt

  def train_step(self, x, seed, optimizer, global_batch_size):
    n = tf.shape(x)[0]
    z0 = None
    if self.replay is not None:
      seed, s_start = tf.unstack(
          tf.random.experimental.stateless_split(seed, 2))
      z0 = self.replay.draw(n, s_start, self.generator.prior_sample,
                            self.cfg.reinit_prob)
    chain = self.latent_ebm.sample_latents(
        n, seed, self.cfg.step_size, self.cfg.langevin_steps, z0=z0)
    if self.replay is not None:
      self.replay.push(chain['z'])
    with tf.GradientTape() as tape:
      loss, metrics = self.latent_ebm.per_example_loss(x, chain['z'])
      scaled = tf.nn.compute_average_loss(loss,
                                          global_batch_size=global_batch_size)
    grads = generator_base.apply_summed_gradients(
        optimizer, tape, scaled, self._energy.trainable_variables)
    out = {'loss': scaled}
    for k, v in metrics.items():
      out[k] = tf.nn.compute_average_loss(v, global_batch_size=global_batch_size)
    replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync,
                       tf.float32)
    out['langevin_grad_norm'] = chain['grad_norm'] / replicas
    out['energy_grad_norm'] = tf.linalg.global_norm(grads) / replicas
    return out

  def sample(self, n, seed, num_steps, record_every=0, temperature=1.0,
             energy_scale=None):
    """Base and tilted samples from the same z0 (see Method); the chain
    samples p0(z) exp(-beta E(G(z))), beta = `energy_scale` or, when None,
    the run's chosen scale (`latent_ebm.sampling_scale`, 1 unless
    tilt_tf/runtime/energy_scale.py chose another)."""
    seed_init, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    z0 = self.generator.prior_sample(n, seed_init, temperature)
    if energy_scale is None:
      energy_scale = self.latent_ebm.sampling_scale
    chain = self.latent_ebm.sample_latents(
        n, seed, self.sample_step_size, num_steps, temperature=temperature,
        record_every=record_every, energy_scale=energy_scale)
    out = {'z_base': z0, 'x_base': self.generator.decode(z0),
           'z_tilted': chain['z'],
           'x_tilted': self.generator.decode(chain['z']),
           'grad_norm': chain['grad_norm']}
    if record_every:
      out['trajectory'] = chain['trajectory']
    return out

  def chain_states_to_data(self, states):
    return self.generator.decode(states)

  def check_ready(self, n=256, seed=0):
    """Refuses a generator whose G(z) is not finite at prior draws.

    Langevin in z differentiates E(G(z)): a base that decodes some prior
    latents to inf/NaN (an undertrained flow's forward pass can overflow)
    makes the first EBM steps diverge, which no learning-rate rollback
    fixes. One line instead, before any tilt checkpoint is written.
    """
    z = self.generator.prior_sample(
        n, tf.constant(rng.stream(seed, rng.CHECK_READY), tf.int32))
    x = self.generator.decode(z)
    bad = int(tf.reduce_sum(tf.cast(tf.logical_not(tf.reduce_all(
        tf.math.is_finite(tf.reshape(x, [n, -1])), axis=1)), tf.int32)))
    if bad:
      what = (f'the generator decodes {bad} of {n} prior latents z ~ p0(z) '
              'to non-finite samples, so Langevin in z cannot run; ')
      if getattr(self.generator, 'trainable_variables', ()):
        raise UserError(what + 'the base model needs more training (raise '
                        '--base_steps, rerun with --stage=base; its '
                        'checkpoints are kept)')
      raise UserError(what + 'check your model on draws from its prior (its '
                      'latent_dim, the prior\'s scale, overflow in its '
                      'last layer)')
