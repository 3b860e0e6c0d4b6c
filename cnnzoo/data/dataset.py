"""The dataset every source returns (uint8 NHWC splits, int32 labels, class names, channel
statistics) and the registry of sources: `@register_dataset(NAME, settings={...})` on
`fn(config) -> Dataset`, `config` being the run's whole ConfigDict; its settings are fields of
config.data beside DATA_FIELDS, which every dataset shares."""

import dataclasses
from typing import Sequence

import numpy as np

from cnnzoo.errors import ConfigError, UserError
from cnnzoo.registry import Registry, resolve_section

# config.data's own fields: how batches are made, whatever the source (configs/base.py); the
# dataset's and the augmentation's settings sit beside them
DATA_FIELDS = ("name", "how_to_get", "on_device", "max_on_device_gb", "prefetch", "classes", "batch_size",
               "eval_batch_size", "normalize", "std", "crop_size", "eval_crop", "test_crop", "augment",
               "erase_prob", "erase_area", "erase_ratio")

# A name that is not registered is a tensorflow-datasets name (cifar10, ...): sources.py's fallback.
DATASETS = Registry("dataset", section="data", facts={"how_to_get": ""}, reserved=DATA_FIELDS)
register_dataset = DATASETS.register
# batch ops run inside the jitted train step (ops.py): `fn(key, images, data) -> images`
AUGMENTATIONS = Registry("augmentation", section="data", key="augment", reserved=DATA_FIELDS)
register_augmentation = AUGMENTATIONS.register


def resolve_data(config) -> None:
  """Fills config.data with its dataset's and augmentation's settings (their defaults where the
  config does not set them) and checks it against them (registry.resolve_section)."""
  resolve_section(config, "data", (DATASETS, AUGMENTATIONS), DATA_FIELDS)


class DatasetNotFoundError(UserError):
  """The dataset a config asks for is not on this machine; the message says how to get it."""


@dataclasses.dataclass
class Split:
  """One split: `images` uint8 (N, H, W, C) (a NumPy array or an HDF5 dataset) and int32 `labels`."""
  images: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass
class Dataset:
  """Train / validation / test splits with their metadata."""
  name: str
  train: Split
  val: Split
  test: Split
  class_names: Sequence[str]
  mean: tuple[float, ...] | None = None  # per-channel mean of the training split, 0..255 units
  std: tuple[float, ...] | None = None  # per-channel standard deviation, 0..255 units
  mean_image: np.ndarray | None = None  # normalize="pixel_mean": the training split's (H, W, C), [0, 1] units

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train.images.shape[1:])


def check_dataset(ds, where: str) -> "Dataset":
  """`ds` (what the dataset component `where` returned) if it is a Dataset of uint8 NHWC splits with
  one int label per image; else a ConfigError naming the component."""
  if not isinstance(ds, Dataset):
    raise ConfigError(f"dataset {where} returned {type(ds).__name__}, not a cnnzoo.data.Dataset")
  for name in ("train", "val", "test"):
    split = getattr(ds, name)
    if not isinstance(split, Split):
      raise ConfigError(f"dataset {where}: its {name} split is a {type(split).__name__}, not a cnnzoo.data.Split")
    images, labels = split.images, np.asarray(split.labels)
    if getattr(images, "dtype", None) != np.uint8 or len(getattr(images, "shape", ())) != 4:
      raise ConfigError(f"dataset {where}: {name} images must be uint8 (N, H, W, C), not "
                        f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    if labels.ndim != 1 or len(labels) != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
      raise ConfigError(f"dataset {where}: {name} needs one integer label per image ({images.shape[0]} images, "
                        f"labels {labels.dtype} {labels.shape})")
  if not ds.class_names:
    raise ConfigError(f"dataset {where}: no class_names")
  return ds
