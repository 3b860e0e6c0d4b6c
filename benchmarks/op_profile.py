"""Where a config's compiled train step spends its time, op by op, from a JAX profiler trace.

  python -m benchmarks.op_profile --config=configs/minivggnet_cifar10.py [--batch_size=128] [--steps=5] [--top=25]

Runs `--steps` train steps of the config (its model, optimizer and augmentation, synthetic images of
the model's input shape) under `jax.profiler.trace`, reads the trace back (`jax.profiler.ProfileData`)
and sums the time of every XLA:CPU op (thunk) per step. Each op is put in a part by its HLO metadata
(the JAX op it came from): convolution forward, convolution input gradient, convolution kernel
gradient, max pooling (forward and gradient), BatchNorm, dense layers, the optimizer update, the
augmentation, and "elementwise / other" (ReLU, the loss, layout copies, ...). Then the `--top` ops
with their HLO. The profiler slows the step itself (its figure is printed beside the unprofiled one);
the parts' shares are what this is for.
"""

import collections
import re
import tempfile
import time

from absl import app, flags

_CONFIG = flags.DEFINE_string("config", "configs/minivggnet_cifar10.py", "The config file (:ARGS allowed).")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 5, "Profiled steps (after one warm-up step).")
_TOP = flags.DEFINE_integer("top", 25, "How many single ops to list.")


def load_config(spec: str, batch_size: int):
  import importlib.util
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("profiled_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  c = module.get_config(arg or None)
  image_shape = tuple(c.model.get("input_shape") or ()) or None
  from cnnzoo import models
  info = models.model_info(c.model.name)
  c.data.name = "synthetic"
  c.model.input_shape = image_shape or tuple(info.input_shape)
  c.data.synthetic_sizes = (batch_size * (_STEPS.value + 1), batch_size, batch_size)
  c.data.batch_size = c.data.eval_batch_size = batch_size
  for key in ("plot", "tensorboard", "progress"):
    c.monitor[key] = False
  return c


def part_of(op_name: str, kind: str, out_shape: str, kernel_shapes: set) -> str:
  """The part of the step an HLO op belongs to, from its metadata op_name and output shape."""
  backward = "transpose(" in op_name
  in_model = "jvp(" in op_name or backward
  conv_module = re.search(r"(^|/|_)(stem_)?(proj_)?conv\d*/", op_name)
  if "conv_general_dilated" in op_name or kind == "convolution":
    if not backward:
      return "conv forward"
    dims = tuple(sorted(int(d) for d in re.findall(r"\d+", out_shape.split("{")[0])))
    return "conv kernel gradient" if dims in kernel_shapes else "conv input gradient"
  if conv_module and backward and "reduce_sum" not in op_name:
    return "conv kernel gradient"  # cnnzoo's im2col form: patches, matmuls, the chunk loop
  if "pool" in op_name.lower() or "reduce_window" in op_name or "select_and_scatter" in op_name:
    return "max pooling"
  if re.search(r"BatchNorm|(^|/|_)bn\d*/|batch_norm", op_name):
    return "BatchNorm"
  if "dot_general" in op_name and in_model:
    return "dense"
  if "relu" in op_name or "Dropout" in op_name:
    return "ReLU / dropout"
  if in_model:
    return "elementwise / other in the model"
  if not op_name:
    return "no metadata (copies, im2col patch concatenation, ...)"
  if "preprocess" in op_name or "crop" in op_name or "flip" in op_name or "augment" in op_name:
    return "augmentation"
  return "loss, optimizer, other outside the model"


def main(argv):
  del argv
  from cnnzoo import cli
  cli.choose_platform()  # the CPU flags cnnzoo's entry points use
  import jax
  from cnnzoo.training import loop
  config = load_config(_CONFIG.value, _BATCH.value)
  run = loop.build(config)
  batches = list(run.train_loader.epoch(0))[:_STEPS.value + 1]
  state, m = run.train_step(run.state, batches[0])
  jax.block_until_ready(m)
  t = time.perf_counter()
  for b in batches[1:]:
    state, m = run.train_step(state, b)
  jax.block_until_ready(m)
  plain = (time.perf_counter() - t) / _STEPS.value
  with tempfile.TemporaryDirectory() as d:
    t = time.perf_counter()
    with jax.profiler.trace(d):
      for b in batches[1:]:
        state, m = run.train_step(state, b)
      jax.block_until_ready(m)
    profiled = (time.perf_counter() - t) / _STEPS.value
    import glob
    data = jax.profiler.ProfileData.from_file(glob.glob(f"{d}/**/*.xplane.pb", recursive=True)[0])
    per_op = collections.Counter()
    for plane in data.planes:
      for line in plane.lines:
        if "XLA" not in line.name:
          continue
        for ev in line.events:
          if not ev.name.startswith("ThunkExecutor") and not ev.name.startswith("SlinkyThreadPool"):
            per_op[ev.name] += ev.duration_ns / 1e6 / _STEPS.value
  hlo = run.train_step.jitted.lower(state, batches[0], run.train_step.source).compile().as_text()
  kernel_shapes = {tuple(sorted(leaf.shape)) for leaf in jax.tree.leaves(run.state.params) if leaf.ndim == 4}
  parts, described = collections.Counter(), {}
  for name, ms in per_op.items():
    m = re.search(r"^\s*(?:ROOT )?%?" + re.escape(name) + r" = (\S+) (\w[\w-]*)\(.*?(?:op_name=\"([^\"]*)\")?",
                  hlo, re.M)
    out_shape, kind, op_name = (m.group(1), m.group(2), m.group(3) or "") if m else ("", "", "")
    if kind == "fusion":  # a fusion's metadata is its root's; its kind= says what it wraps
      fm = re.search(r"^\s*(?:ROOT )?%?" + re.escape(name) + r" = [^\n]*?op_name=\"([^\"]*)\"", hlo, re.M)
      op_name = fm.group(1) if fm else op_name
    part = part_of(op_name, kind, out_shape, kernel_shapes)
    parts[part] += ms
    described[name] = (part, out_shape, op_name)
  total = sum(parts.values())
  print(f"{config.model.name}, batch {_BATCH.value}: {plain * 1000:.0f} ms/step "
        f"({profiled * 1000:.0f} under the profiler; ops add up to {total:.0f} ms)")
  print(f"\n{'part':38s} {'ms/step':>8s} {'share':>6s}")
  for part, ms in parts.most_common():
    print(f"{part:38s} {ms:8.1f} {100 * ms / total:5.1f}%")
  print(f"\n{'ms':>7s}  {'op':28s} {'part':24s} output / from")
  for name, ms in per_op.most_common(_TOP.value):
    part, out_shape, op_name = described[name]
    print(f"{ms:7.2f}  {name[:28]:28s} {part[:24]:24s} {out_shape[:40]} {op_name[-60:]}")


if __name__ == "__main__":
  app.run(main)
