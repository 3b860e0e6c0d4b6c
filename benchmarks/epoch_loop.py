"""An epoch's train steps as one compiled loop against one call a step (issue 11.3).

  python -m benchmarks.epoch_loop --config=configs/lenet_digits.py
  python -m benchmarks.epoch_loop --config=configs/minivggnet_cifar10.py --config.data.name=synthetic \
      --config.model.input_shape="(32, 32, 3)" --config.model.num_classes=10 \
      --config.data.synthetic_sizes="(1280, 64, 64)"

Builds the config's run twice, `steps_per_dispatch=1` (a call a step) and `--per_call` (0 = the
loop's auto: one call for the whole epoch, the progress bar being off here), trains one epoch with
each (compilation), then `--rounds` more epochs alternately, timing each with the loop's
`train_epoch`. Last, the two runs' parameters, BatchNorm statistics and step are compared bit for
bit (both have trained the same epochs). The last line is
`per step: A ms  loop: B ms  (x C)  bitwise: True|False`.
"""

import time

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed epochs of each, alternated.")
_PER_CALL = flags.DEFINE_integer("per_call", 0, "steps_per_dispatch of the loop run (0 = auto).")


def main(argv):
  del argv
  from cnnzoo import cli
  cli.choose_platform()
  import jax
  import numpy as np

  from cnnzoo.training import loop, monitor

  def build(per_call):
    config = _CONFIG.value.copy_and_resolve_references()
    config.monitor.progress = False
    config.steps_per_dispatch = per_call
    return loop.build(config)

  runs = {"per step": build(1), "loop": build(_PER_CALL.value)}
  states = {name: run.state for name, run in runs.items()}
  bar = monitor.ProgressBar(False)
  steps = runs["loop"].train_loader.steps_per_epoch
  size = runs["loop"].train_chunk.size if runs["loop"].train_chunk else 1
  print(f"{runs['loop'].model_name}: {steps} steps an epoch at batch {runs['loop'].train_loader.batch_size}, "
        f"the loop {size} steps a call, {jax.device_count()} x {jax.devices()[0].device_kind}")
  times = {name: [] for name in runs}
  for epoch in range(_ROUNDS.value + 1):
    for name, run in runs.items():
      t = time.perf_counter()
      states[name], sums, _ = loop.train_epoch(run, states[name], epoch, bar, log_every=20)
      jax.block_until_ready(states[name].params)
      seconds = time.perf_counter() - t
      times[name].append(seconds * 1e3 / steps)
      print(f"epoch {epoch + 1} {name}: {seconds:.2f} s ({seconds * 1e3 / steps:.1f} ms a step)"
            + ("  (compiles)" if epoch == 0 else "") + f"  loss {float(sums['loss']) / float(sums['count']):.6f}")
  flat = lambda s: np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get((s.params, s.batch_stats, s.step)))])
  same = np.array_equal(flat(states["per step"]), flat(states["loop"]))
  a, b = (float(np.median(times[name][1:])) for name in runs)
  print(f"per step: {a:.1f} ms  loop: {b:.1f} ms  (x {a / b:.2f})  bitwise: {same}")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
