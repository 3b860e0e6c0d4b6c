"""Train (or resume) one experiment.

  python -m experiments.main --config=configs/lenet_digits.py            # workdir runs/lenet_digits
  python -m experiments.main --config=configs/resnet_tiny.py:smoke      # workdir runs/resnet_tiny-smoke
  python -m experiments.main --config=configs/resnet_tiny.py --workdir=runs/tiny \
      --resume_epoch=75 --config.optim.lr=1e-3 --config.schedule.name=constant

Without --workdir the run lives in runs/<config name>[-<ARG>] below the current directory.
Running the same command again (same workdir) resumes from its latest checkpoint. A config with
`ensemble.members = N` trains N runs (seeds seed .. seed+N-1) in WORKDIR/member_K and evaluates
their ensemble (configs/minivggnet_cifar10_ensemble.py).
"""

import os
import re

from absl import flags
from ml_collections import config_flags

from cnnzoo import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/NAME.py[:ARG]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, history, results "
                                "(default: runs/<config name>[-<ARG>]).")
_RESUME_EPOCH = flags.DEFINE_integer("resume_epoch", None,
                                     "Restore this epoch's checkpoint instead of the latest.")
_INIT_FROM = flags.DEFINE_string("init_from", None, "Start from another run's weights: DIR[:EPOCH].")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "Multi-host: host:port of process 0 (with --num_processes, --process_id).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
flags.mark_flags_as_required(["config"])


def default_workdir(config_spec: str) -> str:
  """`runs/NAME` for `--config=.../NAME.py`, `runs/NAME-ARG` for `NAME.py:ARG` (`,` in ARG -> `-`)."""
  path, _, arg = config_spec.partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  arg = re.sub(r"[^\w.=-]+", "-", arg).strip("-")
  return os.path.join("runs", f"{name}-{arg}" if arg else name)


def main(argv):
  del argv  # cli.run refuses positional arguments
  cli.quiet_logs()
  cli.check_config(_CONFIG)
  import jax

  from cnnzoo import parallel
  parallel.choose_platform()
  parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  config = _CONFIG.value
  workdir = _WORKDIR.value
  if workdir is None:
    workdir = default_workdir(config_flags.get_config_filename(flags.FLAGS["config"]))
    if jax.process_index() == 0:
      print(f"workdir: {workdir} (the default for this config; --workdir=DIR to choose)", flush=True)
  if config.get("ensemble") and config.ensemble.members:
    from cnnzoo.evaluation.ensemble import train_ensemble
    train_ensemble(config, workdir, resume_epoch=_RESUME_EPOCH.value, init_from=_INIT_FROM.value)
    return
  from cnnzoo.training.loop import train_and_evaluate
  train_and_evaluate(config, workdir, resume_epoch=_RESUME_EPOCH.value, init_from=_INIT_FROM.value)


if __name__ == "__main__":
  cli.run(main)
