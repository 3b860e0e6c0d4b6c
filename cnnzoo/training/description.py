"""What the epoch loop reads of a config, read once by `build()`: below it nothing reads the
config. Frozen, as the run it describes is."""

import dataclasses

import ml_collections

from cnnzoo.training import workdir


@dataclasses.dataclass(frozen=True)
class Monitoring:
  """config.monitor: the progress bar, the epoch-end writers."""
  progress: bool
  log_every_steps: int
  plot: bool
  plot_min_seconds: float
  tensorboard: bool


@dataclasses.dataclass(frozen=True)
class Description:
  """A run's settings the loop, the monitor and the callbacks use."""
  model_name: str
  num_epochs: int
  batch_size: int
  crop: tuple[int, str, str]  # (data.crop_size, the validation views, the test views)
  monitor: Monitoring
  checkpoint: tuple[tuple[str, object], ...]  # the Checkpointer's keyword arguments (config.checkpoint)
  plateau: ml_collections.FrozenConfigDict | None  # config.plateau when used
  early_stop: ml_collections.FrozenConfigDict | None  # config.early_stop when used
  config_json: str  # config.json: the resolved config, as the run records it


def describe(config) -> Description:
  """The Description of a resolved (validated) config."""
  m, k, d = config.monitor, config.checkpoint, config.data
  used = lambda name: ml_collections.FrozenConfigDict(config[name]) if config.get(name) and config[name].use else None
  return Description(
      model_name=config.model.name, num_epochs=int(config.num_epochs), batch_size=int(d.batch_size),
      crop=(int(d.get("crop_size", 0)), d.get("eval_crop", "center"), d.get("test_crop", "") or d.get("eval_crop", "center")),
      monitor=Monitoring(bool(m.progress), int(m.log_every_steps), bool(m.plot), float(m.get("plot_min_seconds", 30.0)),
                         bool(m.tensorboard)),
      checkpoint=(("keep", k.keep), ("best_metric", k.best_metric), ("best_mode", k.best_mode),
                  ("keep_every", k.keep_every), ("async_save", k.async_save)),
      plateau=used("plateau"), early_stop=used("early_stop"),
      config_json=workdir.config_json(config))
