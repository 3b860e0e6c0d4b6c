"""Batches of a split, placed on the device mesh with the batch sharding.

Training order is a permutation seeded by (seed, epoch), so any position (epoch, step) can be
re-entered exactly on resume. The last partial training batch is dropped (shapes stay static);
evaluation batches cover every example once, the last one padded and flagged by `mask`.
"""

from typing import Iterator

import numpy as np

from cnnzoo import parallel
from cnnzoo.data.sources import Split
from cnnzoo.errors import ConfigError


class Loader:
  """Yields global batches `{"image": uint8 NHWC, "label": int32, "mask": bool}` of one split."""

  def __init__(self, split: Split, batch_size: int, mesh, *, train: bool, seed: int = 0):
    parallel.check_batch_size(batch_size, mesh)
    if train and len(split) < batch_size:
      raise ConfigError(f"the training split has {len(split)} images, fewer than one batch of "
                       f"{batch_size}; lower --config.data.batch_size")
    self.split, self.batch_size, self.train, self.seed = split, batch_size, train, seed
    self.sharding = parallel.batch_sharding(mesh)
    self._rows = parallel.process_slice(batch_size)

  @property
  def steps_per_epoch(self) -> int:
    n = len(self.split)
    return n // self.batch_size if self.train else -(-n // self.batch_size)

  def order(self, epoch: int) -> np.ndarray:
    """Example indices of `epoch` (a fixed permutation per (seed, epoch) when training)."""
    n = len(self.split)
    if not self.train:
      return np.arange(n)
    return np.random.default_rng([self.seed, epoch]).permutation(n)

  def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict]:
    """Batches of `epoch` from batch `start_step` on."""
    order = self.order(epoch)
    for step in range(start_step, self.steps_per_epoch):
      idx = order[step * self.batch_size:(step + 1) * self.batch_size]
      mask = np.ones(self.batch_size, bool)
      if len(idx) < self.batch_size:  # the padded last evaluation batch
        mask[len(idx):] = False
        idx = np.concatenate([idx, np.zeros(self.batch_size - len(idx), idx.dtype)])
      local = idx[self._rows]
      yield parallel.put_global_batch(self._gather(local, mask[self._rows]), self.sharding)

  def _gather(self, idx: np.ndarray, mask: np.ndarray) -> dict:
    images = self.split.images
    if isinstance(images, np.ndarray):
      batch_images = images[idx]
    else:  # h5py reads need increasing indices
      uniq, inverse = np.unique(idx, return_inverse=True)
      batch_images = np.asarray(images[uniq])[inverse]
    return {"image": batch_images, "label": np.asarray(self.split.labels[idx], np.int32), "mask": mask}


