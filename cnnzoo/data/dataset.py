"""The dataset every source returns: uint8 NHWC splits, int32 labels, class names, channel statistics."""

import dataclasses
from typing import Sequence

import numpy as np

from cnnzoo.errors import UserError


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
