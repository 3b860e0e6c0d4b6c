"""Five MiniVGGNets on CIFAR-10 averaged (seed 000, 2020-11-22-ensemble-methods).

  python -m experiments.main --config=configs/minivggnet_cifar10_ensemble.py --workdir=runs/minivggnet_ens

The journal trains its CIFAR-10 MiniVGGNet five times and averages the predictions; it reports no
figure and no hyper-parameters for this run, so each member uses configs/minivggnet_cifar10.py's
recipe (SGD 0.01, momentum 0.9, Nesterov, time-based decay 0.01 / 64 -- the journal's a0 / batchSize --, 40 epochs, batch 64) with
seeds 0..4. Members go to WORKDIR/member_0 .. member_4 (each resumable); the ensemble's
classification report, rank-1 / rank-5 and confusion matrix to WORKDIR/ensemble_eval_test, each
member's figures beside it. One member alone reaches about 0.82 (seed 2020-11-12).
"""

from configs import base, minivggnet_cifar10


def get_config(arg=None):
  args = base.parse_args(arg)
  c = minivggnet_cifar10.get_config("smoke" if "smoke" in args else None)
  c.journal.run = "five MiniVGGNets averaged, CIFAR-10"
  c.journal.seed = "000 (2020-11-22)"
  c.journal.recipe = "our choice: the journal gives none; minivggnet_cifar10's recipe"
  c.journal.metric = "test_accuracy"
  c.journal.figure = 0.0
  c.ensemble.members = 2 if "smoke" in args else 5
  return c
