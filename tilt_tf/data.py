"""Data sets as arrays and as one tf.data pipeline.

Toy sets (the DOT setting of the paper's §5.1) are generated from a seed.
Image sets come from local files when there are any: IDX `.gz` files (MNIST,
Fashion-MNIST) or the CIFAR-10 python batches in `data_dir`, and for
Fashion-MNIST by default Debian's `/usr/share/datasets/fashion-mnist/`
(package `dataset-fashion-mnist`); otherwise from a prepared TFDS copy
(`tfds build mnist` where the network allows).

Images are uint8 [N, H, W, C] at rest and float32 in [0, 1] in the pipeline.
"""

import gzip
import importlib.util
import os
import pickle
import struct

import numpy as np
import tensorflow as tf

from tilt_tf import rng
from tilt_tf.errors import UserError

__all__ = [
    'TOY_DATASETS', 'IMAGE_DATASETS', 'DATASETS', 'is_toy', 'data_shape',
    'toy_samples', 'load', 'load_images', 'make_dataset',
    'GAUSSIANS_STD', 'gaussian_modes',
]

TOY_DATASETS = ('25gaussians', 'swissroll')
IMAGE_DATASETS = ('fashion_mnist', 'mnist', 'cifar10')
DATASETS = TOY_DATASETS + IMAGE_DATASETS

DEFAULT_DIRS = {
    'fashion_mnist': '/usr/share/datasets/fashion-mnist',
}

_SHAPES = {
    '25gaussians': (2,),
    'swissroll': (2,),
    'fashion_mnist': (28, 28, 1),
    'mnist': (28, 28, 1),
    'cifar10': (32, 32, 3),
}

_IDX_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}

# 25-Gaussians (DOT): modes at 2*(i, j), i, j in -2..2, std 0.05, all / 2.828.
_GAUSSIANS_SCALE = 2.828
GAUSSIANS_STD = 0.05 / _GAUSSIANS_SCALE


def check_dataset(name):
  if name not in DATASETS:
    raise UserError(f'unknown dataset {name!r}; choose one of '
                    f'{", ".join(DATASETS)}')


def is_toy(name):
  check_dataset(name)
  return name in TOY_DATASETS


def data_shape(name):
  check_dataset(name)
  return _SHAPES[name]


def gaussian_modes():
  """The 25 mode centres of 25-Gaussians, float32 [25, 2]."""
  grid = np.arange(-2, 3, dtype=np.float32)
  centres = np.stack(np.meshgrid(grid, grid, indexing='ij'), -1).reshape(-1, 2)
  return (2.0 * centres / _GAUSSIANS_SCALE).astype(np.float32)


def toy_samples(name, n, seed):
  """Draws `n` points of a toy set, float32 [n, 2], reproducible from `seed`."""
  check_dataset(name)
  if name == '25gaussians':
    rng = np.random.default_rng(seed)
    modes = gaussian_modes()
    idx = rng.integers(0, len(modes), size=n)
    return (modes[idx] + GAUSSIANS_STD * rng.standard_normal((n, 2))).astype(
        np.float32)
  if name == 'swissroll':
    from sklearn.datasets import make_swiss_roll  # pylint: disable=g-import-not-at-top
    x, _ = make_swiss_roll(n_samples=n, noise=0.25, random_state=seed)
    return (x[:, [0, 2]] / 7.5).astype(np.float32)
  raise UserError(f'{name!r} is not a toy dataset')


def _read_idx(path, expected_ndim):
  """Reads one (gzipped) IDX file into a numpy array, or raises UserError."""
  fix = ('re-download it, or point --data_dir at a folder holding valid '
         'IDX files')
  try:
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
      raw = f.read()
  except FileNotFoundError:
    raise UserError(f'missing data file {path}; {fix}') from None
  except (OSError, EOFError, gzip.BadGzipFile) as e:
    raise UserError(f'corrupt data file {path} ({e}); {fix}') from None
  if len(raw) < 4:
    raise UserError(f'corrupt data file {path} (too short); {fix}')
  zero, dtype_code, ndim = struct.unpack('>HBB', raw[:4])
  if zero != 0 or dtype_code != 0x08 or ndim != expected_ndim:
    raise UserError(f'corrupt data file {path} (bad IDX header); {fix}')
  dims = struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim])
  body = raw[4 + 4 * ndim:]
  if len(body) != int(np.prod(dims)):
    raise UserError(
        f'corrupt data file {path} (header says {dims}, body has {len(body)} '
        f'bytes); {fix}')
  return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _load_idx(folder, split):
  images_file, labels_file = _IDX_FILES[split]
  images = _read_idx(os.path.join(folder, images_file), 3)[..., None]
  labels = _read_idx(os.path.join(folder, labels_file), 1)
  if len(images) != len(labels):
    raise UserError(f'{folder}: {len(images)} images but {len(labels)} labels '
                    f'in the {split} split; the files do not belong together')
  return images, labels.astype(np.int64)


def _load_cifar(folder, split):
  """CIFAR-10 python batches (`data_batch_1..5`, `test_batch`)."""
  sub = os.path.join(folder, 'cifar-10-batches-py')
  if os.path.isdir(sub):
    folder = sub
  names = ([f'data_batch_{i}' for i in range(1, 6)] if split == 'train'
           else ['test_batch'])
  images, labels = [], []
  for name in names:
    path = os.path.join(folder, name)
    try:
      with open(path, 'rb') as f:
        batch = pickle.load(f, encoding='bytes')
      data = np.asarray(batch[b'data'], dtype=np.uint8)
      images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
      labels.append(np.asarray(batch[b'labels'], dtype=np.int64))
    except FileNotFoundError:
      raise UserError(f'missing data file {path}; point --data_dir at the '
                      'folder of the CIFAR-10 python batches') from None
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f'corrupt data file {path} ({type(e).__name__}); '
                      're-download the CIFAR-10 python batches') from None
  return np.concatenate(images), np.concatenate(labels)


def _has_local_files(name, folder):
  if not folder or not os.path.isdir(folder):
    return False
  if name == 'cifar10':
    return (os.path.exists(os.path.join(folder, 'test_batch')) or
            os.path.isdir(os.path.join(folder, 'cifar-10-batches-py')))
  return any(os.path.exists(os.path.join(folder, f))
             for files in _IDX_FILES.values() for f in files)


def _tfds_installed():
  """Whether tensorflow-datasets is importable (the [datasets] extra of
  `pip install tilt_tf`; ./bazelw's .venv has it)."""
  return importlib.util.find_spec('tensorflow_datasets') is not None


def _load_tfds(name, split, tfds_dir=None):
  """Returns (images, labels) from a fully prepared TFDS copy, or None."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    builder = tfds.builder(name, data_dir=tfds_dir)
    # A copy is only trusted once TFDS has finished writing it.
    if not tf.io.gfile.exists(os.path.join(builder.data_dir,
                                           'dataset_info.json')):
      return None
    ds = builder.as_dataset(split=split, batch_size=-1, as_supervised=True)
  except Exception:  # pylint: disable=broad-except
    return None  # Not prepared here (no download offline): use local files.
  images, labels = tfds.as_numpy(ds)
  return np.asarray(images, np.uint8), np.asarray(labels, np.int64)


def load_images(name, split='train', data_dir=None, *, with_labels=False,
                use_tfds=True):
  """Loads an image set as uint8 [N, H, W, C] (and int64 labels).

  Order: files in `data_dir` if it holds them; the default local folder of
  the set (Fashion-MNIST from Debian); a fully prepared TFDS copy. Missing
  or corrupt files raise UserError naming the file and the fix.
  """
  check_dataset(name)
  if name in TOY_DATASETS:
    raise UserError(f'{name!r} is a toy dataset, not an image set')
  if split not in ('train', 'test'):
    raise UserError(f'unknown split {split!r}; use train or test')
  loader = _load_cifar if name == 'cifar10' else _load_idx
  result = None
  if data_dir:
    if not os.path.isdir(data_dir):
      raise UserError(f'--data_dir {data_dir} does not exist; give a folder '
                      f'holding the {name} files')
    if _has_local_files(name, data_dir):
      result = loader(data_dir, split)
  default = DEFAULT_DIRS.get(name)
  if result is None and default and _has_local_files(name, default):
    result = loader(default, split)
  if result is None and use_tfds:
    result = _load_tfds(name, split)
  if result is None:
    hint = {
        'fashion_mnist': 'install Debian package dataset-fashion-mnist '
                         '(./bazelw does) or pass --data_dir=FOLDER with the '
                         'IDX .gz files',
        'mnist': 'pass --data_dir=FOLDER holding the MNIST IDX .gz files, or '
                 'prepare it with `tfds build mnist` where the network allows',
        'cifar10': 'pass --data_dir=FOLDER holding the CIFAR-10 python '
                   'batches, or prepare it with `tfds build cifar10`',
    }[name]
    if name != 'fashion_mnist' and not _tfds_installed():
      hint += "; TFDS is not installed: pip install 'tilt_tf[datasets]'"
    raise UserError(f'no local copy of {name} found; {hint}')
  images, labels = result
  if images.shape[1:] != _SHAPES[name]:
    raise UserError(f'{name} images have shape {images.shape[1:]}, expected '
                    f'{_SHAPES[name]}; the files are not {name}')
  return (images, labels) if with_labels else images


def load(name, split='train', data_dir=None, *, n=None, seed=0):
  """Training data as a numpy array: toy points or uint8 images."""
  if is_toy(name):
    # Train and test are independent draws of the same distribution.
    if split != 'train':
      seed = rng.stream(seed, rng.TOY_TEST_SPLIT)
    return toy_samples(name, n or 100_000, seed)
  images = load_images(name, split, data_dir)
  return images[:n] if n else images


def as_float(array):
  """uint8 images -> float32 in [0, 1] (numpy); floats pass through."""
  array = np.asarray(array)
  if array.dtype == np.uint8:
    return array.astype(np.float32) / 255.0
  return array.astype(np.float32)


def to_float(x):
  """uint8 images -> float32 in [0, 1] (a tensor); float data passes
  through."""
  if x.dtype == tf.uint8:
    return tf.cast(x, tf.float32) / 255.0
  return tf.cast(x, tf.float32)


def make_dataset(array, batch_size, seed, *, start_step=0, shuffle=True,
                 repeat=True):
  """The one tf.data pipeline: batches that are a function of (seed, step).

  Epoch e visits the examples in a stateless random order drawn from
  (seed, e); batch k of the run is therefore the same whether the run went
  straight through or resumed at `start_step` = k from a checkpoint.

  Args:
    array: numpy array [N, ...], uint8 images or float32 points.
    batch_size: global batch size (the last partial batch of an epoch is
      dropped).
    seed: int; the shuffle order is a function of it.
    start_step: index of the first batch to produce (for resuming).
    shuffle: False keeps the stored order.
    repeat: False stops after one epoch.
  Returns:
    A tf.data.Dataset of float32 batches [batch_size, ...].
  """
  n = len(array)
  if batch_size <= 0:
    raise UserError(f'batch size must be positive, got {batch_size}')
  if n < batch_size:
    raise UserError(f'only {n} examples for a batch of {batch_size}; '
                    'lower the batch size or give more data')
  steps_per_epoch = n // batch_size
  data = tf.constant(array)

  def epoch_batches(epoch):
    if shuffle:
      keys = tf.random.stateless_uniform(
          [n], seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
      order = tf.argsort(keys)
    else:
      order = tf.range(n)
    order = tf.reshape(order[:steps_per_epoch * batch_size],
                       [steps_per_epoch, batch_size])
    return tf.data.Dataset.from_tensor_slices(order)

  first_epoch = start_step // steps_per_epoch
  epochs = tf.data.Dataset.range(first_epoch, 2**62 if repeat else first_epoch + 1)
  ds = epochs.flat_map(epoch_batches).skip(start_step % steps_per_epoch)
  ds = ds.map(lambda idx: to_float(tf.gather(data, idx)),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)
