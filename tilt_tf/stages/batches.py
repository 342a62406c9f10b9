"""One batched sampler for the sample stage (stages/sample.py), the distill
stage (stages/distill.py) and `Tilted.sample` (tilt_tf/api.py).

Batch i of n rows is `draw(m_i, [seed, 1000 + i])` (m_i rows, the last
batch the remainder), so the same seed gives the same rows whichever
caller draws them; batches may be kept on disk as they are drawn, so a
killed draw resumes at the batch it was drawing.
"""

import dataclasses
import math
import os
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from tilt_tf import io_utils
from tilt_tf import rng

__all__ = ['Progress', 'Drawn', 'draw_batches']


@dataclasses.dataclass
class Progress:
  """Where a draw is after batch `batch` (1-based) of `batches`: `done` of
  `n` rows; `rate` rows per second drawn in this call; `eta` seconds."""
  batch: int
  batches: int
  done: int
  n: int
  rate: float
  eta: float


@dataclasses.dataclass
class Drawn:
  """The rows drawn (key -> numpy array [n, ...]); `seconds`: the time of
  every batch, those drawn earlier and kept on disk included;
  `drawn_seconds`: the time of the batches drawn in this call."""
  arrays: Dict[str, np.ndarray]
  seconds: float
  drawn_seconds: float


def draw_batches(draw: Callable, n: int, batch_size: int, seed: int, *,
                 keys: Optional[Sequence[str]] = None,
                 parts_dir: Optional[str] = None,
                 log: Optional[Callable[[Progress], None]] = None,
                 log_seconds: float = 0.0) -> Drawn:
  """Draws n rows in batches of `batch_size` (see the module docstring).

  Args:
    draw: (m, seed) -> dict of tensors with m rows each; m is an int32
      scalar tensor, seed an int32 [2] tensor [seed, 1000 + i].
    n: rows in all.
    batch_size: rows per batch.
    seed: the draw's seed.
    keys: the keys of `draw`'s dict to keep (default: all).
    parts_dir: keeps batch i in parts_dir/part-NNNNN.npz with the seconds
      it took, and loads the batches found there instead of drawing them.
    log: called with a `Progress` after a batch is drawn, at most every
      `log_seconds` seconds and after the last batch.
    log_seconds: see `log`.
  Returns:
    A `Drawn`.
  """
  num_batches = int(math.ceil(n / batch_size))
  parts, seconds, drawn_seconds, drawn_rows = [], 0.0, 0.0, 0
  last_log = time.time()
  for i in range(num_batches):
    m = min(batch_size, n - i * batch_size)
    path = (os.path.join(parts_dir, f'part-{i:05d}.npz') if parts_dir
            else None)
    if path and os.path.exists(path):
      with np.load(path) as part:
        parts.append({k: part[k] for k in keys or part.files
                      if k != 'seconds'})
        seconds += float(part['seconds']) if 'seconds' in part.files else 0.
      continue
    t0 = time.time()
    out = draw(tf.constant(m),
               tf.constant(rng.stream(seed, rng.SAMPLE_BATCH, i)))
    arrays = {k: out[k].numpy() for k in (keys or out)}
    dt = time.time() - t0
    if path:
      io_utils.savez(path, seconds=np.float64(dt), **arrays)
    parts.append(arrays)
    seconds, drawn_seconds, drawn_rows = (seconds + dt, drawn_seconds + dt,
                                          drawn_rows + m)
    now = time.time()
    if log and (now - last_log >= log_seconds or i + 1 == num_batches):
      last_log, done = now, i * batch_size + m
      rate = drawn_rows / max(drawn_seconds, 1e-9)
      log(Progress(i + 1, num_batches, done, n, rate,
                   (n - done) / max(rate, 1e-9)))
  arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  return Drawn(arrays, seconds, drawn_seconds)
