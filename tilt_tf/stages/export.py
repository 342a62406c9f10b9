"""SavedModel sampler for TF Serving: base and tilted samples from a run.

`export_run(workdir, export_dir)` restores a run's generator and best
monitored energy (`runtime.build.restore`: no data, no lock) and writes a
SavedModel in TF Serving's versioned layout `export_dir/<version>/`;
`export_sampler(generator, method, ...)` does the same for a tilted model
in memory (what `tilt_tf.tilt(...).export` calls).

Signatures (every input is required: a SignatureDef has no defaults, so the
optional knobs live in a second signature instead of a magic value):

  serving_default  num_samples int32 [], seed int32 [2]
                   -> tilted samples with the trained Langevin steps and
                      temperature 1 (what the run's own sampler draws).
  sample_tilted    num_samples, seed, langevin_steps int32 [],
                   temperature float32 [] -> tilted samples.
  sample_base      num_samples, seed, temperature -> untilted prior samples.
  sample_distilled num_samples, seed -> x = G(z), z ~ the distilled flow q
                   (tilt_tf/distill.py): no Langevin chain; only in exports
                   of runs whose distill stage ran. z = q.sample(n, seed),
                   as `Tilted.sample(method='distilled')` draws batch 0 of
                   seed s from [s, 1000].

Outputs: `images` uint8 [N, H, W, C] for image data (`samples` float32
[N, D] for toy points) and `latents` float32 [N, latent_dim].

Seeds are stateless and follow `LatentTilt.sample` (tilt_tf/methods/
latent_tilt.py): the base latents are `prior_sample(n, split(seed)[0])`, the
tilted ones `latent_ebm.sample_latents(n, seed, ...)`; both chains start from the same
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
from typing import Optional

from absl import logging
import tensorflow as tf

from tilt_tf import io_utils
from tilt_tf.errors import UserError
from tilt_tf.runtime import build

__all__ = ['SIGNATURES', 'Sampler', 'next_version', 'export_run',
           'export_sampler']

SIGNATURES = ('serving_default', 'sample_tilted', 'sample_base')
# langevin_steps may go up to this many times the trained sampling steps.
LANGEVIN_STEPS_FACTOR = 10


class Sampler(tf.Module):
  """Generator + energy with the serving signatures as tf.functions."""

  def __init__(self, generator, method, ebm_cfg, *, max_samples: int = 1024,
               flow=None, name: str = 'tilt_sampler'):
    super().__init__(name=name)
    if max_samples < 1:
      raise UserError(f'max_samples={max_samples} must be >= 1')
    if not method.has_latent:
      raise UserError('this run\'s method has no latent sampler to export '
                      '(a pixel-space EBM samples from replay-buffer chains); '
                      'export a latent-EBM run')
    self.generator = generator
    self.energy = method.energy
    self.latent_ebm = method.latent_ebm
    # Explicit tracking: every weight the signatures read is a direct
    # dependency of this module (Keras-3 variables are not found by
    # tf.Module, and TF Serving's loader needs them stored).
    self.all_variables = (list(self.generator.variables) +
                          list(self.energy.variables))
    self.flow = flow
    if flow is not None:
      self.all_variables += list(flow.variables)
      self.sample_distilled = tf.function(
          self._distilled, input_signature=[
              tf.TensorSpec([], tf.int32, name='num_samples'),
              tf.TensorSpec([2], tf.int32, name='seed')])
    self._is_toy = len(generator.data_shape) == 1
    self._step_size = method.sample_step_size
    self._trained_steps = int(ebm_cfg.sample_langevin_steps)
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
            'baked in at export: its max_samples); split the request'),
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
    chain = self.latent_ebm.sample_latents(
        n, seed, self._step_size, steps, temperature=temp,
        energy_scale=self.latent_ebm.sampling_scale)
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

  def _distilled(self, num_samples, seed):
    """Distilled samples: z ~ q (the flow), x = G(z); no chain."""
    n, _, _ = self._check(num_samples)
    return self._outputs(self.flow.sample(n, seed))

  def signatures(self):
    out = {'serving_default': self.serving_default,
           'sample_tilted': self.sample_tilted,
           'sample_base': self.sample_base}
    if self.flow is not None:
      out['sample_distilled'] = self.sample_distilled
    return out


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


def export_run(workdir: str, export_dir: str, *,
               version: Optional[int] = None, max_samples: int = 1024,
               generator=None) -> str:
  """Exports a trained run as a versioned SavedModel; returns its path.

  Args:
    workdir: the run folder (holds run.json and checkpoints/).
    export_dir: the TF Serving model folder; the SavedModel goes to
      `export_dir/<version>/`.
    version: positive int; default 1 + the largest existing version.
    max_samples: the largest num_samples a request may ask for.
    generator: the user's Generator for a run made from Python by
      `tilt_tf.tilt` (None: rebuilt from the run's config).

  Returns:
    The path of the written version folder.
  """
  final = _version_folder(export_dir, version, max_samples)
  if not build.method_class(build.config_from_run(workdir)).has_latent:
    raise UserError(f'{workdir} holds a pixel-space EBM: it has no latent '
                    'sampler to export (its samples come from replay-buffer '
                    'chains); export a latent-EBM run')
  restored = build.restore(workdir, generator=generator)
  cfg = restored.config
  info = {'workdir': os.path.abspath(workdir),
          'energy_checkpoint': restored.energy_checkpoint,
          'base_name': cfg.base_name, 'dataset': cfg.dataset,
          'preset': cfg.preset}
  from tilt_tf import distill  # pylint: disable=g-import-not-at-top
  flow = distill.restore_flow(workdir, restored.generator.latent_dim,
                              cfg.distill, cfg.seed)
  sampler = Sampler(restored.generator, restored.method, cfg.ebm,
                    max_samples=max_samples, flow=flow)
  return _save(sampler, export_dir, final, info=info, max_samples=max_samples)


def export_sampler(generator, method, ebm_cfg, export_dir: str, *,
                   version: Optional[int] = None, max_samples: int = 1024,
                   info: Optional[dict] = None, flow=None) -> str:
  """Exports an in-memory tilted model (generator + LatentTilt, and its
  distilled flow if given)."""
  final = _version_folder(export_dir, version, max_samples)
  sampler = Sampler(generator, method, ebm_cfg, max_samples=max_samples,
                    flow=flow)
  return _save(sampler, export_dir, final, info=dict(info or {}),
               max_samples=max_samples)


def _version_folder(export_dir, version, max_samples):
  if version is not None and version < 1:
    raise UserError(f'version={version} must be a positive integer')
  if max_samples < 1:
    raise UserError(f'max_samples={max_samples} must be >= 1')
  if version is None:
    version = next_version(export_dir)
  final = os.path.join(export_dir, str(version))
  if os.path.exists(final):
    raise UserError(f'{final} exists; pass another version or leave it '
                    'out to write the next one')
  return final


def _save(sampler, export_dir: str, final: str, *, info: dict,
          max_samples: int) -> str:
  os.makedirs(export_dir, exist_ok=True)
  # TF Serving only loads integer folder names: a killed export leaves at
  # most a dot-folder it ignores, never a half-written version.
  tmp = tempfile.mkdtemp(dir=export_dir,
                         prefix=f'.tmp-{os.path.basename(final)}-')
  try:
    # No custom-gradient functions are saved: the Langevin gradients are
    # traced into the signatures, and nothing differentiates a served
    # sampler (saves ~25 % of an export's CPU).
    tf.saved_model.save(sampler, tmp, signatures=sampler.signatures(),
                        options=tf.saved_model.SaveOptions(
                            experimental_custom_gradients=False))
    extra = os.path.join(tmp, 'assets.extra')
    os.makedirs(extra, exist_ok=True)
    warmup = _warmup_record()
    if warmup is not None:
      with tf.io.TFRecordWriter(
          os.path.join(extra, 'tf_serving_warmup_requests')) as w:
        w.write(warmup)
    info.update({
        'output': 'samples' if sampler._is_toy else 'images',  # pylint: disable=protected-access
        'trained_langevin_steps': sampler._trained_steps,  # pylint: disable=protected-access
        'max_langevin_steps': sampler._max_steps,  # pylint: disable=protected-access
        'max_samples': max_samples,
        'signatures': sorted(sampler.signatures()),
    })
    io_utils.write_json(os.path.join(extra, 'tilt_export.json'), info)
    os.rename(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  logging.info('exported (energy %s) -> %s', info.get('energy_checkpoint'),
               final)
  return final
