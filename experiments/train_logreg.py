"""Logistic regression on extracted features, the seed's grid search over C (seed 000).

  python -m experiments.train_logreg --features=features/flowers17_vgg16
  python -m experiments.train_logreg --features=features/dogs_vs_cats_resnet50 --C=0.1,1,10 --jobs=2
  python -m experiments.train_logreg --features=features/other --load=features/flowers17_vgg16/logreg.h5

Fits on DIR/train_features.h5 (3-fold GridSearchCV), reports on DIR/test_features.h5 (sklearn
classification report, rank-1 / rank-5) and saves DIR/logreg.h5 (arrays, no pickle),
logreg_evaluation.json and logreg_report.txt. --load evaluates a saved regression instead.
"""

from absl import flags

from cnnzoo import cli

_FEATURES = flags.DEFINE_string("features", None, "Folder written by experiments.extract_features.")
_C = flags.DEFINE_list("C", ["0.1", "1", "10", "100", "1000", "10000"], "Inverse regularization strengths to try.")
_JOBS = flags.DEFINE_integer("jobs", 1, "Parallel fits (-1: every core).")
_MAX_ITER = flags.DEFINE_integer("max_iter", 150, "lbfgs iterations per fit.", lower_bound=1)
_OUT = flags.DEFINE_string("out", None, "Where to write the model and report (default: --features).")
_LOAD = flags.DEFINE_string("load", None, "Evaluate this saved logreg.h5 on --features' test split.")
flags.mark_flags_as_required(["features"])


def main(argv):
  del argv
  from cnnzoo import paths
  from cnnzoo.transfer import logreg
  if _LOAD.value:
    logreg.evaluate_saved(_LOAD.value, _FEATURES.value)
    return
  try:
    cs = [float(c) for c in _C.value]
  except ValueError:
    cli.fail(f"--C={','.join(_C.value)}: expected comma-separated positive numbers")
  if _JOBS.value == 0 or _JOBS.value < -1:
    cli.fail(f"--jobs={_JOBS.value}: a positive number of parallel fits, or -1 for every core")
  if _OUT.value:
    paths.check_writable(_OUT.value, "--out")
  logreg.train(_FEATURES.value, cs, _JOBS.value, _MAX_ITER.value, _OUT.value)


if __name__ == "__main__":
  cli.run(main)
