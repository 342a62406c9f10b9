"""Short-run Langevin dynamics in the latent space (paper eq. 8).

    z_{i+1} = z_i - (eps / 2) * grad U(z_i) + sqrt(eps) * w_i,  w_i ~ N(0, I)

with U(z) = E(G(z)) - log p0(z). The whole chain is one `tf.while_loop`, so
wrapping the caller in `tf.function` compiles it into a single graph with no
host round-trip per step. Noise is stateless: w_i is drawn from
`fold_in(seed, i)`, so the same seed reproduces the chain exactly. Inside a
replica of a tf.distribute strategy, chain j of the replica's batch gets the
noise of chain j + offset of the global batch (`rng.batch_normal`), so N
replicas run the same chains as one device.
"""

import tensorflow as tf

from tilt_tf import rng

__all__ = ['run_chain', 'langevin', 'potential_grad']


def potential_grad(potential_fn, z):
  """Returns (U(z) [B], dU/dz [B, D]) in one tape."""
  z = tf.identity(z)  # A fresh tensor: bijector caches never see it.
  with tf.GradientTape() as tape:
    tape.watch(z)
    u = potential_fn(z)
  # A vector target: the gradient of sum(u), i.e. each chain's own dU/dz.
  return u, tape.gradient(u, z)


def run_chain(step, x0, seed, num_steps, *, record_every=0):
  """The one chain runner: latent Langevin chains and pixel replay chains.

  Runs x_{i+1}, g_i = step(x_i, fold_in(seed, i)) for i < num_steps in one
  `tf.while_loop` (compiled whole when the caller is a `tf.function`).

  Args:
    step: (x [B, ...], seed int32 [2]) -> (next x, the gradient it used).
    x0: initial states [B, ...].
    seed: int32 [2] stateless seed; step i gets fold_in(seed, i).
    num_steps: number of steps (a Python int or a scalar int32 tensor).
    record_every: if k > 0, also return the states x_0, x_k, x_2k, ...
      stacked as [1 + num_steps // k, B, ...] (paper Fig. 5.3).

  Returns:
    dict with 'x' (final states), 'grad_norm' (mean over steps and chains of
    |g_i|) and, if recording, 'trajectory'.
  """
  seed = tf.convert_to_tensor(seed, tf.int32)
  num_steps = tf.convert_to_tensor(num_steps, tf.int32)
  record = record_every > 0
  traj = tf.constant(0)
  if record:
    traj = tf.TensorArray(x0.dtype, size=0, dynamic_size=True,
                          element_shape=x0.shape).write(0, x0)

  def body(i, x, grad_norm_sum, traj):
    x, grad = step(x, tf.random.experimental.stateless_fold_in(seed, i))
    x = tf.ensure_shape(x, x0.shape)
    norms = tf.norm(tf.reshape(grad, [tf.shape(grad)[0], -1]), axis=-1)
    grad_norm_sum += tf.cast(tf.reduce_mean(norms), grad_norm_sum.dtype)
    if record:
      traj = tf.cond(
          tf.equal((i + 1) % record_every, 0),
          lambda: traj.write((i + 1) // record_every, x), lambda: traj)
    return i + 1, x, grad_norm_sum, traj

  _, x, grad_norm_sum, traj = tf.while_loop(
      lambda i, *_: i < num_steps, body,
      (tf.constant(0), x0, tf.constant(0.0, x0.dtype), traj))
  out = {'x': x, 'grad_norm': grad_norm_sum / tf.maximum(
      tf.cast(num_steps, x.dtype), 1.)}
  if record:
    out['trajectory'] = traj.stack()
  return out


def langevin(potential_fn, z0, seed, *, step_size=0.01, num_steps=60,
             record_every=0, noise_scale=1.0):
  """Runs a Langevin chain (eq. 8) from z0 through `run_chain`.

  Args:
    potential_fn: z [B, ...] -> U(z) [B]; differentiable.
    z0: initial states [B, ...] (short-run: fresh draws from the prior).
    seed: int32 [2] stateless seed.
    step_size: eps of eq. (8).
    num_steps: number of updates (a Python int or a scalar int32 tensor).
    record_every: if k > 0, also return the states z_0, z_k, z_2k, ...
      stacked as [1 + num_steps // k, B, ...] (paper Fig. 5.3).
    noise_scale: multiplies the sqrt(eps) noise (1 = true Langevin).

  Returns:
    dict with 'z' (final states), 'grad_norm' (mean over steps and chains of
    |grad U|) and, if recording, 'trajectory'.
  """
  step_size = tf.cast(step_size, z0.dtype)
  noise_std = tf.sqrt(step_size) * tf.cast(noise_scale, z0.dtype)

  def step(z, step_seed):
    _, grad = potential_grad(potential_fn, z)
    noise = rng.batch_normal(tf.shape(z), step_seed, dtype=z.dtype)
    return z - 0.5 * step_size * grad + noise_std * noise, grad

  out = run_chain(step, z0, seed, num_steps, record_every=record_every)
  out['z'] = out.pop('x')
  return out
