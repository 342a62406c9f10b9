"""Scores sample files: FID, precision and recall against the test split.

  ./bazelw run //tilt_tf:evaluate -- --dataset=fashion_mnist \
      --samples=base.npz --samples=tilted.npz --output=scores.json
  ./bazelw run //tilt_tf:evaluate -- --dataset=fashion_mnist --floor
  .venv/bin/python -m tilt_tf.evaluate --samples=A.npz

Each npz holds `images`: [N, H, W, C] uint8, or float in [0, 1]. One JSON
object per file is printed (and the list written to --output): fid,
precision, recall, n, feature_extractor, ... `--floor` adds the score of
10,000 train images vs the test split, the best a model can hope for.
The first run trains the feature classifier (a few minutes on a CPU) and
caches it (--cache_dir, $TILT_TF_CACHE, default ~/.cache/tilt_tf).
Errors end in one line `error: ...` and exit code 2; `--traceback` (or
TILT_TF_TRACEBACK=1) shows the full traceback.
"""

from tilt_tf import quiet  # pylint: disable=unused-import  # First: hides TF's start-up lines.
import json
import zipfile

from absl import flags
from absl import logging
import numpy as np

from tilt_tf import cli
from tilt_tf import data
from tilt_tf import fid
from tilt_tf import io_utils
from tilt_tf.errors import UserError

__all__ = ['load_samples', 'evaluate_files']

FLOOR_SIZE = 10_000

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(cli)  # --traceback in --help.
flags.DEFINE_string('dataset', 'fashion_mnist', 'Image data set the samples '
                    'imitate: ' + ', '.join(data.IMAGE_DATASETS) + '.')
flags.DEFINE_multi_string('samples', [], 'npz file with `images` (repeat the '
                          'flag for several files).')
flags.DEFINE_string('output', None, 'Write the list of results here (JSON).')
flags.DEFINE_string('data_dir', None, 'Folder with local data files.')
flags.DEFINE_integer('num_samples', None, 'Score the first N images of each '
                     'file (default: all; the paper uses 10000).')
flags.DEFINE_bool('floor', False, f'Also score {FLOOR_SIZE} train images vs '
                  'test (the floor of the FID scale).')
flags.DEFINE_string('cache_dir', None, 'Cache for the feature classifier '
                    '(default $TILT_TF_CACHE or ~/.cache/tilt_tf).')
flags.DEFINE_string('inception_path', None, 'Local Inception-v3 SavedModel '
                    'folder or Keras .h5 weights: use pool3 features instead '
                    'of the domain classifier.')
flags.DEFINE_integer('classifier_epochs', None, 'Training budget of the '
                     'classifier if it is not cached yet (default 8).')
flags.DEFINE_integer('batch_size', 500, 'Images per forward pass.')


def load_samples(path):
  """Reads `images` from an npz file.

  Args:
    path: an .npz file path.
  Returns:
    The `images` array (validated later against the data set's shape).
  Raises:
    UserError: missing, not an npz, or no `images` key.
  """
  try:
    with open(path, 'rb') as handle:  # np.load leaks its own on errors.
      magic = handle.read(6)
      # np.load calls anything neither a zip nor an .npy a pickle.
      if not magic.startswith((b'PK\x03\x04', b'PK\x05\x06', b'\x93NUMPY')):
        raise UserError(f'{path} is not a valid .npz file (not a zip '
                        'archive); save it with np.savez(path, images=images)')
      handle.seek(0)
      return _read_images(path, np.load(handle, allow_pickle=False))
  except FileNotFoundError:
    raise UserError(f'--samples file {path} not found') from None
  except IsADirectoryError:
    raise UserError(f'--samples {path} is a folder, not an npz file') from None
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise UserError(f'cannot read {path} as npz ({type(e).__name__}: '
                    f'{str(e)[:100]})') from None


def _read_images(path, f):
  if not hasattr(f, 'files'):
    raise UserError(f'{path} is a .npy array, not an npz; save it with '
                    'np.savez(path, images=images)')
  with f:
    if 'images' not in f.files:
      raise UserError(f'{path} has no `images` array (it has '
                      f'{", ".join(f.files) or "nothing"}); save it with '
                      'np.savez(path, images=images)')
    return f['images']


def evaluate_files(paths, dataset, *, data_dir=None, num_samples=None,
                   floor=False, cache_dir=None, inception_path=None,
                   classifier_epochs=None, batch_size=500, report=None):
  """Scores each sample file (and optionally the train-vs-test floor).

  All files are read and validated before any (slow) feature work starts.

  Args:
    paths: npz file paths.
    dataset: image data set name.
    data_dir: optional folder of local data files.
    num_samples: score the first N images of each file (default: all).
    floor: also score FLOOR_SIZE train images (or num_samples) vs test.
    cache_dir, inception_path, classifier_epochs: see fid.get_extractor.
    batch_size: images per forward pass.
    report: called with each result as soon as it is ready.
  Returns:
    A list of result dicts (fid.evaluate_images's, plus `samples`).
  """
  if not paths and not floor:
    raise UserError('nothing to evaluate; give --samples=FILE.npz (repeat '
                    'for several files) and/or --floor')
  if num_samples is not None and num_samples < 1:
    raise UserError(f'--num_samples={num_samples} is out of range; it must '
                    'be >= 1')
  shape = data.data_shape(dataset)
  if data.is_toy(dataset):
    raise UserError(f'--dataset={dataset} is a toy set; evaluate scores '
                    f'image sets ({", ".join(data.IMAGE_DATASETS)})')
  sets = []
  for path in paths:
    images = fid.validate_images(load_samples(path), shape, what=path)
    if num_samples and num_samples > len(images):
      raise UserError(f'--num_samples={num_samples} but {path} holds only '
                      f'{len(images)} images')
    sets.append((path, images))
  if floor:
    train = data.load_images(dataset, 'train', data_dir)
    size = num_samples or FLOOR_SIZE
    sets.append((f'floor:{dataset}:train[:{size}]', train[:size]))
  extractor = fid.get_extractor(dataset, data_dir, cache_dir=cache_dir,
                                inception_path=inception_path,
                                classifier_epochs=classifier_epochs)
  results = []
  for name, images in sets:
    logging.info('scoring %s (%d images) with %s', name, len(images),
                 extractor.name)
    result = dict(samples=name, **fid.evaluate_images(
        images, dataset, data_dir, n=num_samples, extractor=extractor,
        batch_size=batch_size, what=name))
    if report:
      report(result)
    results.append(result)
  return results


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {argv[1:]}; flags look like '
                    '--samples=FILE.npz')
  if FLAGS.batch_size < 1:
    raise UserError(f'--batch_size={FLAGS.batch_size} is out of range; it '
                    'must be >= 1')
  resolve = lambda p: cli.resolve_path(p) if p else p
  if FLAGS.data_dir:
    cli.check_input_dir(resolve(FLAGS.data_dir), '--data_dir',
                        'a folder holding the data set files')
  if FLAGS.output:
    cli.check_output_file(resolve(FLAGS.output), '--output')
  if FLAGS.cache_dir:
    cli.check_output_dir(resolve(FLAGS.cache_dir), '--cache_dir')
  results = evaluate_files(
      [resolve(p) for p in FLAGS.samples], FLAGS.dataset,
      data_dir=resolve(FLAGS.data_dir), num_samples=FLAGS.num_samples,
      floor=FLAGS.floor, cache_dir=resolve(FLAGS.cache_dir),
      inception_path=resolve(FLAGS.inception_path),
      classifier_epochs=FLAGS.classifier_epochs, batch_size=FLAGS.batch_size,
      report=lambda r: print(json.dumps(r, sort_keys=True), flush=True))
  if FLAGS.output:
    output = resolve(FLAGS.output)
    io_utils.write_json(output, results)
    logging.info('wrote %s', output)


if __name__ == '__main__':
  cli.run_main(main)
