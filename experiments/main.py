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

import sys

from absl import flags
from ml_collections import config_flags

from cnnzoo import cli, configfile

# sys_argv=(): the --config.FIELD overrides are cnnzoo's (configfile.py), and the command line is not
# read at import (a --flagfile loop is refused by cli in one line, not warned about here)
_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/NAME.py[:ARG]).",
                                          lock_config=True, sys_argv=[])
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, history, results "
                                "(default: runs/<config name>[-<ARG>]).")
_RESUME_EPOCH = flags.DEFINE_integer("resume_epoch", None,
                                     "Restore this epoch's checkpoint instead of the latest.")
_INIT_FROM = flags.DEFINE_string("init_from", None, "Start from another run's weights: DIR[:EPOCH].")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "Multi-host: host:port of process 0 (with --num_processes, --process_id).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
_LIST_CONFIGS = flags.DEFINE_bool("list_configs", False, "Print every config in configs/ with its model, "
                                   "dataset, the journal run it reproduces and the seed's figure; then exit.")
_LIST_COMPONENTS = flags.DEFINE_bool("list_components", False, "Print every registered model, dataset, "
                                     "augmentation, optimizer and schedule with its settings (with --config: "
                                     "its imports too); then exit.")


def main(argv):
  del argv  # cli.run refuses positional arguments
  if _LIST_CONFIGS.value:
    from cnnzoo.evaluation import journal
    return journal.print_configs()
  if _CONFIG.value is None and not _LIST_COMPONENTS.value:
    cli.fail("--config=configs/NAME.py is missing (python -m experiments.main --list_configs lists them)")
  cli.quiet_logs()
  from configs import base
  config = configfile.load_config(_CONFIG, reference=base.get_config()) if _CONFIG.value is not None else None
  if _LIST_COMPONENTS.value:
    from cnnzoo.training import components
    return print("\n".join(components.listing()))
  cli.choose_platform()
  from cnnzoo import runtime
  runtime.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  runtime.check_platform()
  spec = config_flags.get_config_filename(flags.FLAGS["config"])
  command = {"config": spec, "command": configfile.resume_command(sys.argv[1:])}
  from cnnzoo.evaluation import experiment
  experiment.run(config, _WORKDIR.value, spec, resume_epoch=_RESUME_EPOCH.value, init_from=_INIT_FROM.value,
                 command=command)


if __name__ == "__main__":
  cli.start_compute()  # tcmalloc, and oneDNN's handlers compiling (a first run) while main() imports JAX
  cli.run(main)
