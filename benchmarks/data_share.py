"""Share of training time spent on data loading and augmentation, inside a real run.

  python -m benchmarks.data_share --config=configs/lenet_digits.py
  python -m benchmarks.data_share --config=configs/minivggnet_cifar10.py --hdf5_images=2048 \
      --config.data.augment=crop_flip --config.data.on_device=no --config.data.max_in_memory_gb=0

Builds the config's run (`loop.build`), trains `--epochs` epochs with the loop's `train_epoch`
(which records how long each step waited for its batch: `data_seconds` in history.json), then
measures the input pipeline's cost the way input pipelines are usually judged, against a fixed
batch: three step loops of `--steps` steps each, interleaved and repeated `--repeats` times (best
run each, the machine being shared):
  A. the config's train step on the loader's batches (what training does),
  B. the same step on one fixed, already placed batch (no data loading),
  C. B with augmentation replaced by normalization only.
data share = (A - B) / A, augmentation share = (B - C) / A, total = (A - C) / A.
`--hdf5_images=N` first writes N random 32x32x3 images in the builders' HDF5 format and trains
from those files. The last line is `data share: X %  augmentation share: Y %  total: Z %`.
"""

import copy
import functools
import os
import tempfile
import time

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Epochs trained first with the loop's own timings.")
_STEPS = flags.DEFINE_integer("steps", 30, "Steps per timed loop (at most one epoch's).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Interleaved repetitions of the three loops; the best counts.")
_HDF5 = flags.DEFINE_integer("hdf5_images", 0, "Write and use a random 32x32x3 HDF5 dataset of this many images.")


def time_loops(loops, n, repeats):
  """Seconds per step of each `loop(n)` (a function running n steps and blocking on the result),
  interleaved so that load on the machine hits all alike; the best of `repeats` runs each."""
  best = [float("inf")] * len(loops)
  for _ in range(repeats):
    for i, loop in enumerate(loops):
      t = time.perf_counter()
      loop(n)
      best[i] = min(best[i], (time.perf_counter() - t) / n)
  return best


def main(argv):
  del argv
  from cnnzoo import cli, parallel
  cli.choose_platform()
  import jax
  import numpy as np

  from cnnzoo.data import builders, ops
  from cnnzoo.data.loader import materialize
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

  plain_cfg = copy.deepcopy(config.data)
  plain_cfg.augment, plain_cfg.erase_prob, plain_cfg.eval_crop = "none", 0.0, "center"
  _, plain_views, _ = ops.make_preprocess(plain_cfg, run.dataset.mean, run.dataset.std)
  common = dict(num_classes=run.identity["num_classes"], l2=config.optim.l2)
  repl, batch_sh = parallel.replicated(run.mesh), parallel.batch_sharding(run.mesh)
  plain = functools.partial(steps.train_step, preprocess=lambda k, x: plain_views(x)[0], **common)
  plain_step = loop.Step(jax.jit(lambda s, b, source: plain(s, materialize(b, source)),
                                 in_shardings=(repl, batch_sh, repl), out_shardings=(repl, repl),
                                 donate_argnums=0), run.train_loader.source)
  fixed = next(run.train_loader.epoch(0))
  if "index" in fixed:  # a device-resident split: B and C get the gathered images themselves
    fixed = jax.jit(materialize, out_shardings=batch_sh)(fixed, run.train_loader.source)
  n = min(_STEPS.value, run.train_loader.steps_per_epoch)
  states = {}
  epochs = iter(range(1000, 10 ** 6))

  def stepper(name, step, batches):
    states[name] = jax.tree.map(lambda x: x.copy() if hasattr(x, "copy") else x, state)

    def loop_n(k):
      s, m = states[name], None
      for _, batch in zip(range(k), batches()):
        s, m = step(s, batch)
      jax.block_until_ready(m)
      states[name] = s
    loop_n(1)  # compile
    return loop_n

  loader = stepper("loader", run.train_step, lambda: run.train_loader.epoch(next(epochs)))
  fixed_aug = stepper("fixed", run.train_step, lambda: iter(lambda: fixed, None))
  fixed_plain = stepper("plain", plain_step, lambda: iter(lambda: fixed, None))
  a, b, c = time_loops([loader, fixed_aug, fixed_plain], n, _REPEATS.value)
  data_name = "random HDF5" if _HDF5.value else run.dataset.name
  print(f"{config.model.name} on {data_name} ({config.data.augment}, on_device={run.train_loader.on_device}, "
        f"prefetch {config.data.prefetch}, batch {config.data.batch_size}): ms/step A (loader) {a * 1e3:.2f}, "
        f"B (fixed batch) {b * 1e3:.2f}, C (fixed, no augmentation) {c * 1e3:.2f}")
  print(f"data share: {100 * (a - b) / a:.2f} %  augmentation share: {100 * (b - c) / a:.2f} %  "
        f"total: {100 * (a - c) / a:.2f} %")
  tmp.cleanup()


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
