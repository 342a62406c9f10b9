"""The run's compute precision: 'float32' (default) or 'bf16'.

With 'bf16' the image energy and the VAE / GLF decoders compute in bfloat16
(a Keras 'mixed_bfloat16' policy per layer): their variables, the latents,
the Langevin update, the prior term, the losses and every output stay
float32, and flows (GLF's latent flow, GLOW) stay float32 throughout. So
checkpoints do not depend on the precision: a run can switch on resume.

bfloat16 is only worth it where the hardware computes it natively: CPUs
with AVX512-BF16 or AMX-BF16 (oneDNN), GPUs of compute capability 8.0 or
newer. Elsewhere `policy('bf16')` refuses in one line.
"""

import functools

import tensorflow as tf
import tf_keras as keras

import configs
from tilt_tf.errors import UserError

__all__ = ['PRECISIONS', 'bf16_support', 'policy', 'to_float32']

PRECISIONS = configs.CHOICES['precision']
_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')


def _cpu_flags():
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('flags'):
          return set(line.split(':', 1)[1].split())
  except OSError:
    pass
  return set()


@functools.lru_cache(maxsize=None)
def bf16_support():
  """(supported, what): whether this machine computes bfloat16 natively."""
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    caps = [tf.config.experimental.get_device_details(g).get(
        'compute_capability') for g in gpus]
    old = [c for c in caps if not c or tuple(c) < (8, 0)]
    if old:
      return False, f'GPUs of compute capability {old} (bf16 needs >= 8.0)'
    return True, f'GPUs of compute capability {caps}'
  flags = _cpu_flags() & set(_CPU_FLAGS)
  if flags:
    return True, 'CPU with ' + ', '.join(sorted(flags))
  return False, f'a CPU without {" or ".join(_CPU_FLAGS)}'


def policy(precision):
  """The Keras dtype policy of bf16-capable layers, or a one-line refusal."""
  if precision not in PRECISIONS:
    raise UserError(f'precision={precision!r} is not one of '
                    f'{", ".join(PRECISIONS)}')
  if precision == 'float32':
    return keras.mixed_precision.Policy('float32')
  ok, what = bf16_support()
  if not ok:
    raise UserError(f'precision=bf16 needs bfloat16 hardware and this '
                    f'machine has {what}; use --set=precision=float32')
  return keras.mixed_precision.Policy('mixed_bfloat16')


def to_float32(x):
  """A layer's output back to float32 (a no-op for float32 layers)."""
  return tf.cast(x, tf.float32)
