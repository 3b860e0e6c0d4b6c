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
_LIST_CONFIGS = flags.DEFINE_bool("list_configs", False, "Print every config in configs/ with its model, "
                                   "dataset, the journal run it reproduces and the seed's figure; then exit.")


def list_configs() -> list[dict]:
  """One row per config of configs/ (and per journal variant a config names in `VARIANTS`), read
  from the configs' own fields."""
  import os
  from cnnzoo.evaluation import journal
  here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
  return [{"config": j.config, "model": j.model,
           "data": f"hdf5:{os.path.basename(j.data_dir.rstrip('/'))}" if j.data.startswith("hdf5:") else j.data,
           "run": j.run, "seed": j.seed,
           "figure": f"{j.metric} {j.figure:.4g}" if j.figure else (
               f"published {j.reference_figure:.3f}" if j.reference_figure else "none reported")}
          for j in journal.journal_runs(here)]


def print_configs() -> None:
  rows = list_configs()
  heads = {"config": "config", "model": "model", "data": "data", "run": "journal run", "seed": "seed note",
           "figure": "seed's (or a published) figure"}
  widths = {k: max(len(h), *(len(r[k]) for r in rows)) for k, h in heads.items()}
  for row in [heads, *rows]:
    print("  ".join(row[k].ljust(widths[k]) for k in heads).rstrip())
  print("\nrun one: python -m experiments.main --config=CONFIG   (add :smoke for a seconds-long check)")


def main(argv):
  del argv  # cli.run refuses positional arguments
  if _LIST_CONFIGS.value:
    return print_configs()
  if _CONFIG.value is None:
    cli.fail("--config=configs/NAME.py is missing (python -m experiments.main --list_configs lists them)")
  cli.quiet_logs()
  from configs import base
  cli.check_config(_CONFIG, reference=base.get_config())
  import jax

  from cnnzoo import runtime
  from cnnzoo.training import workdir as workdir_lib
  cli.choose_platform()
  runtime.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  runtime.check_platform()
  config = _CONFIG.value
  workdir = _WORKDIR.value
  if workdir is None:
    workdir = workdir_lib.default_workdir(config_flags.get_config_filename(flags.FLAGS["config"]))  
    if jax.process_index() == 0:
      print(f"workdir: {workdir} (the default for this config; --workdir=DIR to choose)", flush=True)
  spec = config_flags.get_config_filename(flags.FLAGS["config"])
  command = {"config": spec, "command": resume_command(sys.argv[1:])}
  if config.get("features") and config.features.use:  # extraction + logistic regression, no training
    from cnnzoo.transfer import pipeline
    pipeline.run(config, workdir, command=command)
    return
  if config.get("ensemble") and config.ensemble.members:
    from cnnzoo.evaluation.ensemble import train_ensemble
    train_ensemble(config, workdir, resume_epoch=_RESUME_EPOCH.value, init_from=_INIT_FROM.value, command=command)
    return
  from cnnzoo.training.loop import train_and_evaluate
  train_and_evaluate(config, workdir, resume_epoch=_RESUME_EPOCH.value, init_from=_INIT_FROM.value,
                     command=command)


def resume_command(args: list[str]) -> str:
  """The command line that continues this run: its own flags without --resume_epoch / --init_from
  (run once) and the multi-host flags (each process has its own)."""
  import shlex
  once = ("--resume_epoch", "--init_from", "--coordinator_address", "--num_processes", "--process_id")
  kept = [a for a in args if not a.split("=", 1)[0] in once]
  return shlex.join(["python", "-m", "experiments.main", *kept])


if __name__ == "__main__":
  cli.start_compute()  # tcmalloc, and oneDNN's handlers compiling (a first run) while main() imports JAX
  cli.run(main)
