"""Report on trained runs: classification report, rank-1 / rank-5, confusion matrix; several runs
are evaluated as an ensemble (their class probabilities averaged).

  python -m experiments.evaluate --workdir=runs/minivggnet_cifar10
  python -m experiments.evaluate --workdir=runs/ens/member_0 --workdir=runs/ens/member_1 --split=val
  python -m experiments.evaluate --workdir=runs/tiny --checkpoint=latest --out=reports/tiny

Writes evaluation.json, classification_report.txt and confusion_matrix.png to --out (default
WORKDIR/eval_SPLIT, or COMMON_PARENT/ensemble_eval_SPLIT for several runs).
"""

from absl import flags

from cnnzoo import cli

_WORKDIRS = flags.DEFINE_multi_string("workdir", None, "A run directory; repeat for an ensemble.")
_SPLIT = flags.DEFINE_enum("split", "test", ["test", "val"], "Which split to evaluate.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best (by the run's best_metric), latest or an epoch.")
_OUT = flags.DEFINE_string("out", None, "Output folder (default: WORKDIR/eval_SPLIT).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  cli.quiet_logs()
  from cnnzoo import runtime
  cli.choose_platform()
  runtime.check_platform()
  from cnnzoo.evaluation import evaluate as evaluate_lib
  evaluate_lib.evaluate_runs(_WORKDIRS.value, _SPLIT.value, _CHECKPOINT.value, _OUT.value)


if __name__ == "__main__":
  cli.start_compute()  # tcmalloc, and oneDNN's handlers compiling (a first run) while main() imports JAX
  cli.run(main)
