"""Evaluate trained runs, one or several (an ensemble), from their workdirs.

Each run is rebuilt from its config.json (model, data, eval crops) and the chosen checkpoint, and
every example of the split is evaluated exactly once. Several runs form an ensemble: their class
probabilities are averaged, and each member's figures are reported beside the ensemble's.
"""

import dataclasses
import os

import numpy as np

from cnnzoo import metrics
from cnnzoo.errors import UserError
from cnnzoo.training.restore import restore_run
from cnnzoo.training import loop
from cnnzoo import paths


@dataclasses.dataclass
class Member:
  """One run's predictions on a split."""
  workdir: str
  epoch: int
  model: str
  dataset: str
  class_names: list
  labels: np.ndarray
  probs: np.ndarray  # (examples, classes) float32


def predict_run(workdir: str, split: str = "test", checkpoint: str = "best") -> Member:
  """Rebuilds the run in `workdir` and returns its class probabilities on `split` (test | val)."""
  if split not in ("test", "val"):
    raise UserError(f"--split={split}: expected test or val")
  config, run, state, epoch = restore_run(workdir, checkpoint)
  loader, step = (run.test_loader, run.test_step) if split == "test" else (run.val_loader, run.eval_step)
  out = loop.evaluate(run, state, loader, step, probabilities=True)
  return Member(workdir, epoch, config.model.name, run.dataset.name, list(run.dataset.class_names),
                np.asarray(loader.split.labels), out["probs"])


def check_compatible(members: list[Member]) -> None:
  """Members of an ensemble must predict the same classes for the same examples."""
  first = members[0]
  for m in members[1:]:
    if m.dataset != first.dataset or m.class_names != first.class_names:
      raise UserError(f"{m.workdir} was trained on {m.dataset!r} ({len(m.class_names)} classes) and "
                      f"{first.workdir} on {first.dataset!r} ({len(first.class_names)} classes); an "
                      "ensemble needs runs on the same dataset and class list")
    if m.labels.shape != first.labels.shape or not np.array_equal(m.labels, first.labels):
      raise UserError(f"{m.workdir} and {first.workdir} see different {len(m.labels)} / "
                      f"{len(first.labels)} examples in this split (another split seed or "
                      "fraction); an ensemble needs the same examples")


def ensemble(members: list[Member]) -> np.ndarray:
  """The mean of the members' class probabilities."""
  return np.mean(np.stack([m.probs for m in members]), axis=0)


def default_out(workdirs: list[str], split: str) -> str:
  """WORKDIR/eval_SPLIT for one run; COMMON_PARENT/ensemble_eval_SPLIT for several."""
  if len(workdirs) == 1:
    return os.path.join(workdirs[0], f"eval_{split}")
  parent = os.path.commonpath([os.path.abspath(w) for w in workdirs])
  return os.path.join(parent, f"ensemble_eval_{split}")


def evaluate_runs(workdirs: list[str], split: str = "test", checkpoint: str = "best",
                  out: str | None = None, echo=print) -> dict:
  """Evaluates each run (and their ensemble when there are several) and writes to `out`:
  evaluation.json, classification_report.txt and confusion_matrix.png. Returns the json."""
  if not workdirs:
    raise UserError("give at least one --workdir")
  seen = {}
  for w in workdirs:  # a symlink (or another spelling) of a run already given is the same member
    real = os.path.realpath(w)
    if real in seen:
      same = "" if os.path.abspath(w) == os.path.abspath(seen[real]) else f" ({w} is {seen[real]})"
      raise UserError(f"the same --workdir is given twice{same}")
    seen[real] = w
  out = out or default_out(workdirs, split)
  paths.check_writable(out, "--out")
  members = [predict_run(w, split, checkpoint) for w in workdirs]
  check_compatible(members)
  names, labels = members[0].class_names, members[0].labels
  rows = []
  for m in members:
    r = metrics.report(m.probs, labels, names)
    rows.append({"workdir": m.workdir, "model": m.model, "epoch": m.epoch, "rank1": r["rank1"],
                 "rank5": r["rank5"], "cross_entropy": r["cross_entropy"], "count": r["count"]})
  probs = ensemble(members) if len(members) > 1 else members[0].probs
  final = metrics.report(probs, labels, names)
  result = {"split": split, "checkpoint": checkpoint, "dataset": members[0].dataset,
            "class_names": names, "members": rows, **final}
  if len(members) > 1:
    result["ensemble_of"] = len(members)
  os.makedirs(out, exist_ok=True)
  text = metrics.report_text(probs, labels, names)
  paths.write_json(os.path.join(out, "evaluation.json"), result)
  paths.write_text(os.path.join(out, "classification_report.txt"), text)
  what = f"ensemble of {len(members)}" if len(members) > 1 else f"{members[0].model} epoch {members[0].epoch}"
  metrics.plot_confusion(final["confusion_matrix"], names, os.path.join(out, "confusion_matrix.png"),
                         f"{what} on {members[0].dataset} {split} ({final['count']} images)")
  echo(text.rstrip())
  width = max(len(r["workdir"]) for r in rows)
  for r in rows:
    echo(f"{r['workdir']:<{width}}  epoch {r['epoch']:>4}  rank-1 {r['rank1']:.4f}  rank-5 {r['rank5']:.4f}")
  if len(members) > 1:
    echo(f"{'ensemble':<{width}}  {len(members):>4} runs  rank-1 {final['rank1']:.4f}  rank-5 {final['rank5']:.4f}")
  echo(f"wrote {out}/evaluation.json, classification_report.txt, confusion_matrix.png")
  return result
