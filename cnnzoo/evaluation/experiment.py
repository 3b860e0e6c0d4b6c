"""One experiment of a config, whichever kind it is: a features run (extraction + logistic
regression), an ensemble of runs, or one training run (experiments.main calls `run`)."""

from cnnzoo import runtime
from cnnzoo.training import workdir as workdir_lib


def run(config, workdir: str | None, spec: str, *, resume_epoch=None, init_from=None, command=None) -> None:
  """Runs `config` (loaded from the config file `spec`) in `workdir`, or in the config's default
  workdir (runs/<config name>[-<ARG>]), which it prints."""
  if workdir is None:
    workdir = workdir_lib.default_workdir(spec)
    runtime.say(f"workdir: {workdir} (the default for this config; --workdir=DIR to choose)")
  if config.get("features") and config.features.use:  # extraction + logistic regression, no training
    from cnnzoo.transfer import pipeline
    pipeline.run(config, workdir, command=command)
    return
  if config.get("ensemble") and config.ensemble.members:
    from cnnzoo.evaluation.ensemble import train_ensemble
    train_ensemble(config, workdir, resume_epoch=resume_epoch, init_from=init_from, command=command)
    return
  from cnnzoo.training.loop import train_and_evaluate
  train_and_evaluate(config, workdir, resume_epoch=resume_epoch, init_from=init_from, command=command)
