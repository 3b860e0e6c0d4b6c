"""Splits of a dataset's images: stratified (train / val / test shares with every class on each
side, checked before scikit-learn is asked) and random (`carve`), each with a fixed seed."""

import numpy as np

from cnnzoo.data.dataset import Split
from cnnzoo.errors import ConfigError


def three_way_split(images, labels, val_fraction, test_fraction, seed):
  """Stratified train / val / test split with a fixed seed."""
  if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
    raise ConfigError(f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be "
                      "in (0, 1) and sum to less than 1")
  from sklearn.model_selection import train_test_split
  idx = np.arange(len(labels))
  check_stratifiable(labels, test_fraction, "--config.data.test_fraction")
  rest, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
  val_size = val_fraction / (1.0 - test_fraction)
  check_stratifiable(labels[rest], val_size, "--config.data.val_fraction", shown=val_fraction)
  train, val = train_test_split(rest, test_size=val_size, stratify=labels[rest], random_state=seed)
  return [Split(images[s], labels[s]) for s in (train, val, test)]


def check_stratifiable(labels, fraction: float, flag: str, shown: float | None = None) -> None:
  """A ConfigError naming `flag` where a stratified split of `fraction` of `labels` cannot be made
  (scikit-learn's rule: each side holds at least one image of every class, each class at least two
  images), checked before scikit-learn is asked."""
  n, counts = len(labels), np.bincount(np.asarray(labels, np.int64)) if len(labels) else np.zeros(0, np.int64)
  classes = int(np.count_nonzero(counts))
  held = int(np.ceil(fraction * n))
  value = fraction if shown is None else shown
  if classes and counts[counts > 0].min() < 2:
    raise ConfigError(f"{flag}={value}: class {int(np.flatnonzero(counts == 1)[0])} has a single image of {n}: a "
                      "stratified split needs two of each class")
  if held < classes or n - held < classes:
    raise ConfigError(f"{flag}={value} holds out {held} of {n} images, leaving {n - held}: each side needs at least "
                      f"one image of each of the {classes} classes")


def stratified_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
  """(rest, held out): `fraction` of `split` held out, stratified by label, with a fixed seed."""
  from sklearn.model_selection import train_test_split
  check_stratifiable(np.asarray(split.labels), fraction, "--config.data.val_fraction")
  rest, held = train_test_split(np.arange(len(split)), test_size=fraction, stratify=split.labels, random_state=seed)
  rest, held = np.sort(rest), np.sort(held)  # the images keep the files' order
  return Split(split.images[rest], split.labels[rest]), Split(split.images[held], split.labels[held])


def carve(split: Split, fraction: float, rng) -> tuple[Split, Split]:
  """`split` cut in two at random: (the rest, `fraction` of it)."""
  order = rng.permutation(len(split))
  n = int(round(fraction * len(split)))
  take = lambda idx: Split(split.images[idx], split.labels[idx])
  return take(order[n:]), take(order[:n])
