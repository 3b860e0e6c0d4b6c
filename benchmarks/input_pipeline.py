"""Input pipeline throughput: HDF5 -> host batches, host -> device, on-device augmentation.

  python -m benchmarks.input_pipeline --size=32 --batch_size=128

Writes a synthetic HDF5 split of --num_images images of SIZE x SIZE x 3 (the builders' format and
chunking) to a temporary folder, then times the three stages separately and prints img/s for each.
"""

import os
import tempfile
import time

from absl import app, flags

_SIZE = flags.DEFINE_integer("size", 32, "Image side.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Global batch size.")
_NUM = flags.DEFINE_integer("num_images", 8192, "Images in the synthetic split.")
_AUGMENT = flags.DEFINE_string("augment", "crop_flip", "Augmentation to time (configs/base.py names).")
_IN_MEMORY = flags.DEFINE_bool("in_memory", True, "Read the split into memory first (what load_hdf5 does "
                               "below data.max_in_memory_gb), else read each batch from the file.")


def main(argv):
  del argv
  from cnnzoo import cli, parallel
  cli.choose_platform()
  import h5py
  import jax
  import numpy as np

  from cnnzoo.data import Loader, sources
  from cnnzoo.data.ops import augment, normalize
  from configs import base

  size, batch = _SIZE.value, _BATCH.value
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "train.h5")
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
      f.create_dataset("images", data=rng.integers(0, 256, (_NUM.value, size, size, 3), dtype=np.uint8),
                       chunks=(64, size, size, 3))
      f["labels"] = rng.integers(0, 10, _NUM.value).astype(np.int32)
    with h5py.File(path, "r") as f:
      t = time.perf_counter()
      split = sources.Split(f["images"][()] if _IN_MEMORY.value else f["images"], np.asarray(f["labels"]))
      load_s = time.perf_counter() - t
      mesh = parallel.make_mesh()
      loader = Loader(split, batch, mesh, train=True, seed=0)
      host = []
      t = time.perf_counter()
      order = loader.order(0)
      for step in range(loader.steps_per_epoch):
        host.append(loader._gather(order[step * batch:(step + 1) * batch], np.ones(batch, bool)))
      hdf5_s = time.perf_counter() - t
    sharding = parallel.batch_sharding(mesh)
    t = time.perf_counter()
    placed = [parallel.put_global_batch(b, sharding) for b in host]
    jax.block_until_ready(placed)
    put_s = time.perf_counter() - t
    cfg = base.get_config().data
    cfg.augment = _AUGMENT.value
    fn = jax.jit(lambda k, x: normalize(augment(k, x, cfg), "scale"))
    jax.block_until_ready(fn(jax.random.key(0), placed[0]["image"]))
    t = time.perf_counter()
    outs = [fn(jax.random.key(i), b["image"]) for i, b in enumerate(placed)]
    jax.block_until_ready(outs)
    aug_s = time.perf_counter() - t
  n = loader.steps_per_epoch * batch
  print(f"{size}x{size}x3, batch {batch}, {n} images, {jax.device_count()} x {jax.devices()[0].device_kind}")
  if _IN_MEMORY.value:
    print(f"HDF5 -> memory (once): {_NUM.value / load_s:,.0f} img/s")
  print(f"{'memory' if _IN_MEMORY.value else 'HDF5'} -> host batches: {n / hdf5_s:,.0f} img/s")
  print(f"host -> device: {n / put_s:,.0f} img/s")
  print(f"on-device {_AUGMENT.value} + normalize: {n / aug_s:,.0f} img/s")


if __name__ == "__main__":
  app.run(main)
