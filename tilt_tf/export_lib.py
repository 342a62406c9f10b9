"""SavedModel sampler for TF Serving: base and tilted samples from a run.

`export_run(workdir, export_dir)` rebuilds a run's pipeline from its
`run.json`, restores the generator and the best monitored energy, and writes
a SavedModel in TF Serving's versioned layout `export_dir/<version>/`.

Signatures (every input is required: a SignatureDef has no defaults, so the
optional knobs live in a second signature instead of a magic value):

  serving_default  num_samples int32 [], seed int32 [2]
                   -> tilted samples with the trained Langevin steps and
                      temperature 1 (what the run's own sampler draws).
  sample_tilted    num_samples, seed, langevin_steps int32 [],
                   temperature float32 [] -> tilted samples.
  sample_base      num_samples, seed, temperature -> untilted prior samples.

Outputs: `images` uint8 [N, H, W, C] for image data (`samples` float32
[N, D] for toy points) and `latents` float32 [N, latent_dim].

Seeds are stateless and follow `train_lib.Pipeline._sample_fn`: the base
latents are `prior_sample(n, split(seed)[0])`, the tilted ones
`latent_ebm.sample_latents(n, seed, ...)`; both chains start from the same
z0, so `sample_base` and a 0-step `sample_tilted` agree, and the export
answers bit-identically to the in-process sampler for the same seed.

Out-of-range inputs (num_samples outside [1, max_samples], langevin_steps
outside [0, 10 x trained], temperature <= 0 or not finite) fail with
InvalidArgument before anything is allocated.
"""

import os
import re
import shutil
import tempfile

from absl import logging
import ml_collections
import tensorflow as tf

import configs
from tilt_tf import io_utils
from tilt_tf import train_lib
from tilt_tf.errors import UserError

__all__ = ['SIGNATURES', 'Sampler', 'load_pipeline', 'next_version',
           'export_run']

SIGNATURES = ('serving_default', 'sample_tilted', 'sample_base')
# langevin_steps may go up to this many times the trained sampling steps.
LANGEVIN_STEPS_FACTOR = 10


def _apply_stored(config, stored):
  """Overlays a run.json `config` dict onto a ConfigDict, in place.

  JSON turned tuples into lists: fields that are tuples in `config` get
  tuples back. Fields the current config lacks are added.
  """
  with config.unlocked():
    for key, value in stored.items():
      current = config.get(key) if key in config else None
      if isinstance(value, dict):
        if isinstance(current, ml_collections.ConfigDict):
          _apply_stored(current, value)
        else:
          config[key] = ml_collections.ConfigDict(value)
        continue
      if isinstance(value, list) and isinstance(current, tuple):
        value = tuple(value)
      if isinstance(current, float) and isinstance(value, int):
        value = float(value)
      config[key] = value
  return config


def load_pipeline(workdir):
  """Rebuilds a finished run's Pipeline and restores base + best energy.

  Returns (pipeline, path of the energy checkpoint restored).
  """
  if not os.path.isdir(workdir):
    raise UserError(f'--workdir {workdir} does not exist; pass the folder of '
                    'a training run (the one holding run.json)')
  run = io_utils.read_json(os.path.join(workdir, 'run.json'))
  if run is None:
    raise UserError(f'--workdir {workdir} holds no run (no run.json); train '
                    'one first with //tilt_tf:train')
  try:
    stored = run['config']
    base_name = run['identity']['base_name']
    dataset = run['identity']['dataset']
    preset = run.get('preset') or stored.get('preset', 'paper')
  except (KeyError, TypeError) as e:
    raise UserError(f'{workdir}/run.json is malformed (missing {e}); it was '
                    'not written by this version of tilt_tf') from None
  if base_name == 'pixel_ebm':
    raise UserError(f'{workdir} holds a pixel-space EBM (--base=pixel_ebm): '
                    'it has no latent sampler to export (its samples come '
                    'from replay-buffer chains); export a latent-EBM run')
  config = configs.get_config(base_name, dataset, preset)
  _apply_stored(config, stored)
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if not (tf.train.latest_checkpoint(os.path.join(ckpt_dir, 'tilt_best')) or
          tf.train.latest_checkpoint(os.path.join(ckpt_dir, 'tilt'))):
    raise UserError(f'no tilt checkpoint in {workdir}; run the tilt stage '
                    'first (--stage=tilt), then export')
  # No mirroring: the export holds plain variables.
  pipeline = train_lib.Pipeline(config, workdir,
                                strategy=tf.distribute.get_strategy())
  pipeline.writer.close()
  which = pipeline.restore_tilt()
  return pipeline, which


class Sampler(tf.Module):
  """Generator + energy with the serving signatures as tf.functions."""

  def __init__(self, pipeline, max_samples=1024, name='tilt_sampler'):
    super().__init__(name=name)
    if max_samples < 1:
      raise UserError(f'--max_samples={max_samples} must be >= 1')
    cfg = pipeline.config
    self.generator = pipeline.generator
    self.energy = pipeline.energy
    self.latent_ebm = pipeline.latent_ebm
    # Explicit tracking: every weight the signatures read is a direct
    # dependency of this module (DESIGN §5), whatever the generator nests.
    self.all_variables = (list(self.generator.variables) +
                          list(self.energy.variables))
    self._is_toy = bool(pipeline.is_toy)
    self._step_size = float(cfg.ebm.step_size)
    self._trained_steps = int(cfg.ebm.sample_langevin_steps)
    self._max_steps = LANGEVIN_STEPS_FACTOR * self._trained_steps
    self._max_samples = int(max_samples)
    # Read back with tf.saved_model.load (e.g. by clients or tests).
    self.trained_langevin_steps = tf.Variable(
        self._trained_steps, trainable=False, name='trained_langevin_steps')
    self.max_samples = tf.Variable(self._max_samples, trainable=False,
                                   name='max_samples')
    self.max_langevin_steps = tf.Variable(
        self._max_steps, trainable=False, name='max_langevin_steps')

  # ------------------------------------------------------------- helpers

  def _check(self, num_samples, langevin_steps=None, temperature=None):
    """Assertions; returns the inputs gated on them (control deps)."""
    checks = [
        tf.debugging.assert_greater_equal(
            num_samples, 1,
            message='num_samples must be >= 1'),
        tf.debugging.assert_less_equal(
            num_samples, self._max_samples,
            message=f'num_samples must be <= {self._max_samples} (the bound '
            'baked in at export: --max_samples); split the request'),
    ]
    if langevin_steps is not None:
      checks += [
          tf.debugging.assert_greater_equal(
              langevin_steps, 0, message='langevin_steps must be >= 0'),
          tf.debugging.assert_less_equal(
              langevin_steps, self._max_steps,
              message=f'langevin_steps must be <= {self._max_steps} '
              f'({LANGEVIN_STEPS_FACTOR} x the trained '
              f'{self._trained_steps})'),
      ]
    if temperature is not None:
      checks += [
          tf.debugging.assert_positive(
              temperature, message='temperature must be > 0'),
          tf.debugging.assert_all_finite(
              temperature, message='temperature must be finite'),
      ]
    with tf.control_dependencies(checks):
      return [None if t is None else tf.identity(t)
              for t in (num_samples, langevin_steps, temperature)]

  def _outputs(self, z):
    x = self.generator.decode(z)
    if self._is_toy:
      return {'samples': tf.cast(x, tf.float32), 'latents': z}
    # As figures.to_uint8: round half to even, then clip.
    images = tf.cast(tf.clip_by_value(tf.round(x * 255.0), 0.0, 255.0),
                     tf.uint8)
    return {'images': images, 'latents': z}

  def _tilted(self, num_samples, seed, langevin_steps, temperature):
    n, steps, temp = self._check(num_samples, langevin_steps, temperature)
    chain = self.latent_ebm.sample_latents(n, seed, self._step_size, steps,
                                           temperature=temp)
    return self._outputs(chain['z'])

  # ---------------------------------------------------------- signatures

  @tf.function(input_signature=[
      tf.TensorSpec([], tf.int32, name='num_samples'),
      tf.TensorSpec([2], tf.int32, name='seed')])
  def serving_default(self, num_samples, seed):
    """Tilted samples with the trained Langevin steps, temperature 1."""
    return self._tilted(num_samples, seed,
                        tf.constant(self._trained_steps, tf.int32),
                        tf.constant(1.0, tf.float32))

  @tf.function(input_signature=[
      tf.TensorSpec([], tf.int32, name='num_samples'),
      tf.TensorSpec([2], tf.int32, name='seed'),
      tf.TensorSpec([], tf.int32, name='langevin_steps'),
      tf.TensorSpec([], tf.float32, name='temperature')])
  def sample_tilted(self, num_samples, seed, langevin_steps, temperature):
    """Tilted samples: z0 ~ N(0, T^2 I), then `langevin_steps` steps."""
    return self._tilted(num_samples, seed, langevin_steps, temperature)

  @tf.function(input_signature=[
      tf.TensorSpec([], tf.int32, name='num_samples'),
      tf.TensorSpec([2], tf.int32, name='seed'),
      tf.TensorSpec([], tf.float32, name='temperature')])
  def sample_base(self, num_samples, seed, temperature):
    """Untilted base samples: z ~ N(0, T^2 I), x = G(z)."""
    n, _, temp = self._check(num_samples, temperature=temperature)
    seed_init, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    return self._outputs(self.generator.prior_sample(n, seed_init, temp))

  def signatures(self):
    return {'serving_default': self.serving_default,
            'sample_tilted': self.sample_tilted,
            'sample_base': self.sample_base}


def next_version(export_dir):
  """1 + the largest integer subfolder of export_dir (1 if none)."""
  if not os.path.isdir(export_dir):
    return 1
  versions = [int(d) for d in os.listdir(export_dir)
              if re.fullmatch(r'\d+', d) and
              os.path.isdir(os.path.join(export_dir, d))]
  return max(versions, default=0) + 1


def _warmup_record():
  """One serialized PredictionLog for assets.extra/tf_serving_warmup_requests
  (TF Serving runs it at load so the first user request is not slow);
  None when tensorflow-serving-api is not installed."""
  try:
    from tensorflow_serving.apis import model_pb2  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  request = predict_pb2.PredictRequest(
      model_spec=model_pb2.ModelSpec(signature_name='serving_default'))
  request.inputs['num_samples'].CopyFrom(tf.make_tensor_proto(1, tf.int32))
  request.inputs['seed'].CopyFrom(tf.make_tensor_proto([0, 0], tf.int32))
  log = prediction_log_pb2.PredictionLog(
      predict_log=prediction_log_pb2.PredictLog(request=request))
  return log.SerializeToString()


def export_run(workdir, export_dir, version=None, max_samples=1024):
  """Exports a trained run as a versioned SavedModel; returns its path.

  Args:
    workdir: the run folder (holds run.json and checkpoints/).
    export_dir: the TF Serving model folder; the SavedModel goes to
      `export_dir/<version>/`.
    version: positive int; default 1 + the largest existing version.
    max_samples: the largest num_samples a request may ask for.

  Returns:
    The path of the written version folder.
  """
  if version is not None and version < 1:
    raise UserError(f'--version={version} must be a positive integer')
  if max_samples < 1:
    raise UserError(f'--max_samples={max_samples} must be >= 1')
  if version is None:
    version = next_version(export_dir)
  final = os.path.join(export_dir, str(version))
  if os.path.exists(final):
    raise UserError(f'{final} exists; pass another --version or leave it '
                    'out to write the next one')
  pipeline, which = load_pipeline(workdir)
  sampler = Sampler(pipeline, max_samples=max_samples)
  os.makedirs(export_dir, exist_ok=True)
  # TF Serving only loads integer folder names: a killed export leaves at
  # most a dot-folder it ignores, never a half-written version.
  tmp = tempfile.mkdtemp(dir=export_dir, prefix=f'.tmp-{version}-')
  try:
    tf.saved_model.save(sampler, tmp, signatures=sampler.signatures())
    extra = os.path.join(tmp, 'assets.extra')
    os.makedirs(extra, exist_ok=True)
    warmup = _warmup_record()
    if warmup is not None:
      with tf.io.TFRecordWriter(
          os.path.join(extra, 'tf_serving_warmup_requests')) as w:
        w.write(warmup)
    io_utils.write_json(os.path.join(extra, 'tilt_export.json'), {
        'workdir': os.path.abspath(workdir),
        'energy_checkpoint': which,
        'base_name': pipeline.config.base_name,
        'dataset': pipeline.config.dataset,
        'preset': pipeline.config.preset,
        'output': 'samples' if pipeline.is_toy else 'images',
        'trained_langevin_steps': sampler._trained_steps,  # pylint: disable=protected-access
        'max_langevin_steps': sampler._max_steps,  # pylint: disable=protected-access
        'max_samples': max_samples,
        'signatures': list(SIGNATURES),
    })
    os.rename(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  logging.info('exported %s (energy %s) -> %s', workdir, which, final)
  return final
