"""TensorBoard: a toy `test` run's event files hold the tags users look for."""

import collections
import glob
import os

import tensorflow as tf

import configs
from tilt_tf import train_lib

# tag -> the TensorBoard plugin that shows it.
EXPECTED = {
    'base/loss': 'scalars',
    'tilt/loss': 'scalars',
    'tilt/energy_data': 'scalars',
    'tilt/energy_samples': 'scalars',
    'tilt/langevin_grad_norm': 'scalars',
    'monitor/score': 'scalars',
    'monitor/base_score': 'scalars',
    'samples': 'images',
    'eval_base/energy_distance': 'scalars',
    'eval_tilted/energy_distance': 'scalars',
    'energy/data': 'histograms',
    'energy/base_samples': 'histograms',
    'energy/tilted_samples': 'histograms',
    'monitor/tilted_samples': 'images',
    'samples/langevin_chain': 'images',
    '_hparams_/session_start_info': 'hparams',
}


def read_tags(logdir):
  """{tag: (plugin names, steps)} over every event file under logdir."""
  plugins = collections.defaultdict(set)
  steps = collections.defaultdict(set)
  files = glob.glob(os.path.join(logdir, '**', 'events.out.tfevents.*'),
                    recursive=True)
  for path in files:
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        plugins[value.tag].add(value.metadata.plugin_data.plugin_name)
        steps[value.tag].add(event.step)
  return plugins, steps, files


class TensorBoardTest(tf.test.TestCase):

  def test_toy_run_tags(self):
    workdir = self.create_tempdir().full_path
    config = configs.get_config('mlp_vae', '25gaussians', 'test')
    train_lib.run(config, workdir)
    plugins, steps, files = read_tags(os.path.join(workdir, 'tensorboard'))
    self.assertNotEmpty(files)
    missing = sorted(set(EXPECTED) - set(plugins))
    self.assertEmpty(missing, f'missing tags {missing}; found '
                     f'{sorted(plugins)}')
    for tag, plugin in EXPECTED.items():
      self.assertIn(plugin, plugins[tag], tag)
    # Training curves have a point per loop, up to the last step.
    self.assertEqual(max(steps['base/loss']), config.base.steps)
    self.assertEqual(max(steps['tilt/loss']), config.ebm.steps)
    self.assertGreater(len(steps['tilt/loss']), 1)
    self.assertLen(steps['monitor/score'],
                   config.ebm.steps // config.ebm.monitor_every)
    # Histograms and pictures at every monitor check.
    self.assertEqual(steps['energy/tilted_samples'], steps['monitor/score'])
    self.assertEqual(steps['monitor/tilted_samples'], steps['monitor/score'])


if __name__ == '__main__':
  tf.test.main()
