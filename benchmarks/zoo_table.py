"""One row per model family at its native input: train and inference speed, FLOPs, and the share of
this machine's measured float32 matmul peak.

  python -m benchmarks.zoo_table [--models=lenet5,vgg16] [--seconds=4] [--out=zoo_table.json]

First it measures the peak: the median of five 2048x2048x2048 float32 `jnp.dot`s. Then, per model:
- train: the loop's jitted `train_step` (benchmarks.train_throughput.build: SGD momentum, L2,
  uint8 -> float preprocessing on the device), the first call (compile) timed alone, one warm-up
  step, then steps until `--seconds` have passed (at least 2);
- inference: `model.apply(train=False)` jitted on the same batch, timed the same way;
- GFLOPs per image of the forward pass from XLA's cost analysis of the compiled inference program;
  a train step counts 3x that (forward, input gradient, kernel gradient: the usual estimate; the
  train program's own count misses the im2col kernel gradients, which run in a loop);
- the share of peak: achieved FLOP/s over the measured matmul FLOP/s.
Prints a Markdown table (benchmarks/README.md keeps the last one) and writes the rows as JSON.
"""

import json
import statistics
import time

from absl import app, flags

# (family, registry name, batch): one representative per family, at its native input size
FAMILIES = (
    ("ShallowNet", "shallownet", 128),
    ("LeNet-5", "lenet5", 128),
    ("MiniVGGNet", "minivggnet", 128),
    ("seed 003's CIFAR net", "seed003_cifar_net", 128),
    ("AlexNet", "alexnet", 16),
    ("VGG16", "vgg16", 8),
    ("GoogLeNet", "googlenet", 16),
    ("MiniGoogLeNet", "minigooglenet", 128),
    ("DeeperGoogLeNet", "deepergooglenet", 64),
    ("Inception v3", "inception_v3", 8),
    ("Inception v4", "inception_v4", 8),
    ("Inception-ResNet v2", "inception_resnet_v2", 8),
    ("ResNet CIFAR v1 (20 layers)", "resnet20_v1", 128),
    ("ResNet CIFAR v2 (56 layers)", "resnet56_v2", 128),
    ("ResNet, the journal's stages / filters (CIFAR)", "resnet_cifar", 128),
    ("ResNet, the journal's Tiny-ImageNet net", "resnet_tiny", 64),
    ("ResNet-18", "resnet18", 16),
    ("ResNet-50", "resnet50", 16),
)

_MODELS = flags.DEFINE_list("models", [], "Registry names to measure (default: one per family).")
_SECONDS = flags.DEFINE_float("seconds", 4.0, "Timed seconds per measurement (at least 2 calls).")
_OUT = flags.DEFINE_string("out", "", "Also write the rows to this JSON file.")


def matmul_peak_gflops(n: int = 2048) -> float:
  """float32 GFLOP/s of an n x n x n jnp.dot (median of 5 after a warm-up)."""
  import jax
  import jax.numpy as jnp
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  dot(a, a).block_until_ready()
  times = []
  for _ in range(5):
    t = time.perf_counter()
    dot(a, a).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2 * n**3 / statistics.median(times) / 1e9


def timed(fn, seconds: float) -> tuple[float, float]:
  """(first call seconds, seconds per call): one warm-up call, then calls until `seconds` pass."""
  import jax
  t = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t
  jax.block_until_ready(fn())
  calls, t = 0, time.perf_counter()
  while calls < 2 or time.perf_counter() - t < seconds:
    jax.block_until_ready(fn())
    calls += 1
  return first, (time.perf_counter() - t) / calls


def measure(name: str, batch_size: int, seconds: float) -> dict:
  import jax

  from benchmarks import train_throughput
  from cnnzoo import models
  from cnnzoo.data.ops import normalize
  from cnnzoo.kernels import dispatch
  step, state, batch = train_throughput.build(name, batch_size)
  info = models.model_info(name)
  model = models.create_model(name, num_classes=info.num_classes)
  infer = jax.jit(lambda v, x: model.apply(v, normalize(x, "scale"), train=False))
  variables = state.variables(state.params)
  compiled = infer.lower(variables, batch["image"]).compile()
  cost = compiled.cost_analysis()
  if dispatch.active().name == "onednn":  # XLA counts no FLOPs inside oneDNN's FFI calls: count XLA's own form
    with dispatch.use(dispatch.active().without_ffi()):
      cost = jax.jit(lambda v, x: model.apply(v, normalize(x, "scale"), train=False)).lower(
          variables, batch["image"]).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  forward_gflops = float(cost["flops"]) / batch_size / 1e9
  infer_first, infer_s = timed(lambda: compiled(variables, batch["image"]), seconds)

  box = {"state": state}

  def train_call():
    box["state"], metrics = step(box["state"], batch)
    return metrics

  train_first, train_s = timed(train_call, seconds)
  return {"model": name, "input": "x".join(map(str, info.input_shape)), "batch": batch_size,
          "params_m": sum(x.size for x in jax.tree.leaves(state.params)) / 1e6,
          "forward_gflops": forward_gflops, "train_first_s": train_first, "train_ms": train_s * 1e3,
          "train_img_s": batch_size / train_s, "infer_first_s": infer_first, "infer_ms": infer_s * 1e3,
          "infer_img_s": batch_size / infer_s}


def main(argv):
  del argv
  from cnnzoo import cli
  cli.choose_platform()
  import jax
  rows = [f for f in FAMILIES if not _MODELS.value or f[1] in _MODELS.value]
  peak = matmul_peak_gflops()
  devices = jax.devices()
  print(f"{len(devices)} x {devices[0].device_kind}, jax {jax.__version__}; float32 matmul peak "
        f"{peak:.1f} GFLOP/s (2048^3 jnp.dot)", flush=True)
  print("| family | model | input | batch | params (M) | forward GFLOPs / image | train ms / step | train img/s "
        "| train share of peak | inference img/s | inference share of peak | first train step (compile) |")
  print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
  out = []
  for family, name, batch in rows:
    r = measure(name, batch, _SECONDS.value)
    r.update(family=family, peak_gflops=peak,
             train_share=3 * r["forward_gflops"] * r["train_img_s"] / peak,
             infer_share=r["forward_gflops"] * r["infer_img_s"] / peak)
    out.append(r)
    print(f"| {family} | `{name}` | {r['input']} | {batch} | {r['params_m']:.2f} | {r['forward_gflops']:.4g} | "
          f"{r['train_ms']:,.0f} | {r['train_img_s']:,.1f} | {r['train_share']:.0%} | {r['infer_img_s']:,.1f} | "
          f"{r['infer_share']:.0%} | {r['train_first_s']:.1f} s |", flush=True)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump({"peak_gflops": peak, "rows": out}, f, indent=2)


if __name__ == "__main__":
  app.run(main)
