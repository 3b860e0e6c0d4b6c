"""Logistic regression on extracted features (seed 000: VGG16 features on Flowers-17 -> 0.89,
ResNet50 features on Dogs-vs-Cats -> 0.99): scikit-learn's LogisticRegression with a grid search
over C on the training features (3-fold), reported on the test features.

The fitted model is saved without pickle, as HDF5 arrays (coefficients, intercept, classes, C)
and attributes (the features' model / layer / dataset, which `load` checks against new features).
"""

import os

import numpy as np

from cnnzoo.errors import UserError
from cnnzoo import metrics, paths

SEED_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


def fit(features, labels, Cs=SEED_GRID, jobs: int = 1, max_iter: int = 150, folds: int = 3, seed: int = 0):
  """GridSearchCV(LogisticRegression(lbfgs)) over `Cs`; returns the refitted best estimator."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.model_selection import GridSearchCV, StratifiedKFold
  if not len(labels):
    raise UserError("the training features hold no image; extract them from a split that has images")
  counts = np.bincount(labels)
  if np.count_nonzero(counts) < 2:
    raise UserError(f"the training features hold one class only ({np.count_nonzero(counts)} of "
                    f"{len(counts)} present); logistic regression needs images of at least two classes")
  folds = int(min(folds, counts[counts > 0].min()))
  if folds < 2:
    raise UserError("the training features have a class with a single example; a grid search needs 2 per class")
  search = GridSearchCV(LogisticRegression(solver="lbfgs", max_iter=max_iter, random_state=seed),
                        {"C": list(Cs)}, cv=StratifiedKFold(folds, shuffle=True, random_state=seed), n_jobs=jobs)
  import warnings
  from sklearn.exceptions import ConvergenceWarning
  with warnings.catch_warnings():  # lbfgs at the seed's 150 iterations stops early on large C: reported below
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(features, labels)
  return search


def save(path: str, estimator, attrs: dict) -> None:
  """coef_, intercept_, classes_ and C as HDF5 datasets, `attrs` as attributes (atomically)."""
  import h5py
  with paths.atomic(path) as tmp, h5py.File(tmp, "w") as f:
    f["coef"] = estimator.coef_
    f["intercept"] = estimator.intercept_
    f["classes"] = estimator.classes_
    f.attrs["C"] = float(estimator.C)
    for k, v in attrs.items():
      f.attrs[k] = [str(x).encode() for x in v] if isinstance(v, (list, tuple)) else v


def load(path: str):
  """(LogisticRegression ready to predict, attrs) from a file written by `save`."""
  import h5py
  from sklearn.linear_model import LogisticRegression
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise UserError(f"cannot read {path} as HDF5 ({e})") from None
  with f:
    if not {"coef", "intercept", "classes"} <= set(f):
      raise UserError(f"{path} is not a logistic regression saved by experiments.train_logreg")
    model = LogisticRegression(C=float(f.attrs["C"]))
    model.coef_, model.intercept_ = np.asarray(f["coef"]), np.asarray(f["intercept"])
    model.classes_ = np.asarray(f["classes"])
    attrs = {k: _decode(v) for k, v in f.attrs.items()}
  return model, attrs


def _decode(value):
  if isinstance(value, bytes):
    return value.decode()
  if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
    return [v.decode() if isinstance(v, bytes) else str(v) for v in value]
  return value


def check_fits(model, attrs: dict, features: np.ndarray, feature_attrs: dict, where: str) -> None:
  """Features from another model, layer or dataset than the regression was fitted on -> one line."""
  if features.shape[1] != model.coef_.shape[1]:
    raise UserError(f"{where} has {features.shape[1]} features per image, the regression expects "
                    f"{model.coef_.shape[1]} ({attrs.get('model', '?')}, layer {attrs.get('layer', '?')})")
  for key in ("model", "layer", "dataset"):
    if key in attrs and key in feature_attrs and attrs[key] != feature_attrs[key]:
      raise UserError(f"{where} holds features of {key} {feature_attrs[key]!r}; the regression was "
                      f"fitted on {key} {attrs[key]!r}")


def probabilities(model, features: np.ndarray, num_classes: int) -> np.ndarray:
  """(N, num_classes) probabilities, with zeros for classes absent from the training features."""
  probs = np.zeros((len(features), num_classes))
  probs[:, model.classes_] = model.predict_proba(features)
  return probs


def train(features_dir: str, Cs=SEED_GRID, jobs: int = 1, max_iter: int = 150, out: str | None = None,
          echo=print) -> dict:
  """experiments.train_logreg: fit on train, report on test, save the model and the report."""
  from cnnzoo.transfer import features as features_lib  # lazy: the model zoo and training stack (~0.5 s of imports) only when used
  train_path = features_lib.output_path(features_dir, "train")
  test_path = features_lib.output_path(features_dir, "test")
  for p in (train_path, test_path):
    if not os.path.isfile(p):
      raise UserError(f"--features={features_dir}: no {os.path.basename(p)} (write it with experiments.extract_features)")
  if not Cs or any(not np.isfinite(c) or c <= 0 for c in Cs):
    raise UserError(f"--C={','.join(map(str, Cs))}: every C must be a positive number")
  x_train, y_train, names, attrs = features_lib.read_features(train_path)
  x_test, y_test, test_names, test_attrs = features_lib.read_features(test_path)
  if test_names != names or x_test.shape[1] != x_train.shape[1]:
    raise UserError(f"{test_path} and {train_path} come from different extractions "
                    f"({x_test.shape[1]} vs {x_train.shape[1]} features, {len(test_names)} vs {len(names)} classes)")
  out = out or features_dir
  os.makedirs(out, exist_ok=True)
  echo(f"grid search over C = {', '.join(f'{c:g}' for c in Cs)} on {len(x_train)} x {x_train.shape[1]} features")
  search = fit(x_train, y_train, Cs, jobs, max_iter)
  best = search.best_estimator_
  probs = probabilities(best, x_test, len(names))
  report = metrics.report(probs, y_test, names)
  text = metrics.report_text(probs, y_test, names)
  result = {"C": float(best.C), "cv_accuracy": float(search.best_score_),
            "grid": {f"{c:g}": float(s) for c, s in zip(Cs, search.cv_results_["mean_test_score"])},
            "features": features_dir, **attrs, **report}
  save(os.path.join(out, "logreg.h5"), best, {**attrs, "class_names": names})
  paths.write_json(os.path.join(out, "logreg_evaluation.json"), result)
  paths.write_text(os.path.join(out, "logreg_report.txt"), text)
  echo(f"best C = {best.C:g} (3-fold accuracy {search.best_score_:.4f})")
  echo(text.rstrip())
  echo(f"test: rank-1 {report['rank1']:.4f}  rank-5 {report['rank5']:.4f}  ({report['count']} images)")
  echo(f"wrote {out}/logreg.h5, logreg_evaluation.json, logreg_report.txt")
  return result


def evaluate_saved(path: str, features_dir: str, split: str = "test", echo=print) -> dict:
  """Applies a saved regression to DIR's SPLIT features (checked to come from the same extraction)."""
  from cnnzoo.transfer import features as features_lib  # lazy: as above
  model, attrs = load(path)
  where = features_lib.output_path(features_dir, split)
  if not os.path.isfile(where):
    raise UserError(f"--features={features_dir}: no {os.path.basename(where)}")
  x, y, names, feature_attrs = features_lib.read_features(where)
  check_fits(model, attrs, x, feature_attrs, where)
  if "class_names" in attrs and list(attrs["class_names"]) != names:
    raise UserError(f"{where} has classes {names[:3]}...; the regression was fitted on {list(attrs['class_names'])[:3]}...")
  probs = probabilities(model, x, len(names))
  report = metrics.report(probs, y, names)
  echo(metrics.report_text(probs, y, names).rstrip())
  echo(f"{split}: rank-1 {report['rank1']:.4f}  rank-5 {report['rank5']:.4f}  ({report['count']} images)")
  return report
