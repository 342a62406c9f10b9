"""Table 1's rows: what the paper lists, which rows a run computes, and how
the table is ordered and written (table1.json, table1.md, fid_vs_step.png).
Used by tilt_tf/table1.py."""

import collections
import functools
import math
import os

import tensorflow as tf

import configs
from tilt_tf import figures
from tilt_tf import io_utils
from tilt_tf.errors import UserError
from tilt_tf.methods import registry as method_registry

# The base models; each gets a pipeline run and rows "<NAME>" and
# "<NAME> + EBM" (plus temperature rows), except those without a latent
# (`has_latent`): the pixel-space EBM has one row, its own samples.
BASES = ('vae', 'glf', 'glow', 'pixel_ebm')


@functools.lru_cache(maxsize=None)
def has_latent(base):
  """Whether `base`'s method has a latent to tilt (asked of the method
  class its config names in the registry, not of the name)."""
  return method_registry.method_class(configs.get_config(base)).has_latent

NAMES = {'vae': 'VAE', 'glf': 'GLF', 'glow': 'GLOW', 'pixel_ebm': 'EBM on data'}

# Paper Table 1 (Xiao, Yan, Amit 2020): FID, 10,000 samples vs the test
# split, Inception features.
PAPER_ROWS = ('GLOW', 'GLOW + EBM', 'VAE', 'Two-stage VAE', 'VAE + flow',
              'VAE + EBM', 'GLF', 'GLF + EBM', 'EBM on data')
PAPER_FID = {
    'mnist': (29.4, 12.3, 18.9, 19.3, 18.6, 16.0, 14.2, 12.1, 25.5),
    'fashion_mnist': (58.7, 41.6, 57.1, 55.7, 52.3, 38.1, 32.5, 25.3, 39.3),
    'cifar10': (76.2, 67.8, 139.6, 134.6, 128.2, 108.4, 96.6, 85.1, 80.6),
}
PAPER_FID = {k: dict(zip(PAPER_ROWS, v)) for k, v in PAPER_FID.items()}

# Baselines fitted in a base's latent space: base -> (model, slug, latent
# model kind, its section of configs/table1.py).
LATENT_BASELINES = {
    'vae': (('Two-stage VAE', 'two_stage_vae', 'two_stage_vae', 'two_stage'),
            ('VAE + flow', 'vae_flow', 'flow', 'flow')),
}

# kind: 'base' / 'tilted' (from the run's metrics.json), 'latent' (arg: the
# LATENT_BASELINES entry), 'temperature' (arg: T).
Row = collections.namedtuple('Row', ['model', 'slug', 'base', 'kind', 'arg'])

METRICS = ('fid', 'precision', 'recall')


def plan_rows(bases, temperatures):
  """The rows to compute, in the order they are computed (base by base)."""
  rows = []
  for b in bases:
    name = NAMES.get(b, b.upper())
    rows.append(Row(name, b, b, 'base', None))
    if not has_latent(b):
      continue
    rows.append(Row(f'{name} + EBM', f'{b}_ebm', b, 'tilted', None))
    for entry in LATENT_BASELINES.get(b, ()):
      rows.append(Row(entry[0], entry[1], b, 'latent', entry))
    for t in temperatures:
      rows.append(Row(f'{name} (T={t:g})', f'{b}_t{t:g}'.replace('.', ''), b,
                      'temperature', float(t)))
  return rows


def parse_overrides(overrides, bases):
  """'base:section.field=value' strings -> {base: [section.field=value]}
  for every base in `bases`; UserError for a string naming no chosen base."""
  out = {b: [] for b in bases}
  for text in overrides:
    base, sep, field = text.partition(':')
    if not sep or '=' in base:
      raise UserError(f'--set={text}: name the base it is for, e.g. '
                      f'--set=glow:{text}')
    if base not in bases:
      raise UserError(f'--set={text}: {base!r} is not one of the bases this '
                      f'table runs ({", ".join(bases)}); see --bases')
    out[base].append(field)
  return out


def parse_temperatures(values):
  """'0.7', '0.85', ... -> (0.7, 0.85, ...); UserError unless each is a
  number > 0."""
  temps = []
  for v in values:
    try:
      t = float(v)
    except (TypeError, ValueError):
      t = math.nan
    if not (math.isfinite(t) and t > 0):
      raise UserError(f'--temperatures={",".join(map(str, values))}: {v!r} '
                      'is not a temperature; give numbers > 0, e.g. '
                      '--temperatures=0.7,0.85')
    temps.append(t)
  return tuple(temps)


def table_order(rows):
  """The paper's row order, then the rows it does not have (temperatures)."""
  def key(item):
    i, row = item
    model = row['model']
    return (PAPER_ROWS.index(model) if model in PAPER_ROWS
            else len(PAPER_ROWS), i)
  return [row for _, row in sorted(enumerate(rows), key=key)]


# Config fields that say where or how a run was started, not what it is.
_NOT_SETTINGS = ('data_dir', 'preset_source')


def changed_fields(stored, current, prefix=''):
  """'field: <stored> there, <current> now' for each field whose values
  differ, both dicts in their JSON form (where the data lives and how the
  preset was chosen are not settings)."""
  out = []
  for key in sorted(set(stored) | set(current)):
    a, b = stored.get(key), current.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      out += changed_fields(a, b, f'{prefix}{key}.')
    elif a != b and f'{prefix}{key}' not in _NOT_SETTINGS:
      out.append(f'{prefix}{key}: {a!r} there, {b!r} now')
  return out


def round_or_none(v, digits=4):
  return None if v is None else round(float(v), digits)


def monitor_curves(workdir, bases):
  """base name -> (EBM steps, monitored FIDs) from each run's monitor.json."""
  curves = {}
  for base in bases:
    if not has_latent(base):
      continue
    monitor = io_utils.read_json(os.path.join(workdir, base, 'monitor.json'),
                                 [])
    curves[f'{NAMES[base]} + EBM'] = ([m['step'] for m in monitor],
                                      [m['score'] for m in monitor])
    # The same chains' starting points without the EBM (newer runs).
    with_base = [m for m in monitor if 'base_score' in m]
    curves[f'{NAMES[base]} (same z0)'] = ([m['step'] for m in with_base],
                                          [m['base_score'] for m in with_base])
  return curves


def write_table(workdir, dataset, preset, *, rows, curves, monitor_samples):
  """table1.json, table1.md, fid_vs_step.png and TensorBoard; returns md."""
  extractors = sorted({r['feature_extractor'] for r in rows
                       if r.get('feature_extractor')})
  doc = {
      'dataset': dataset, 'preset': preset,
      'feature_extractor': (extractors[0] if len(extractors) == 1
                            else extractors),
      'paper_fid_source': 'Xiao, Yan, Amit 2020, Table 1 (Inception FID)',
      'rows': [{k: r.get(k) for k in (
          'model', 'fid', 'precision', 'recall', 'seconds',
          'extra_seconds', 'paper_fid', 'status', 'n')} for r in rows],
  }
  io_utils.write_json(os.path.join(workdir, 'table1.json'), doc)
  md = markdown(doc)
  io_utils.atomic_write(os.path.join(workdir, 'table1.md'), md)
  png = figures.curves_png(
      curves, 'EBM training step',
      f'monitored FID ({"/".join(str(n) for n in sorted(monitor_samples))} '
      'samples)',
      f'{dataset}, preset {preset}: FID during tilting (star: best, kept)',
      references=[k for k in curves if '(same z0)' in k])
  figures.write_png(os.path.join(workdir, 'fid_vs_step.png'), png)
  writer = tf.summary.create_file_writer(os.path.join(workdir, 'tensorboard'))
  with writer.as_default(step=0):
    tf.summary.image('table1/fid_vs_step', tf.io.decode_png(png)[None])
    tf.summary.text('table1/table', md)
  writer.close()
  return md


def _cell(v, fmt):
  return '' if v is None else format(v, fmt)


def markdown(doc):
  """The table as markdown (rows as in table1.json)."""
  lines = [
      f'# Table 1: {doc["dataset"]}, preset {doc["preset"]}', '',
      f'FID / precision / recall of n generated images vs the test split, in '
      f'the feature space `{doc["feature_extractor"]}`. Our FIDs are '
      'comparable with each other, not with the paper\'s (Inception '
      'features, paper presets).', '',
      '| Model | FID | Precision | Recall | Seconds | Extra seconds | '
      'Paper FID |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |']
  for r in doc['rows']:
    paper = _cell(r.get('paper_fid'), '.1f')
    if r.get('status') != 'done':
      lines.append(f'| {r["model"]} | {r["status"]} | | | | | {paper} |')
      continue
    lines.append(
        f'| {r["model"]} | {_cell(r["fid"], ".2f")} | '
        f'{_cell(r["precision"], ".3f")} | {_cell(r["recall"], ".3f")} | '
        f'{_cell(r["seconds"], ".0f")} | {_cell(r["extra_seconds"], ".0f")} '
        f'| {paper} |')
  n = sorted({r['n'] for r in doc['rows'] if r.get('n')})
  lines += [
      '',
      f'n = {", ".join(str(x) for x in n)} samples per row. Seconds: '
      'wall-clock training time of the row\'s sampler on this machine, '
      'its base model included; extra seconds: what the row adds to its '
      'base model (EBM training, or encoding the train split and fitting the '
      'auxiliary prior; 0 for temperature sampling). Sampling and scoring '
      'are not counted. "not built yet": that model is not implemented in '
      'tilt_tf yet; "not run": its base was left out by --bases; "failed": '
      'its base run stopped with that error (the other rows are unaffected; '
      'rerun once it is fixed).', '']
  return '\n'.join(lines)
