"""Table 1's baseline rows, computed on a trained base (tilt_tf/baselines.py):
two-stage VAE and VAE + flow fitted in the VAE's latent space, and prior
sampling at a temperature; each row stored in <workdir>/rows/<slug>.json
with its samples (.npz) and a picture (.png). A mixin of table1.Table1."""

import time

import numpy as np

from tilt_tf import baselines
from tilt_tf import figures
from tilt_tf import io_utils
from tilt_tf import train_lib
from tilt_tf.table1_rows import METRICS
from tilt_tf.table1_rows import NAMES
from tilt_tf.table1_rows import round_or_none as _round


class BaselineRows:
  """Needs self.configs, self.tcfg, self.dataset, self.preset,
  self.data_dir, self._extractor, self._path and self._log."""

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
