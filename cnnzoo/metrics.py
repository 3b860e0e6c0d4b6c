"""Figures of a set of predictions: rank-1 / rank-5 accuracy, scikit-learn's classification report
and a confusion-matrix plot. Pure NumPy / scikit-learn / matplotlib on (examples, classes)
probabilities; of cnnzoo it imports only `paths` (atomic writes) and the registry, so training
uses it for results.json too.

The registry of the metrics a run measures as it trains is here too (no JAX: its entries are
traced by the steps): `@register_metric(NAME, higher_is_better=True, shown=True, short="")` on
`fn(logits, labels) -> one value per image`; cnnzoo's own (accuracy, top5_accuracy) are in
training/measures.py, which turns config.metrics into the steps' sums and the history's keys.
"""

import numpy as np

from cnnzoo import paths
from cnnzoo.registry import Registry

# higher_is_better: which way a callback in mode "auto" follows it; shown: in the epoch line (and by
# its name in the test line); short: its name in the progress bar (and, when not shown, the test line)
METRICS = Registry("metric", facts={"higher_is_better": True, "shown": True, "short": ""})
register_metric = METRICS.register


def rank_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Fraction of examples whose label is among the `k` most probable classes (rank-k)."""
  k = min(k, probs.shape[1])
  top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
  return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))


def report(probs: np.ndarray, labels: np.ndarray, class_names) -> dict:
  """rank-1, rank-5, cross-entropy, count, sklearn's classification report (per class: precision,
  recall, f1-score, support; accuracy; macro and weighted averages) and the confusion matrix."""
  from sklearn.metrics import classification_report, confusion_matrix
  labels = np.asarray(labels)
  classes = list(range(len(class_names)))
  preds = np.argmax(probs, axis=1)
  names = _unique(class_names)
  table = classification_report(labels, preds, labels=classes, target_names=names, output_dict=True,
                                zero_division=0)
  picked = probs[np.arange(len(labels)), labels]
  return {"count": int(len(labels)), "rank1": rank_accuracy(probs, labels, 1),
          "rank5": rank_accuracy(probs, labels, 5),
          "cross_entropy": float(-np.mean(np.log(np.maximum(picked, np.finfo(np.float32).tiny)))),
          "classification_report": table,
          "confusion_matrix": confusion_matrix(labels, preds, labels=classes).tolist()}


def report_text(probs: np.ndarray, labels: np.ndarray, class_names) -> str:
  """sklearn's classification report as the table the journal prints (4 digits)."""
  from sklearn.metrics import classification_report
  return classification_report(np.asarray(labels), np.argmax(probs, axis=1), labels=list(range(len(class_names))),
                               target_names=_unique(class_names), digits=4, zero_division=0)


def _unique(names) -> list[str]:
  """Class names as sklearn needs them: strings, no duplicates (a repeat gets its index)."""
  seen, out = set(), []
  for i, name in enumerate(str(n) for n in names):
    out.append(name if name not in seen else f"{name} ({i})")
    seen.add(name)
  return out


def plot_confusion(matrix, class_names, path: str, title: str = "") -> None:
  """A confusion-matrix PNG, rows = true class, colours = row-normalized (recall per cell).

  Up to 30 classes every cell shows its count and every class is named; above that (Tiny-ImageNet's
  200) the matrix is an image with every n-th class named, the diagonal still readable.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  m = np.asarray(matrix, dtype=np.int64)
  n = len(class_names)
  rows = m.sum(axis=1, keepdims=True)
  norm = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
  size = 6.0 if n <= 10 else min(4.0 + 0.4 * n, 16.0)
  fig, ax = plt.subplots(figsize=(size + 1.5, size))
  im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
  fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
  every = 1 if n <= 30 else int(np.ceil(n / 25))
  ticks = np.arange(0, n, every)
  short = [str(class_names[i])[:18] for i in ticks]
  ax.set_xticks(ticks, short, rotation=90, fontsize=8 if n <= 30 else 6)
  ax.set_yticks(ticks, short, fontsize=8 if n <= 30 else 6)
  if n <= 30:
    for i in range(n):
      for j in range(n):
        if m[i, j]:
          ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                  color="white" if norm[i, j] > 0.5 else "black")
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title or f"confusion matrix ({int(m.sum())} images)")
  fig.tight_layout()
  with paths.atomic(path, ".tmp.png") as tmp:
    fig.savefig(tmp, dpi=100)
  plt.close(fig)
