"""The `tilt_over_base` record of benchmarks/all.py: the estimated wall time
of a base's tilt stage over its base stage, from timed compiled steps."""

import time

from absl import logging
import tensorflow as tf
import tf_keras

from benchmarks import timing


def _monitor_checks(steps, every):
  if every <= 0:
    return 0
  return steps // every + (1 if steps % every else 0)


_METHOD = (
    'base stage = base.steps (epochs x steps per epoch) x the mean '
    'time of base_steps_timed compiled generator.train_step calls '
    '(random images, after a warm-up); tilt stage = ebm.steps x the '
    'time of one compiled EBM step (LatentEBM.sample_latents with '
    'ebm.langevin_steps, loss, Adam update; timed with '
    'ebm_langevin_steps_timed of those Langevin steps, the rest added '
    'at langevin_s_per_step) + monitor_checks x (monitor_samples x '
    'sample_langevin_steps Langevin steps at the EBM batch\'s cost per '
    'chain step); the monitor\'s FID features, checkpoints and summaries '
    'are not counted')


def tilt_over_base_record(base, preset, dataset, budget, repeats,
                          base_steps_timed):
  """(tilt stage time) / (base stage time) of one base, both estimated."""
  cfg, generator, energy, latent_ebm = timing.build(base, preset, dataset)
  ecfg = cfg.ebm
  label = f'{base}/{preset}'
  base_first_s, base_step_s = _time_base_step(cfg, generator,
                                              base_steps_timed, label)
  ebm_step_s, k, lang = _time_ebm_step(ecfg, generator, energy, latent_ebm,
                                       budget, repeats, label)

  checks = _monitor_checks(ecfg.steps, ecfg.monitor_every)
  check_s = (ecfg.monitor_samples * ecfg.sample_langevin_steps *
             lang['s_per_step'] / ecfg.batch_size)
  base_s = cfg.base.steps * base_step_s
  tilt_s = ecfg.steps * ebm_step_s + checks * check_s
  return {
      'benchmark': 'tilt_over_base', 'base': base, 'preset': preset,
      'dataset': cfg.dataset,
      'tilt_over_base_time': tilt_s / base_s,
      'tilt_over_base_time_without_monitor': ecfg.steps * ebm_step_s / base_s,
      'base_stage_s_est': base_s,
      'tilt_stage_s_est': tilt_s,
      'base_steps': cfg.base.steps,
      'base_batch': cfg.base.batch_size,
      'base_step_s': base_step_s,
      'base_steps_timed': base_steps_timed,
      'base_first_call_s': base_first_s,
      'ebm_steps': ecfg.steps,
      'ebm_batch': ecfg.batch_size,
      'ebm_langevin_steps': ecfg.langevin_steps,
      'ebm_step_s': ebm_step_s,
      'ebm_langevin_steps_timed': k,
      'langevin_s_per_step': lang['s_per_step'],
      'monitor_checks': checks,
      'monitor_check_s_est': check_s,
      'method': _METHOD,
  }


def _time_base_step(cfg, generator, n_base, label):
  """Base stage: generator.train_step, as train_lib's loop calls it.

  Returns (seconds of the first call, mean seconds of `n_base` steps after
  it); `label` ('base/preset') names the run in the log.
  """
  shape = generator.data_shape
  x_base = tf.random.stateless_uniform((cfg.base.batch_size,) + shape, [0, 3])
  generator.build(x_base)
  base_opt = generator.make_optimizer(cfg.base)
  base_step = tf.function(lambda x, seed: generator.train_step(
      x, seed, base_opt, cfg.base.batch_size)['loss'])
  seed = tf.constant([0, 5], tf.int32)
  base_first_s = timing.timed(lambda: base_step(x_base, seed))
  logging.info('tilt_over_base %s: %d base steps', label, n_base)
  start = time.perf_counter()
  for _ in range(n_base):
    loss = base_step(x_base, seed)
  loss.numpy()
  return base_first_s, (time.perf_counter() - start) / n_base


def _time_ebm_step(ecfg, generator, energy, latent_ebm, budget, repeats,
                   label):
  """Tilt stage: Langevin negatives + the energy's update, as in train_lib.

  Returns (seconds per EBM step with ebm.langevin_steps, the Langevin steps
  timed in it, `timing.time_chain`'s result for the Langevin chain alone);
  `label` ('base/preset') names the run in the log.
  """
  batch = ecfg.batch_size
  ebm_opt = tf_keras.optimizers.Adam(ecfg.learning_rate, beta_1=ecfg.beta_1)
  x_data = tf.random.stateless_uniform((batch,) + generator.data_shape,
                                       [0, 4])

  @tf.function
  def ebm_step(seed, num_steps):
    chain = latent_ebm.sample_latents(batch, seed, ecfg.step_size, num_steps)
    with tf.GradientTape() as tape:
      loss, _ = latent_ebm.per_example_loss(x_data, chain['z'])
      loss = tf.reduce_mean(loss)
    variables = energy.trainable_variables
    ebm_opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  logging.info('tilt_over_base %s: Langevin per step', label)
  chain = timing.chain_fn(latent_ebm, batch, ecfg.step_size)
  lang = timing.time_chain(timing.runner(tf.function(chain)),
                           ecfg.langevin_steps, budget, repeats)
  logging.info('tilt_over_base %s: EBM steps', label)
  ebm = timing.time_chain(timing.runner(ebm_step), ecfg.langevin_steps,
                          budget, repeats)
  k = ebm['steps_timed']
  ebm_step_s = (ebm['s_per_step'] * k +
                (ecfg.langevin_steps - k) * lang['s_per_step'])
  return ebm_step_s, k, lang
