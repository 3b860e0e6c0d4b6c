"""cnnzoo's datasets, entries of the dataset registry (dataset.py): uint8 NHWC splits, labels,
class names, channel mean.

`load_dataset(config)` loads the entry config.data.name names: "digits" (scikit-learn's bundled
8x8 digits, offline), "fashion_mnist" / "mnist" (the IDX files: in `data.dir`, Debian's package,
or tfds), "synthetic" (random images of the model's shape, for smoke runs), "hdf5" (files written
by the dataset builders), a user's own (`@cnnzoo.register_dataset`), or any other name as a
tensorflow-datasets name such as "cifar10".
"""

import hashlib
import os
import re
from typing import Sequence

import numpy as np

from cnnzoo import numbers
from cnnzoo.data import idx, splits
from cnnzoo.data.dataset import (DATASETS, Dataset, DatasetNotFoundError, Split, check_dataset, register_dataset,
                                 resolve_data)
from cnnzoo.data.hdf5 import load_hdf5
from cnnzoo.data.images import channel_stats, mean_image, resize_image  # noqa: F401 -- mean_image: the API
from cnnzoo.errors import ConfigError
from cnnzoo.registry import setting


def fingerprint(ds: "Dataset", samples: int = 64) -> str:
  """A short hash of what the splits hold: every label of each split and `samples` evenly spaced
  images of it. Two loads with another split seed, validation share, source or files differ; the
  same data moved to another folder does not."""
  h = hashlib.sha1()
  for split in (ds.train, ds.val, ds.test):
    h.update(np.asarray(split.labels, np.int32).tobytes())
    if len(split):
      h.update(np.ascontiguousarray(split.images[::max(1, len(split) // samples)]).tobytes())
  return h.hexdigest()[:16]


def _with_stats(name, train, val, test, class_names) -> "Dataset":
  return Dataset(name, train, val, test, class_names, *channel_stats(train.images))


def load_digits(image_size: int = 32, val_fraction: float = 0.1, test_fraction: float = 0.2,
                split_seed: int = 0) -> Dataset:
  """scikit-learn's 1,797 bundled 8x8 digits, scaled to 0..255 and resized to `image_size`."""
  from PIL import Image
  from sklearn.datasets import load_digits as sk_load_digits
  digits = sk_load_digits()
  small = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # values 0..16 -> 0..255
  if image_size != small.shape[1]:
    small = np.stack([np.asarray(Image.fromarray(im).resize((image_size, image_size), Image.BILINEAR))
                      for im in small])
  images = small[..., None]
  labels = digits.target.astype(np.int32)
  train, val, test = splits.three_way_split(images, labels, val_fraction, test_fraction, split_seed)
  return _with_stats("digits", train, val, test, [str(d) for d in range(10)])


def load_idx(name: str, directory: str = "", val_fraction: float = 0.0, split_seed: int = 0) -> Dataset:
  """MNIST or Fashion-MNIST (`name` "mnist" / "fashion_mnist") from its four IDX files: in
  `directory`, else where Debian's package puts them, else from tensorflow-datasets when it has
  the dataset prepared (in `directory` as its data_dir, or its default folder). The validation
  split is a stratified `val_fraction` of train (tfds: a seeded random share), or the test split
  when 0 (the seed's habit)."""
  class_names = idx.CLASS_NAMES[name]
  search = [directory] if directory else [idx.DEBIAN_DIRS.get(name, "")]
  files = next((f for f in (idx.find_files(d) for d in search if d and os.path.isdir(d)) if f), None)
  if files is None:  # tfds, if it has the dataset prepared (in `directory` as its data_dir)
    try:
      return load_tfds(name, directory or None, val_fraction, split_seed)
    except DatasetNotFoundError:
      found = [n for pair in idx.FILES.values() for n in pair if directory and idx.find_file(directory, n)]
      where = (f"{directory} holds {len(found)} of the 4 {name} IDX files (not "
               + ", ".join(n for pair in idx.FILES.values() for n in pair if n not in found) + ")" if found else
               f"{directory} holds no {name} IDX files" if directory else f"{name} is not on this machine")
      raise DatasetNotFoundError(f"{where}: {idx.how_to_get(name)}") from None
  train, test = (Split(*idx.read_split(*files[s], len(class_names))) for s in ("train", "test"))
  if train.images.shape[1:] != test.images.shape[1:]:
    raise idx.IdxError(f"{files['train'][0]} and {files['test'][0]} hold images of different sizes "
                       f"({train.images.shape[1:]} vs {test.images.shape[1:]})")
  if val_fraction > 0:
    if int(val_fraction * len(train)) < len(class_names):
      raise ConfigError(f"--config.data.val_fraction={val_fraction} holds out {int(val_fraction * len(train))} of "
                        f"{len(train)} images, fewer than one per class ({len(class_names)}): raise it, or 0 to "
                        "validate on the test split")
    train, val = splits.stratified_split(train, val_fraction, split_seed)
  else:
    val = test
  return _with_stats(name, train, val, test, list(class_names))


def load_synthetic(image_shape: Sequence[int], num_classes: int, sizes: Sequence[int] = (64, 32, 32),
                   seed: int = 0) -> Dataset:
  """Random uint8 images and labels of the given shape: exercises a config without its dataset."""
  rng = np.random.default_rng(seed)
  splits = [Split(rng.integers(0, 256, (n, *image_shape), dtype=np.uint8),
                  rng.integers(0, num_classes, n).astype(np.int32)) for n in sizes]
  return _with_stats("synthetic", *splits, [f"class_{i}" for i in range(num_classes)])


def _tfds_builder(name: str, data_dir: str | None):
  """(tfds builder, its image feature, its label feature); one line when tfds cannot open `name`
  or it is not image classification."""
  import tensorflow_datasets as tfds  # lazy: ~1 s of imports, only for tfds datasets
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # unknown name or a builder that needs TensorFlow
    text = " ".join(str(e).split())
    hint = re.search(r"Did you mean: \S+ -> (\S+)", text)
    if "Available datasets:" in text:  # tfds lists all ~400 names: keep the first sentence and its guess
      text = text.split("Available datasets:")[0].strip()
    raise DatasetNotFoundError(f"--config.data.name={name!r}: not a registered dataset ({', '.join(DATASETS.names())}) "
                               f"and tensorflow-datasets cannot open {name!r}: {text[:300]}"
                               + (f" (did you mean {hint.group(1)!r}?)" if hint else "")
                               + "; or use a builder folder (data.name=hdf5) or digits") from None
  features = builder.info.features
  image_key = next((k for k, v in features.items() if isinstance(v, tfds.features.Image)), None)
  labels = [k for k, v in features.items() if isinstance(v, tfds.features.ClassLabel)]
  if image_key is None or not labels:
    raise ConfigError(f"tfds dataset {name!r} is not image classification (no Image and ClassLabel features)")
  return builder, image_key, "label" if "label" in labels else labels[0]  # cifar100: "label" (100), not "coarse_label"


def load_tfds(name: str, data_dir: str | None, validation_split: float, split_seed: int,
              how_to_get: str = "", resize: int = 0, test_fraction: float = 0.2) -> Dataset:
  """A tensorflow-datasets image classification dataset read with `tfds.data_source` (no
  TensorFlow needed once prepared). The official test split is the test split, or, for datasets
  without one (cats_vs_dogs), `test_fraction` of train. The validation split is the official one
  if it exists, else `validation_split` of train (or the test split, if 0). `resize` > 0 resizes
  every image to resize x resize (aspect-aware, center crop; needed for datasets whose images
  differ in size)."""
  builder, image_key, label_key = _tfds_builder(name, data_dir)
  info = builder.info
  read = lambda split: _read_tfds_split(builder, name, split, image_key, label_key, resize)
  try:
    train = read("train")
  except ConfigError:
    raise
  except Exception:  # as_data_source fails on data that was never prepared
    if builder.is_prepared():
      raise
    raise DatasetNotFoundError(
        f"tfds dataset {name!r} is not prepared in {builder.data_dir}; "
        + (how_to_get or f"prepare it once with `tfds build {name}` (needs tensorflow) or set --config.data.dir")
    ) from None
  rng = np.random.default_rng(split_seed)
  def optional(split):  # None when the dataset has no such split
    if info.splits:
      return read(split) if split in info.splits else None
    if split != "test":  # no split metadata (only under tfds.testing.mock_data): train and test
      return None
    try:
      return read(split)
    except ConfigError:
      raise
    except Exception:
      return None

  test = optional("test")
  if test is None:
    train, test = splits.carve(train, test_fraction, rng)
  val = optional("validation")
  if val is None and validation_split > 0:
    train, val = splits.carve(train, validation_split, rng)
  elif val is None:
    val = test  # the seed's habit on CIFAR: the test split doubles as validation
  names = list(info.features[label_key].names)
  return _with_stats(name, train, val, test, names)


def _read_tfds_split(builder, name: str, split: str, image_key: str, label_key: str, resize: int) -> Split:
  """One split of a tfds builder as uint8 N x H x W x C images (each resized to resize x resize
  when `resize` > 0) and int32 labels."""
  def image(record):
    array = np.asarray(record[image_key], np.uint8)
    if not resize:
      return array
    from PIL import Image  # lazy, as everywhere in data/: only resizing needs it
    return resize_image(Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array), resize)

  source = builder.as_data_source(split=split)
  images = [image(r) for r in source]
  if len({im.shape for im in images}) > 1:
    shapes = sorted({im.shape for im in images})[:2]
    raise ConfigError(f"tfds dataset {name!r} has images of different sizes ({shapes[0]}, {shapes[1]}, ...); "
                      "set --config.data.resize=SIZE")
  images = np.stack(images)
  if images.ndim == 3:
    images = images[..., None]
  return Split(images, np.asarray([r[label_key] for r in source], np.int32))


def select_classes(ds: Dataset, classes) -> Dataset:
  """`ds` with only the images of `classes` (class names, or indices), relabelled 0..k-1 in that
  order; the channel statistics are those of the subset's training images."""
  names = list(ds.class_names)
  picked = []
  for c in classes:
    if isinstance(c, int) or numbers.is_count(str(c)):
      if not 0 <= int(c) < len(names):
        raise ConfigError(f"data.classes: {c} is not a class index of {ds.name} (0 .. {len(names) - 1})")
      picked.append(int(c))
    elif c in names:
      picked.append(names.index(c))
    else:
      raise ConfigError(f"data.classes: {c!r} is not a class of {ds.name} (its first ones: {', '.join(names[:5])})")
  if len(set(picked)) != len(picked) or len(picked) < 2:
    raise ConfigError(f"data.classes={tuple(classes)}: give at least two different classes")
  remap = np.full(len(names), -1, np.int32)
  remap[picked] = np.arange(len(picked), dtype=np.int32)

  def subset(split: Split) -> Split:
    labels = np.asarray(split.labels)
    rows = np.flatnonzero(remap[labels] >= 0)
    return Split(np.asarray(split.images[rows]) if len(rows) else np.zeros((0, *split.images.shape[1:]), np.uint8),
                 remap[labels[rows]])

  train = subset(ds.train)
  if not len(train):
    raise ConfigError(f"data.classes={tuple(classes)}: {ds.name}'s training split has no image of them")
  return Dataset(ds.name, train, subset(ds.val), subset(ds.test), [names[i] for i in picked],
                 *channel_stats(train.images))


def load_dataset(config) -> Dataset:
  """The dataset config.data.name names (config: the run's whole config), checked, then cut to
  `data.classes` when it lists some."""
  resolve_data(config)
  entry = DATASETS.get(config.data.name)
  ds = check_dataset(entry.fn(config), f"{config.data.name!r} ({entry.module}.{entry.fn.__name__})")
  return select_classes(ds, tuple(config.data.classes)) if config.data.get("classes") else ds


SPLIT_SEED = setting(0, "the seed of the validation / test split", low=0, high=2**32 - 1)
DIR = setting("", "the dataset's folder")


def _fraction(default: float, doc: str, low_open: bool = False):
  return setting(default, doc, low=0, high=1, low_open=low_open, high_open=True)


def _how(config, entry_how: str) -> str:
  return config.data.get("how_to_get", "") or entry_how


@register_dataset("digits", settings={
    "image_size": setting(32, "the 8x8 images resized to this size", low=1),
    "val_fraction": _fraction(0.1, "held out for validation", low_open=True),
    "test_fraction": _fraction(0.2, "held out for testing", low_open=True), "split_seed": SPLIT_SEED})
def digits(config) -> Dataset:
  d = config.data
  return load_digits(d.image_size, d.val_fraction, d.test_fraction, d.split_seed)


def _register_idx(name: str) -> None:
  def load(config) -> Dataset:
    d = config.data
    return load_idx(name, d.dir, d.val_fraction, d.split_seed)

  load.__name__ = name
  register_dataset(name, how_to_get=idx.how_to_get(name), settings={
      "dir": setting("", "the folder of its four IDX files (\"\": Debian's, then tfds')"),
      "val_fraction": _fraction(0.1, "of train held out for validation (0: validate on the test split)"),
      "split_seed": SPLIT_SEED})(load)


for _name in idx.CLASS_NAMES:  # mnist, fashion_mnist
  _register_idx(_name)


def _sizes(value) -> str | None:
  if len(value) != 3 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value):
    return "expected (train, val, test) image counts >= 1"
  return None


@register_dataset("synthetic", settings={
    "synthetic_sizes": setting((64, 32, 32), "train / val / test images", check=_sizes), "split_seed": SPLIT_SEED})
def synthetic(config) -> Dataset:
  """Random images of config.model.input_shape in config.model.num_classes classes (the run's
  build fills both from the model's entry when the config leaves them unset)."""
  shape, classes = tuple(config.model.get("input_shape", ())), config.model.get("num_classes", 0)
  if not shape or not classes:
    raise ConfigError("data.name=synthetic makes images of model.input_shape in model.num_classes classes: "
                      "set both")
  return load_synthetic(shape, classes, tuple(config.data.synthetic_sizes), config.data.split_seed)


@register_dataset("hdf5", settings={
    "dir": DIR, "max_in_memory_gb": setting(8.0, "splits up to this size are read into memory once", low=0)})
def hdf5(config) -> Dataset:
  """A dataset builder's output folder (experiments.build_dataset)."""
  return load_hdf5(config.data.dir, _how(config, ""), config.data.max_in_memory_gb)


def _tfds(config) -> Dataset:
  d = config.data
  return load_tfds(d.name, d.dir or None, d.val_fraction, d.split_seed, _how(config, ""), d.resize, d.test_fraction)


DATASETS.set_fallback("tensorflow-datasets", _tfds, settings={
    "dir": setting("", "tfds' data_dir (\"\": its default)"),
    "val_fraction": _fraction(0.1, "of train held out when the dataset has no validation split (0: the test split)"),
    "test_fraction": _fraction(0.2, "of train held out when it has no test split (cats_vs_dogs)"),
    "split_seed": SPLIT_SEED,
    "resize": setting(0, "resize every image to this square size (aspect-aware)", low=0)})
