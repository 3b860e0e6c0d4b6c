"""Share of a training epoch spent on data loading and augmentation, inside a real run.

  python -m benchmarks.data_share --config=configs/lenet_digits.py --epochs=5
  python -m benchmarks.data_share --config=configs/minivggnet_cifar10.py --hdf5_images=2048 \\
      --config.data.augment=crop_flip --config.data.on_device=no --config.data.max_in_memory_gb=0

Builds the config's run (`loop.build`) and trains `--epochs` epochs with the loop's `train_epoch`,
which times how long each step waits for its batch (`data_seconds`, also in history.json). The
augmentation runs inside the jitted train step, so its share is measured apart: the same step is
timed on one batch with the config's augmentation and with normalization only (best of
5 runs each). `--hdf5_images=N`
first writes N random CIFAR-shaped images in the builders' format and trains from those files.
Prints one line per epoch, then `data share: X %  augmentation share: Y %  total: Z %` over the
epochs after the first (which compiles).
"""

import copy
import functools
import os
import tempfile
import time

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_EPOCHS = flags.DEFINE_integer("epochs", 5, "Epochs to train (the first one compiles and is reported apart).")
_STEPS = flags.DEFINE_integer("aug_steps", 20, "Steps per timing run for the augmentation share (best of 5; "
                              "0: data share only).")
_HDF5 = flags.DEFINE_integer("hdf5_images", 0, "Write and use a random 32x32x3 HDF5 dataset of this many images.")


def time_steps(step_fns, state, batch, n, repeats=5):
  """Seconds per step of each jitted step in `step_fns`: runs of `n` steps, interleaved so that
  load on the (shared) machine hits all alike, the best of `repeats` runs each."""
  import jax
  states, best = [], [float("inf")] * len(step_fns)
  for step in step_fns:  # compile and warm up
    s, m = step(jax.tree.map(lambda x: x.copy() if hasattr(x, "copy") else x, state), batch)
    jax.block_until_ready(m)
    states.append(s)
  for _ in range(repeats):
    for i, step in enumerate(step_fns):
      t = time.perf_counter()
      for _ in range(n):
        states[i], m = step(states[i], batch)
      jax.block_until_ready(m)
      best[i] = min(best[i], (time.perf_counter() - t) / n)
  return best


def main(argv):
  del argv
  from cnnzoo import parallel
  parallel.choose_platform()
  import jax
  import numpy as np

  from cnnzoo.data import builders, ops
  from cnnzoo.training import loop, monitor, steps

  config = _CONFIG.value
  config.monitor.progress = False
  tmp = tempfile.TemporaryDirectory()
  if _HDF5.value:
    rng = np.random.default_rng(0)
    n = _HDF5.value
    splits = {s: (rng.integers(0, 256, (k, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, k))
              for s, k in (("train", n), ("val", n // 4), ("test", n // 4))}
    builders.write_arrays(tmp.name, splits, [str(i) for i in range(10)])
    config.data.name, config.data.dir = "hdf5", tmp.name
  run = loop.build(config)
  state, bar = run.state, monitor.ProgressBar(False)
  rows = []
  for epoch in range(_EPOCHS.value):
    t = time.perf_counter()
    state, sums, data_s = loop.train_epoch(run, state, epoch, bar, config.monitor.log_every_steps)
    jax.block_until_ready(state.params)
    rows.append((time.perf_counter() - t, data_s))
    print(f"epoch {epoch + 1}: {rows[-1][0]:.2f} s, waiting for data {data_s:.3f} s "
          f"({100 * data_s / rows[-1][0]:.1f} %)", flush=True)

  later = rows[1:] or rows
  data_share = sum(r[1] for r in later) / sum(r[0] for r in later)
  if not _STEPS.value:
    print(f"data share: {100 * data_share:.2f} %")
    return
  plain_cfg = copy.deepcopy(config.data)
  plain_cfg.augment, plain_cfg.erase_prob, plain_cfg.eval_crop = "none", 0.0, "center"
  _, plain_views, _ = ops.make_preprocess(plain_cfg, run.dataset.mean, run.dataset.std)
  common = dict(num_classes=run.identity["num_classes"], l2=config.optim.l2)
  repl, batch_sh = parallel.replicated(run.mesh), parallel.batch_sharding(run.mesh)
  plain_step = jax.jit(functools.partial(steps.train_step, preprocess=lambda k, x: plain_views(x)[0], **common),
                       in_shardings=(repl, batch_sh), out_shardings=(repl, repl), donate_argnums=0)
  batch = next(run.train_loader.epoch(0))
  with_aug, without = time_steps([run.train_step, plain_step], state, batch, _STEPS.value)
  aug_share = (with_aug - without) / with_aug  # negative: below the timing noise

  total = data_share + max(aug_share, 0.0) * (1 - data_share)
  data_name = "random HDF5" if _HDF5.value else run.dataset.name
  print(f"{config.model.name} on {data_name} ({config.data.augment}, on_device="
        f"{run.train_loader.on_device}, prefetch {config.data.prefetch}): step {with_aug * 1000:.1f} ms "
        f"with augmentation, {without * 1000:.1f} ms without")
  print(f"data share: {100 * data_share:.2f} %  augmentation share: {100 * aug_share:.2f} %  "
        f"total: {100 * total:.2f} %")
  tmp.cleanup()


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
