"""Batches of a split, placed on the device mesh with the batch sharding.

Training order is a permutation seeded by (seed, epoch), so any position (epoch, step) can be
re-entered exactly on resume. The last partial training batch is dropped (shapes stay static);
evaluation batches cover every example once, the last one padded and flagged by `mask`.

With `on_device`, the split's uint8 images and labels are copied to every device once
(`loader.source`) and batches carry only their example indices: the jitted step gathers the
images itself (`materialize`), so a step costs no host copy and no extra launch. Otherwise
batches are gathered on the host (from memory or HDF5) by a background thread a few batches
ahead and transferred. Both give identical batches once materialized.
"""

import collections
import concurrent.futures
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from cnnzoo import parallel
from cnnzoo.data.sources import Split
from cnnzoo.errors import ConfigError, UserError


def materialize(batch: dict, source) -> dict:
  """Inside a jitted step: an index batch of a device-resident split -> its images and labels
  (`source` = (images, labels), `Loader.source`); a batch that carries images is returned as is."""
  if "index" not in batch:
    return batch
  images, labels = source
  return {"image": jnp.take(images, batch["index"], axis=0),
          "label": jnp.take(labels, batch["index"], axis=0), "mask": batch["mask"]}


class Loader:
  """Yields global batches of one split: `{"image": uint8 NHWC, "label": int32, "mask": bool}`,
  or `{"index": int32, "mask": bool}` into `source` when the split is device-resident."""

  def __init__(self, split: Split, batch_size: int, mesh, *, train: bool, seed: int = 0,
               on_device: bool = False, prefetch: int = 2):
    parallel.check_batch_size(batch_size, mesh)
    if train and len(split) < batch_size:
      raise ConfigError(f"the training split has {len(split)} images, fewer than one batch of "
                       f"{batch_size}; lower --config.data.batch_size")
    self.split, self.batch_size, self.train, self.seed = split, batch_size, train, seed
    self.sharding = parallel.batch_sharding(mesh)
    self._rows = parallel.process_slice(batch_size)
    self.on_device, self.prefetch, self._full_mask = on_device, prefetch, None
    self.source = None  # (images, labels) on every device when on_device
    if on_device:
      repl = parallel.replicated(mesh)
      self.source = (jax.device_put(np.asarray(split.images), repl),
                     jax.device_put(np.asarray(split.labels, np.int32), repl))

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
    """Batches of `epoch` from batch `start_step` on.

    Host batches are prepared `prefetch` batches ahead by a background thread (HDF5 reads and the
    host-to-device copy overlap the running step); the order never changes.
    """
    order = self.order(epoch)
    make = self._device_batch if self.on_device else self._host_batch
    yield from self._prefetched(lambda step: make(order, step), range(start_step, self.steps_per_epoch))

  def chunks(self, epoch: int, size: int) -> Iterator[tuple[dict, int]]:
    """The batches of `epoch` `size` at a time, stacked on a leading axis, with the number of real
    batches in each: index batches ({"index", "mask"}: (size, batch)) of a device-resident split,
    else host batches ({"image": (size, batch, H, W, C), "label", "mask"}) prepared `prefetch`
    chunks ahead. The last chunk is filled up with copies of its last batch, which are not run."""
    order = self.order(epoch)
    sharding = parallel.stacked_batch_sharding(self.sharding.mesh)

    def chunk(start):
      count = min(size, self.steps_per_epoch - start)
      rows = [self._indices(order, start + min(i, count - 1)) for i in range(size)]
      if self.on_device:
        idx, mask = zip(*rows)
        local = {"index": np.stack(idx)[:, self._rows].astype(np.int32), "mask": np.stack(mask)[:, self._rows]}
      else:
        parts = [self._gather(idx[self._rows], mask[self._rows]) for idx, mask in rows]
        local = {k: np.stack([p[k] for p in parts]) for k in parts[0]}
      return parallel.put_global_batch(local, sharding), count

    yield from self._prefetched(chunk, range(0, self.steps_per_epoch, size))

  def _prefetched(self, make, items) -> Iterator:
    """make(item) for each item in order; host batches made `prefetch` ahead by a background thread
    (HDF5 reads and the host-to-device copy overlap the running step)."""
    if self.on_device or not self.prefetch:  # index batches are cheap: no thread needed
      for item in items:
        yield make(item)
      return
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cnnzoo-prefetch") as pool:
      pending = collections.deque(pool.submit(make, item) for item in items[:self.prefetch])
      upcoming = iter(items[self.prefetch:])
      try:
        while pending:
          done = pending.popleft().result()
          item = next(upcoming, None)
          if item is not None:
            pending.append(pool.submit(make, item))
          yield done
      finally:  # the consumer stopped early: drop what was queued
        for future in pending:
          future.cancel()

  def _indices(self, order: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    idx = order[step * self.batch_size:(step + 1) * self.batch_size]
    mask = np.ones(self.batch_size, bool)
    if len(idx) < self.batch_size:  # the padded last evaluation batch
      mask[len(idx):] = False
      idx = np.concatenate([idx, np.zeros(self.batch_size - len(idx), idx.dtype)])
    return idx, mask

  def _device_batch(self, order: np.ndarray, step: int) -> dict:
    idx, mask = self._indices(order, step)
    index = parallel.put_global_batch(idx[self._rows].astype(np.int32), self.sharding)
    if mask.all():  # every training batch: one device copy of the all-true mask serves them all
      if self._full_mask is None:
        self._full_mask = parallel.put_global_batch(mask[self._rows], self.sharding)
      return {"index": index, "mask": self._full_mask}
    return {"index": index, "mask": parallel.put_global_batch(mask[self._rows], self.sharding)}

  def _host_batch(self, order: np.ndarray, step: int) -> dict:
    idx, mask = self._indices(order, step)
    return parallel.put_global_batch(self._gather(idx[self._rows], mask[self._rows]), self.sharding)

  def _gather(self, idx: np.ndarray, mask: np.ndarray) -> dict:
    images = self.split.images
    if isinstance(images, np.ndarray):
      batch_images = images[idx]
    else:  # h5py reads need increasing indices
      uniq, inverse = np.unique(idx, return_inverse=True)
      try:
        batch_images = np.asarray(images[uniq])[inverse]
      except OSError as e:  # an HDF5 split streamed from disk whose chunk is damaged
        if not hasattr(images, "file"):  # not an h5py dataset: the error is its own
          raise
        raise UserError(f"cannot read images {uniq[0]}..{uniq[-1]} of {images.file.filename}: it is damaged "
                        f"({e}); rebuild the dataset with `python -m experiments.build_dataset ... --overwrite`") from None
    return {"image": batch_images, "label": np.asarray(self.split.labels[idx], np.int32), "mask": mask}


def fits_on_device(split: Split, setting, max_gb: float) -> bool:
  """The `data.on_device` choice: "auto" keeps a split on the device when its images take at most
  `max_gb` (every dataset of the journal does on a modern GPU: Tiny-ImageNet is 1.2 GB as uint8)."""
  if setting in (True, "yes", "true"):
    return True
  if setting in (False, "no", "false"):
    return False
  if setting != "auto":
    raise ConfigError(f"data.on_device must be auto, yes or no, not {setting!r}")
  return split.images.size * split.images.dtype.itemsize <= max_gb * 2**30


