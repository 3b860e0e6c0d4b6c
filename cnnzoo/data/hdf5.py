"""The builders' HDF5 datasets read back: train.h5 / val.h5 / test.h5 and mean.json, validated."""

import json
import os

import numpy as np

from cnnzoo.data.dataset import Dataset, DatasetNotFoundError, Split
from cnnzoo.errors import ConfigError


def load_hdf5(directory: str, how_to_get: str = "", max_in_memory_gb: float = 8.0) -> Dataset:
  """Reads `train.h5`, `val.h5`, `test.h5` (datasets `images`, `labels`; attribute `class_names`)
  and `mean.json` written by the dataset builders. A split smaller than `max_in_memory_gb` is read
  into memory once (random batch reads from HDF5 are ~30x slower); larger ones stay on disk as h5py
  datasets read batch by batch. Without a `val.h5` (a build with no validation split, like the
  seed's Flowers-17) the test split is also the validation split, as in the seed."""
  paths = _split_paths(directory, how_to_get)
  splits, class_names = [], None
  for path in paths:
    split, names = _read_split(path, max_in_memory_gb)
    if class_names is not None and names != class_names:
      raise ConfigError(f"{path}: its class names ({', '.join(names[:3])}, ...) differ from train.h5's "
                        f"({', '.join(class_names[:3])}, ...); the splits come from different builds")
    class_names = names
    if path == paths[0]:
      counts = np.bincount(split.labels, minlength=len(class_names))
      empty = [class_names[k] for k in np.flatnonzero(counts == 0)]
      if empty:
        raise ConfigError(f"{path}: class {empty[0]!r} has no training image ({len(empty)} of "
                          f"{len(class_names)} classes have none); a model cannot learn it: rebuild without it")
    splits.append(split)
  mean, std = _read_mean(os.path.join(directory, "mean.json"), splits[0].images.shape[-1])
  return Dataset(os.path.basename(os.path.normpath(directory)), *splits, class_names, mean, std)


def _split_paths(directory: str, how_to_get: str) -> list[str]:
  """train.h5, val.h5 (test.h5 where there is none) and test.h5 of `directory`, all there."""
  paths = [os.path.join(directory, f"{s}.h5") for s in ("train", "val", "test")]
  if not os.path.exists(paths[1]):
    paths[1] = paths[2]
  missing = [p for p in paths if not os.path.exists(p)]
  if missing and os.path.exists(paths[0]):  # part of a dataset: not the dataset of how_to_get's advice
    raise DatasetNotFoundError(f"{directory} holds train.h5 but no {os.path.basename(missing[0])}: a partial "
                               "dataset; rebuild it with `python -m experiments.build_dataset ... --overwrite`")
  if missing:
    raise DatasetNotFoundError(f"no HDF5 dataset at {missing[0]}" + (f"; {how_to_get}" if how_to_get else ""))
  return paths


def _read_split(path: str, max_in_memory_gb: float) -> tuple[Split, list[str]]:
  """One split file, checked: its images (in memory, or the h5py dataset when larger than
  `max_in_memory_gb`), labels and class names."""
  import h5py  # lazy: only HDF5 datasets need it
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise DatasetNotFoundError(f"{path} is not a readable HDF5 file ({e}); rebuild it with "
                               "`python -m experiments.build_dataset`") from None
  missing = [k for k in ("images", "labels") if k not in f] + [a for a in ("class_names",) if a not in f.attrs]
  if missing:
    raise ConfigError(f"{path} has no {missing[0]!r} (expected datasets images, labels and the "
                      "class_names attribute, as experiments.build_dataset writes them)")
  images, raw_labels = f["images"], f["labels"]
  if raw_labels.ndim != 1 or raw_labels.dtype.kind not in "iu":
    raise ConfigError(f"{path}: labels must be one integer per image (found {raw_labels.dtype} "
                      f"{raw_labels.shape}); rebuild it with `python -m experiments.build_dataset`")
  if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(raw_labels):
    raise ConfigError(f"{path}: images must be uint8 N x H x W x C with one label each (found "
                      f"{images.dtype} {images.shape}, {len(raw_labels)} labels)")
  if images.shape[-1] not in (1, 3):  # gray or RGB; anything else is another layout (a model sees NHWC)
    nchw = images.shape[1] in (1, 3)
    raise ConfigError(f"{path}: images are {images.shape}, not N x H x W x C with 1 or 3 channels" + (
        " (stored channels-first, N x C x H x W: write np.transpose(images, (0, 2, 3, 1)))" if nchw else ""))
  try:  # h5py opens a file whose chunks are damaged; reading them fails
    labels = np.asarray(raw_labels, np.int32)
    if images.size <= max_in_memory_gb * 2**30:
      images = images[()]
  except OSError as e:
    raise DatasetNotFoundError(f"cannot read {path}: it is damaged ({e}); rebuild it with "
                               "`python -m experiments.build_dataset ... --overwrite`") from None
  names = _class_names(path, f.attrs["class_names"])
  if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
    raise ConfigError(f"{path}: labels run from {labels.min()} to {labels.max()} but there are "
                      f"{len(names)} class names")
  return Split(images, labels), names


def _read_mean(mean_path: str, channels: int):
  """(mean, std) of the builders' mean.json -- {"mean": [..], "std": [..]}, or the seed's
  {"R": .., "G": .., "B": ..} with no std -- or (None, None) where there is none."""
  if not os.path.exists(mean_path):
    return None, None
  try:
    with open(mean_path) as f:
      m = json.load(f)
    mean = tuple(float(v) for v in m["mean"]) if "mean" in m else tuple(float(m[k]) for k in ("R", "G", "B"))
    std = tuple(float(v) for v in m["std"]) if "std" in m else None
  except (ValueError, KeyError, TypeError) as e:
    raise ConfigError(f"{mean_path} is not the builders' mean file ({type(e).__name__}: {e}); expected "
                      '{"mean": [..], "std": [..]} or the seed\'s {"R": .., "G": .., "B": ..}: rebuild the '
                      "dataset or delete it") from None
  if not all(np.isfinite(v) for v in (*mean, *(std or ()))):
    raise ConfigError(f"{mean_path} holds a mean or std that is not a finite number ({m}); rebuild the "
                      "dataset or delete the file")
  if len(mean) != channels or (std is not None and len(std) != channels):
    raise ConfigError(f"{mean_path} holds {len(mean)} channel mean(s) for images of {channels} channel(s); "
                      "it belongs to another dataset: rebuild the dataset or delete it")
  return mean, std


def _class_names(path: str, value) -> list[str]:
  """The `class_names` attribute of an HDF5 split as a list of at least two strings."""
  if isinstance(value, (str, bytes)) or np.ndim(value) != 1:
    raise ConfigError(f"{path}: the class_names attribute must be a list of names, one per class (found "
                      f"{type(value).__name__} {str(value)[:40]!r})")
  names = [c.decode() if isinstance(c, bytes) else c for c in value]
  if not all(isinstance(n, str) for n in names):
    raise ConfigError(f"{path}: class_names must be strings (found {type(names[0]).__name__})")
  if len(names) < 2:
    raise ConfigError(f"{path}: {len(names)} class(es): classification needs at least two")
  return names
