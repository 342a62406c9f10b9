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

from tilt_tf import quiet  # pylint: disable=unused-import  # First: hides TF's start-up lines.
from concurrent import futures
import os
import subprocess
import sys

from absl import flags
from absl import logging

import configs
from configs import table1 as table1_config
from tilt_tf import cli
from tilt_tf import io_utils
from tilt_tf import table1_baselines
from tilt_tf import table1_rows
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

from tilt_tf.table1_rows import BASES
from tilt_tf.table1_rows import METRICS
from tilt_tf.table1_rows import PAPER_FID
from tilt_tf.table1_rows import PAPER_ROWS
from tilt_tf.table1_rows import parse_overrides
from tilt_tf.table1_rows import parse_temperatures
from tilt_tf.table1_rows import plan_rows
from tilt_tf.table1_rows import round_or_none
from tilt_tf.table1_rows import table_order

class Table1(table1_baselines.BaselineRows):
  """Computes (or reuses) every row for one data set and preset."""

  def __init__(self, dataset, preset, workdir, *, data_dir=None, bases=BASES,
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
    changed = table1_rows.changed_fields(stored.get('config', {}),
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
    out = {k: round_or_none(part.get(k)) for k in METRICS}
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
    results += _unbuilt_rows(results, self.bases, self.tcfg.temperatures)
    paper = PAPER_FID[self.dataset]
    for r in results:
      r['paper_fid'] = paper.get(r['model'])
    return table_order(results)

  def write(self, rows):
    """table1.json, table1.md, fid_vs_step.png and TensorBoard; returns md."""
    monitor_samples = {c.ebm.monitor_samples for b, c in self.configs.items()
                       if table1_rows.has_latent(b)}
    return table1_rows.write_table(
        self.workdir, self.dataset, self.preset, rows=rows,
        curves=table1_rows.monitor_curves(self.workdir, self.bases),
        monitor_samples=monitor_samples)


def _unbuilt_rows(results, bases, temperatures):
  """A row without figures for every paper row that is not in `results`.

  Its status says why: 'not run (--bases without B)' if base B (not in
  `bases`) would build it with these `temperatures`, else 'not built yet'.
  """
  built = {r['model'] for r in results}
  rows = []
  for model in PAPER_ROWS:
    if model in built:
      continue
    skipped = [b for b in BASES if b not in bases and model in
               {r.model for r in plan_rows([b], temperatures)}]
    rows.append({'model': model, 'status': (
        f'not run (--bases without {skipped[0]})' if skipped
        else 'not built yet')})
  return rows


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {argv[1:]}; flags look like '
                    '--dataset=fashion_mnist')
  preset = FLAGS.preset
  suffix = '' if preset == 'paper' else f'_{preset}'
  workdir = cli.resolve_path(
      FLAGS.workdir or os.path.join('runs', f'table1_{FLAGS.dataset}{suffix}'))
  data_dir = cli.resolve_path(FLAGS.data_dir) if FLAGS.data_dir else None
  table = Table1(FLAGS.dataset, preset, workdir, data_dir=data_dir,
                 bases=FLAGS.bases, jobs=FLAGS.jobs, overrides=FLAGS.set,
                 temperatures=FLAGS.temperatures)
  logging.info('table1 on %s, preset %s -> %s (%d rows to compute)',
               FLAGS.dataset, preset, workdir, len(table.rows))
  rows = table.compute()
  print(table.write(rows))
  print(f'wrote {os.path.join(workdir, "table1.md")}, table1.json, '
        'fid_vs_step.png')


if __name__ == '__main__':
  cli.run_main(main)
