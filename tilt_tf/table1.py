"""Table 1 of the paper: every row that exists, the paper's FID beside each.

  ./bazelw run //tilt_tf:table1 -- --dataset=fashion_mnist --preset=small
  .venv/bin/python -m tilt_tf.table1 --dataset=fashion_mnist --preset=small

For each base in BASES it runs the ordinary pipeline (train_lib.run: base,
tilt, sample, eval) in <workdir>/<base>/ and takes the rows "VAE" and
"VAE + EBM" (etc.) from that run's metrics.json and timings.json ("EBM on
data" is the pixel-space EBM's run, --base=pixel_ebm, one row); then it
computes the baselines on the trained base (tilt_tf/baselines.py): the
two-stage VAE and VAE + flow on the VAE, and low-temperature prior sampling
on every base. Each baseline row is written to <workdir>/rows/<slug>.json
(with its samples in <slug>.npz and a picture in <slug>.png).

--set=BASE:section.field=value changes one base's config (as train --set),
e.g. --set=glow:base.epochs=16; that base's run and all its rows use it.
--temperatures=0.7,0.85,1.04 sets the prior temperatures of the
"<base> (T=...)" rows.

--jobs=N runs up to N base pipelines at once, each in its own `train`
process with the same config (its log in <workdir>/<base>/train.log), while
this process computes the baselines of the bases that have finished.

Resumable: a base run whose metrics.json is complete is reused as is if its
run.json config is the current one (else its rows fail with the fields that
differ: a finished run is not redone behind the user's back); an unfinished
one resumes from its checkpoints; every finished baseline row whose
settings have not changed is reused; delete a row's file or a run's folder
to redo it.

Outputs: <workdir>/table1.json, table1.md (printed at the end),
fid_vs_step.png (the EBM's monitored FID against its training step, per base,
paper §5.3) and <workdir>/tensorboard/ (the same picture and the table).
Default workdir: runs/table1_<dataset>[_<preset>].
"""

import collections
from concurrent import futures
import math
import os
import subprocess
import sys
import time

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

import configs
from configs import table1 as table1_config
from tilt_tf import baselines
from tilt_tf import cli
from tilt_tf import figures
from tilt_tf import io_utils
from tilt_tf import train_lib
from tilt_tf.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string('dataset', 'fashion_mnist', 'Image data set: fashion_mnist, mnist or cifar10.')
flags.DEFINE_string('preset', 'paper', 'paper (the paper\'s settings), small (CPU), test (seconds); for every run and baseline.')
flags.DEFINE_string('workdir', None, 'Folder for the runs and the table (default runs/table1_<dataset>[_<preset>]).')
flags.DEFINE_string('data_dir', None, 'Folder with local data files.')
flags.DEFINE_list('bases', ['vae', 'glf', 'glow', 'pixel_ebm'],
                  'The bases whose rows to compute (or reuse); the others '
                  'are listed as "not run" in the table.')
flags.DEFINE_multi_string('set', [], 'A config override for one base\'s run, BASE:section.field=value, repeatable, e.g. --set=glow:base.epochs=16 (train --set syntax after the base; its rows, baselines included, use that run).')
flags.DEFINE_list('temperatures', None, 'Prior temperatures T for the "<base> (T=...)" rows, e.g. 0.7,0.85,1.04 (default: configs/table1.py\'s).')
flags.DEFINE_integer('jobs', 1, 'Base pipelines to run at once, each in its own process (python -m tilt_tf.train, log in <workdir>/<base>/train.log); 1 = one after another in this process.')

# The base models; each gets a pipeline run and rows "<NAME>" and
# "<NAME> + EBM" (plus temperature rows), except the ones in NO_LATENT: the
# pixel-space EBM has one row, its own samples.
BASES = ('vae', 'glf', 'glow', 'pixel_ebm')
NO_LATENT = ('pixel_ebm',)

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
    if b in NO_LATENT:
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


def _changed_fields(stored, current, prefix=''):
  """'field: <stored> there, <current> now' for each field whose values
  differ, both dicts in their JSON form (data_dir, where the data lives, is
  not a setting)."""
  out = []
  for key in sorted(set(stored) | set(current)):
    a, b = stored.get(key), current.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      out += _changed_fields(a, b, f'{prefix}{key}.')
    elif a != b and f'{prefix}{key}' != 'data_dir':
      out.append(f'{prefix}{key}: {a!r} there, {b!r} now')
  return out


def _round(v, digits=4):
  return None if v is None else round(float(v), digits)


class Table1:
  """Computes (or reuses) every row for one data set and preset."""

  def __init__(self, dataset, preset, workdir, data_dir=None, bases=BASES,
               jobs=1, overrides=(), temperatures=None):
    """overrides: 'base:section.field=value' strings (table1 --set);
    temperatures: the T of the temperature rows (None: the preset's)."""
    if jobs < 1:
      raise UserError(f'--jobs={jobs}: it must be 1 or more')
    if dataset not in PAPER_FID:
      raise UserError(f'unknown dataset {dataset!r} for table1; choose one of '
                      f'{", ".join(sorted(PAPER_FID))}')
    unknown = [b for b in bases if b not in BASES]
    if unknown or not bases:
      raise UserError(f'--bases={",".join(bases)}: choose one or more of '
                      f'{", ".join(BASES)}')
    self.bases = tuple(b for b in BASES if b in bases)
    self.overrides = parse_overrides(overrides, self.bases)
    self.configs = {b: configs.get_config(b, dataset, preset,
                                          overrides=self.overrides[b])
                    for b in self.bases}
    for config in self.configs.values():
      if data_dir:
        config.data_dir = data_dir
    self.dataset, self.preset = dataset, preset
    self.workdir, self.data_dir = workdir, data_dir
    self.tcfg = table1_config.get_config(preset)
    if temperatures is not None:
      self.tcfg.temperatures = parse_temperatures(temperatures)
    self.rows = plan_rows(self.bases, self.tcfg.temperatures)
    self._extractor = None
    self.jobs = jobs

  def _path(self, *parts):
    return os.path.join(self.workdir, *parts)

  def _log(self, row, message):
    i = self.rows.index(row) + 1
    logging.info('row %d/%d %s%s', i, len(self.rows), row.model, message)

  # ------------------------------------------------------------- base runs

  def _finished(self, base):
    """The finished run's metrics if it can be reused, None if unfinished;
    UserError if it finished with other settings."""
    config = self.configs[base]
    run_dir = self._path(base)
    metrics = io_utils.read_json(os.path.join(run_dir, 'metrics.json'))
    if not (metrics and metrics.get('preset') == config.preset and
            metrics.get('dataset') == config.dataset and
            'fid' in metrics.get('tilted', {})):
      return None
    stored = io_utils.read_json(os.path.join(run_dir, 'run.json'), {})
    changed = _changed_fields(stored.get('config', {}),
                              io_utils.jsonable(config.to_dict()))
    if changed:  # E.g. the preset's settings changed since that run.
      raise UserError(
          f'the finished {base} run in {run_dir} was made with other '
          f'settings ({"; ".join(changed[:4])}); move that folder away (or '
          'pass another --workdir) to rerun it with the current ones')
    return metrics

  def _run_base(self, base, job=None):
    """Runs (or reuses) one base's pipeline; returns (metrics, timings).

    job: the future of this base's `train` process (--jobs > 1), waited for.
    """
    run_dir = self._path(base)
    first = next(r for r in self.rows if r.base == base)
    if job is not None:
      job.result()  # UserError if that process failed.
    metrics = self._finished(base)
    if metrics and job is not None:
      self._log(first, f': the {base} pipeline finished in {run_dir}')
    elif metrics:
      self._log(first, f': reusing the finished run in {run_dir}')
    else:
      self._log(first, f': running the {base} pipeline (base, tilt, sample, '
                f'eval) in {run_dir} ...')
      metrics = train_lib.run(self.configs[base], run_dir)
    timings = io_utils.read_json(os.path.join(run_dir, 'timings.json'), {})
    return metrics, timings

  def _train_process(self, base):
    """Runs one base's pipeline in a `train` process (its log in
    <run>/train.log); raises UserError with its last line if it fails."""
    run_dir = self._path(base)
    os.makedirs(run_dir, exist_ok=True)
    log_path = os.path.join(run_dir, 'train.log')
    cmd = [sys.executable, '-m', 'tilt_tf.train', f'--base={base}',
           f'--dataset={self.dataset}', f'--preset={self.preset}',
           f'--workdir={run_dir}', f'--stage={",".join(train_lib.STAGES)}']
    if self.data_dir:
      cmd.append(f'--data_dir={self.data_dir}')
    cmd += [f'--set={o}' for o in self.overrides[base]]
    first = next(r for r in self.rows if r.base == base)
    self._log(first, f': starting the {base} pipeline in a train process '
              f'(progress: {log_path})')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    with open(log_path, 'ab') as log:
      rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                          check=False).returncode
    if rc:
      with open(log_path, 'rb') as f:
        lines = [l for l in f.read()[-20000:].decode(errors='replace')
                 .splitlines() if l.strip()]
      errors = [l for l in lines if l.startswith('error: ')]
      last = (errors or lines or ['(no output)'])[-1]
      raise UserError(f'its train process exited with {rc}: {last.strip()} '
                      f'(log: {log_path})')

  def _start_jobs(self, pool):
    """Queues a `train` process for every base run not finished yet (at most
    self.jobs run at once)."""
    jobs = {}
    for base in self.bases:
      try:
        if self._finished(base):
          continue
      except UserError:
        continue  # Reported by _run_base, in order.
      jobs[base] = pool.submit(self._train_process, base)
    return jobs

  def _pipeline_row(self, row, metrics, timings):
    part = metrics['base' if row.kind == 'base' else 'tilted']
    base_s = timings.get('base', {}).get('seconds')
    extra = (0.0 if row.kind == 'base'
             else timings.get('tilt', {}).get('seconds'))
    out = {k: _round(part.get(k)) for k in METRICS}
    out.update(
        model=row.model, slug=row.slug, status='done',
        n=part.get('n'), feature_extractor=part.get('feature_extractor'),
        seconds=(None if base_s is None or extra is None
                 else round(base_s + extra, 1)),
        extra_seconds=None if extra is None else round(extra, 1),
        source=os.path.join(row.base, 'metrics.json'))
    self._log(row, f' done: FID {out["fid"]:.2f} in {out["seconds"]} s '
              '(training, from the run\'s timings.json)')
    return out

  # ------------------------------------------------------------ baselines

  def _settings(self, row):
    """What a baseline row depends on; a stored row is reused only if equal."""
    config = self.configs[row.base]
    s = {'dataset': self.dataset, 'preset': self.preset, 'seed': self.tcfg.seed,
         'num_samples': config.sample.num, 'kind': row.kind,
         # The trained base it samples from (a rerun with other base
         # settings must not reuse rows computed on the old one).
         'base_config': io_utils.jsonable(config.base.to_dict())}
    if row.kind == 'latent':
      s['latent_model'] = row.arg[2]
      s['config'] = self.tcfg[row.arg[3]].to_dict()
    else:
      s['temperature'] = row.arg
    return s

  def _extractor_for(self, config):
    if self._extractor is None:
      from tilt_tf import fid  # pylint: disable=g-import-not-at-top
      self._extractor = fid.get_extractor(
          self.dataset, self.data_dir or None,
          classifier_epochs=config.eval.classifier_epochs or None)
    return self._extractor

  def _load_base(self, base):
    """The run's trained generator and train split (no lock, no writer)."""
    from tilt_tf.runtime import build  # pylint: disable=g-import-not-at-top
    restored = build.restore(self._path(base))
    train = train_lib.load_data(self.configs[base])
    full = train[0] if train[1] is None else np.concatenate(train[:2])
    return restored.generator, full

  def _baseline_row(self, row, base_seconds, state):
    """Computes one baseline row (fit, sample, score) and stores it."""
    from tilt_tf import fid  # pylint: disable=g-import-not-at-top
    config = self.configs[row.base]
    if state.get('generator') is None:
      self._log(row, ': loading the trained base model')
      state['generator'], state['train'] = self._load_base(row.base)
    generator = state['generator']
    t0 = time.time()
    extra, fit = 0.0, None
    if row.kind == 'latent':
      if state.get('posterior') is None:
        self._log(row, ': encoding the train split (aggregate posterior)')
        t = time.time()
        state['posterior'] = baselines.posterior_stats(
            generator, state['train'])
        state['encode_seconds'] = time.time() - t
      _, _, kind, section = row.arg
      cfg = self.tcfg[section]
      self._log(row, f': fitting {kind} ({cfg.steps} steps) to the '
                f'{NAMES[row.base]} latents ...')
      aux = baselines.make_latent_model(kind, generator.latent_dim, cfg)
      fit = baselines.fit_latent_model(aux, *state['posterior'], cfg,
                                       seed=self.tcfg.seed,
                                       log_prefix=f'{row.slug} fit')
      extra = state['encode_seconds'] + fit['seconds']
      sampler = baselines.stacked_sampler(aux, generator)
    else:
      sampler = baselines.temperature_sampler(generator, row.arg)
    self._log(row, f': sampling {config.sample.num} images ...')
    t = time.time()
    images = baselines.draw_images(sampler, config.sample.num,
                                   min(config.sample.batch_size,
                                       config.sample.num), self.tcfg.seed)
    sample_seconds = time.time() - t
    t = time.time()
    scores = fid.evaluate_images(images, self.dataset, self.data_dir or None,
                                 extractor=self._extractor_for(config))
    out = {k: _round(scores[k]) for k in METRICS}
    out.update(
        model=row.model, slug=row.slug, status='done', n=scores['n'],
        feature_extractor=scores['feature_extractor'],
        seconds=(None if base_seconds is None
                 else round(base_seconds + extra, 1)),
        extra_seconds=round(extra, 1), fit=fit,
        sample_seconds=round(sample_seconds, 1),
        eval_seconds=round(time.time() - t, 1),
        wall_seconds=round(time.time() - t0, 1),
        settings=self._settings(row))
    io_utils.savez(self._path('rows', f'{row.slug}.npz'), images=images)
    figures.write_png(self._path('rows', f'{row.slug}.png'),
                      figures.grid_png([images[:config.sample.grid]]))
    io_utils.write_json(self._path('rows', f'{row.slug}.json'), out)
    self._log(row, f' done: FID {out["fid"]:.2f} in '
              f'{out["wall_seconds"]:.0f} s')
    return out

  # ------------------------------------------------------------------ all

  def compute(self):
    """Every row (computed or reused), in the paper's order."""
    with futures.ThreadPoolExecutor(max_workers=self.jobs) as pool:
      jobs = self._start_jobs(pool) if self.jobs > 1 else {}
      try:
        return self._compute(jobs)
      finally:
        for job in jobs.values():
          job.cancel()  # Not started yet; running ones are waited for.

  def _compute(self, jobs):
    results = []
    for base in self.bases:
      try:
        metrics, timings = self._run_base(base, jobs.get(base))
      except UserError as e:  # One base's failure does not lose the table.
        logging.error('table1: the %s run failed: %s', base, e)
        results += [{'model': r.model, 'slug': r.slug,
                     'status': f'failed: {e}'}
                    for r in self.rows if r.base == base]
        continue
      base_seconds = timings.get('base', {}).get('seconds')
      state = {}
      for row in (r for r in self.rows if r.base == base):
        if row.kind in ('base', 'tilted'):
          results.append(self._pipeline_row(row, metrics, timings))
          continue
        stored = io_utils.read_json(self._path('rows', f'{row.slug}.json'))
        if stored and stored.get('settings') == self._settings(row):
          self._log(row, f': reusing rows/{row.slug}.json (FID '
                    f'{stored["fid"]:.2f})')
          results.append(stored)
          continue
        if stored:
          self._log(row, ': settings changed since rows/'
                    f'{row.slug}.json; recomputing')
        results.append(self._baseline_row(row, base_seconds, state))
    built = {r['model'] for r in results}
    for model in PAPER_ROWS:
      if model in built:
        continue
      skipped = [b for b in BASES if b not in self.bases and model in
                 {r.model for r in plan_rows([b], self.tcfg.temperatures)}]
      results.append({'model': model, 'status': (
          f'not run (--bases without {skipped[0]})' if skipped
          else 'not built yet')})
    paper = PAPER_FID[self.dataset]
    for r in results:
      r['paper_fid'] = paper.get(r['model'])
    return table_order(results)

  def monitor_curves(self):
    """base name -> (EBM steps, monitored FIDs) from each run's monitor.json."""
    curves = {}
    for base in self.bases:
      if base in NO_LATENT:
        continue
      monitor = io_utils.read_json(self._path(base, 'monitor.json'), [])
      curves[f'{NAMES[base]} + EBM'] = ([m['step'] for m in monitor],
                                        [m['score'] for m in monitor])
      # The same chains' starting points without the EBM (newer runs).
      with_base = [m for m in monitor if 'base_score' in m]
      curves[f'{NAMES[base]} (same z0)'] = ([m['step'] for m in with_base],
                                            [m['base_score'] for m in with_base])
    return curves

  def write(self, rows):
    """table1.json, table1.md, fid_vs_step.png and TensorBoard; returns md."""
    extractors = sorted({r['feature_extractor'] for r in rows
                         if r.get('feature_extractor')})
    doc = {
        'dataset': self.dataset, 'preset': self.preset,
        'feature_extractor': (extractors[0] if len(extractors) == 1
                              else extractors),
        'paper_fid_source': 'Xiao, Yan, Amit 2020, Table 1 (Inception FID)',
        'rows': [{k: r.get(k) for k in (
            'model', 'fid', 'precision', 'recall', 'seconds',
            'extra_seconds', 'paper_fid', 'status', 'n')} for r in rows],
    }
    io_utils.write_json(self._path('table1.json'), doc)
    md = markdown(doc)
    io_utils.atomic_write(self._path('table1.md'), md)
    monitor_samples = {c.ebm.monitor_samples for b, c in self.configs.items()
                       if b not in NO_LATENT}
    curves = self.monitor_curves()
    png = figures.curves_png(
        curves, 'EBM training step',
        f'monitored FID ({"/".join(str(n) for n in sorted(monitor_samples))} '
        'samples)',
        f'{self.dataset}, preset {self.preset}: FID during tilting '
        '(star: best, kept)',
        references=[k for k in curves if '(same z0)' in k])
    figures.write_png(self._path('fid_vs_step.png'), png)
    writer = tf.summary.create_file_writer(self._path('tensorboard'))
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


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {argv[1:]}; flags look like '
                    '--dataset=fashion_mnist')
  preset = FLAGS.preset
  suffix = '' if preset == 'paper' else f'_{preset}'
  workdir = cli.resolve_path(
      FLAGS.workdir or os.path.join('runs', f'table1_{FLAGS.dataset}{suffix}'))
  data_dir = cli.resolve_path(FLAGS.data_dir) if FLAGS.data_dir else None
  table = Table1(FLAGS.dataset, preset, workdir, data_dir, FLAGS.bases,
                 FLAGS.jobs, overrides=FLAGS.set,
                 temperatures=FLAGS.temperatures)
  logging.info('table1 on %s, preset %s -> %s (%d rows to compute)',
               FLAGS.dataset, preset, workdir, len(table.rows))
  rows = table.compute()
  print(table.write(rows))
  print(f'wrote {os.path.join(workdir, "table1.md")}, table1.json, '
        'fid_vs_step.png')


if __name__ == '__main__':
  cli.run_main(main)
