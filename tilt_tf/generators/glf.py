"""GLF: Generative Latent Flow (Xiao et al. 2019), paper B.1.

A deterministic auto-encoder (the VAE's DCGAN decoder and mirror encoder,
latent 64) and a normalizing flow over its latent, trained jointly:

  z = enc(x),  loss = recon(x, dec(z)) + NLL_flow(stop_gradient(z)).

Gradient choice: the NLL is computed on stop_gradient(z), so the flow fits
the encoder's latents and the encoder learns from the reconstruction only.
This is GLF's stopped-gradient variant; letting the NLL reach the encoder
lets it shrink the latents and drive the log-determinant to infinity, which
is what the GLF paper's regularized variant needs a small weight against.

Flow (u -> z): `flow_layers` affine couplings (tfb.RealNVP, half the dims
masked) interleaved with tfb.Permute (reversal), each coupling's
shift-and-log-scale net one Dense(`flow_hidden`, relu) layer, log-scales
soft-clamped by tanh; then a learned elementwise affine (an ActNorm-like
Shift + Scale) so the flow can match the latents' overall scale.
The couplings' Keras nets are attributes of the module, so
`trainable_variables` and checkpoints see them (the bijector does not).
`make_latent_flow` builds this flow alone (Table 1's "VAE + flow" baseline
fits it to a VAE's latents, tilt_tf/baselines.py).

Tilting happens in the flow's base variable u ~ N(0, I) (64 dims):
decode(u) = dec(flow.forward(u)).
"""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras as keras

from tilt_tf import precision as precision_lib
from tilt_tf.generators import base
from tilt_tf.generators import vae

tfb = tfp.bijectors
tfd = tfp.distributions

__all__ = ['GLF', 'LatentFlowParts', 'flow_nll', 'make', 'make_latent_flow']


def _coupling_net(in_dim, out_dim, hidden, name):
  """Dense(hidden, relu) -> Dense(2 * out_dim), zero-init (identity start)."""
  net = keras.Sequential([
      keras.layers.Dense(hidden, activation='relu'),
      keras.layers.Dense(2 * out_dim, kernel_initializer='zeros'),
  ], name=name)
  net.build((None, in_dim))
  return net


def _shift_and_log_scale_fn(net):
  def fn(x, output_units, **unused_condition_kwargs):
    del output_units  # Fixed by the net.
    shift, raw = tf.split(net(x), 2, axis=-1)
    return shift, tf.tanh(raw)  # |log scale| <= 1 per coupling.
  return fn


LatentFlowParts = collections.namedtuple(
    'LatentFlowParts', ['bijector', 'coupling_nets', 'loc', 'log_scale'])


def make_latent_flow(dim, flow_layers=4, flow_hidden=256):
  """GLF's latent flow u -> z over vectors of size `dim` (see the module doc).

  The bijector does not track the Keras nets and variables it closes over:
  the caller keeps `coupling_nets`, `loc` and `log_scale` as attributes of a
  tf.Module so that `trainable_variables` and checkpoints see them.

  Args:
    dim: vector size, >= 2.
    flow_layers: number of affine couplings.
    flow_hidden: units of each coupling's hidden layer.

  Returns:
    LatentFlowParts(bijector, coupling_nets, loc, log_scale); `bijector`
    maps the base variable u to z.
  """
  masked = dim // 2
  coupling_nets = [
      _coupling_net(masked, dim - masked, flow_hidden, f'coupling_{i}')
      for i in range(flow_layers)]
  loc = tf.Variable(tf.zeros([dim]), name='latent_loc')
  log_scale = tf.Variable(tf.zeros([dim]), name='latent_log_scale')
  reverse = np.arange(dim - 1, -1, -1, dtype=np.int32)
  forward_order = []  # u -> z, first applied first.
  for i, net in enumerate(coupling_nets):
    if i:
      forward_order.append(tfb.Permute(reverse))
    forward_order.append(tfb.RealNVP(
        num_masked=masked, shift_and_log_scale_fn=_shift_and_log_scale_fn(net)))
  forward_order += [tfb.Scale(log_scale=log_scale), tfb.Shift(loc)]
  bijector = tfb.Chain(forward_order[::-1], name='latent_flow')
  return LatentFlowParts(bijector, coupling_nets, loc, log_scale)


def flow_nll(bijector, z):
  """-log p(z) under z = bijector(u), u ~ N(0, I): shape [B].

  Args:
    bijector: u -> z, e.g. `make_latent_flow(...).bijector`.
    z: [B, dim].

  Returns:
    [B] float32: 0.5 |u|^2 + 0.5 dim log(2 pi) - log |det du/dz|.
  """
  z = tf.identity(z)  # No bijector cache: gradients reach z.
  u = bijector.inverse(z)
  ildj = bijector.inverse_log_det_jacobian(z, event_ndims=1)
  dim = tf.cast(tf.shape(z)[-1], z.dtype)
  return (0.5 * tf.reduce_sum(tf.square(u), axis=-1) +
          0.5 * dim * np.log(2 * np.pi) - ildj)


class GLF(base.Generator):
  """Auto-encoder + latent flow; the latent z is the flow's base u."""

  def __init__(self, data_shape, *, latent_dim=64, width=64, recon='bce',
               flow_layers=4, flow_hidden=256, precision='float32',
               name='glf'):
    """Builds encoder, decoder and flow.

    Args:
      data_shape: (H, W, C), H and W divisible by 4.
      latent_dim: size of the AE latent and of u (paper: 64).
      width: base channel count of the AE (paper preset: 64).
      recon: 'bce' or 'mse', see `vae.reconstruction`.
      flow_layers: number of affine couplings (paper: 4).
      flow_hidden: units of each coupling's hidden layer (paper: 256).
      precision: the decoder's compute precision, 'float32' or 'bf16'
        (tilt_tf/precision.py); the flow stays float32.
      name: module name.
    """
    super().__init__(latent_dim, data_shape, name=name)
    d = self.latent_dim
    if d < 2:
      raise ValueError('GLF needs latent_dim >= 2')
    self.recon = recon
    self.encoder = vae.make_encoder(d, data_shape, width)
    self.decoder = vae.make_decoder(d, data_shape, width,
                                    dtype=precision_lib.policy(precision))
    flow = make_latent_flow(d, flow_layers, flow_hidden)
    # The same attribute names as before the flow was factored out, so
    # checkpoints are unchanged.
    self.coupling_nets = flow.coupling_nets
    self.latent_loc = flow.loc
    self.latent_log_scale = flow.log_scale
    self.flow = flow.bijector  # u -> z.

  def flow_forward(self, u):
    """z = flow(u), [B, latent_dim]."""
    return self.flow.forward(tf.identity(u))  # identity: no bijector cache.

  def flow_inverse(self, z):
    """u = flow^-1(z), [B, latent_dim]."""
    return self.flow.inverse(tf.identity(z))

  def flow_nll(self, z):
    """-log p_flow(z), [B]: -log N(u; 0, I) - log |det du/dz|."""
    return flow_nll(self.flow, z)

  def decode(self, z, training=False):
    """Images sigmoid(dec(flow(u))) in [0, 1]; `z` is the base variable u."""
    return tf.sigmoid(self.logits(self.flow_forward(z), training))

  def logits(self, z_ae, training=False):
    """The decoder's float32 logits at the AE latent `z_ae`."""
    return precision_lib.to_float32(self.decoder(z_ae, training=training))

  def encode(self, x, training=False):
    """The AE latent enc(x), [B, latent_dim] (not u; see `flow_inverse`)."""
    return self.encoder(x, training=training)

  def per_example_loss(self, x, seed, training=True):
    """recon(x, dec(enc(x))) + NLL_flow(stop_gradient(enc(x))).

    Args:
      x: images [B, H, W, C] in [0, 1].
      seed: stateless seed [2] (unused: GLF's loss is deterministic).
      training: batch-norm mode.

    Returns:
      (loss [B], {'recon': [B], 'nll': [B]}).
    """
    del seed
    z = self.encode(x, training)
    rec = vae.reconstruction(x, self.logits(z, training), self.recon)
    nll = self.flow_nll(tf.stop_gradient(z))
    return rec + nll, {'recon': rec, 'nll': nll}


def make(cfg, data_shape, precision='float32'):
  """GLF from config fields latent_dim, width, recon, flow_layers, flow_hidden.

  Args:
    cfg: config.base (learning_rate is read by `make_optimizer`).
    data_shape: (H, W, C).
    precision: the decoder's, see `GLF`.

  Returns:
    A GLF.
  """
  return GLF(data_shape, latent_dim=cfg.latent_dim, width=cfg.width,
             recon=cfg.recon, flow_layers=cfg.get('flow_layers', 4),
             flow_hidden=cfg.get('flow_hidden', 256), precision=precision)
