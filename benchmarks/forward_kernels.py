"""Forward-only programs (evaluate, predict, extract_features) under each CPU convolution backend.

  python -m benchmarks.forward_kernels [--models=minivggnet,vgg16] [--rounds=3] [--seconds=4]

Per model (one per family, benchmarks.zoo_table.FAMILIES, at its native input and an evaluation
batch), `model.apply(train=False)` jitted twice -- once traced with oneDNN's convolutions first
(the CPU's default), once with XLA's (kernels.dispatch without the FFI backend) -- and the two
compiled programs timed in alternation, `--rounds` rounds of `--seconds` each, on the same batch.
Prints ms per batch for each and their ratio (XLA's / oneDNN's: above 1, oneDNN's is faster).
A timing: run it on an otherwise idle machine.
"""

import statistics
import time

from absl import app, flags

from benchmarks.zoo_table import _MODELS, _SECONDS, FAMILIES  # its --models and --seconds serve here too

_ROUNDS = flags.DEFINE_integer("rounds", 3, "Alternated rounds per model.")


def per_call(fn, seconds: float) -> float:
  import jax
  calls, t = 0, time.perf_counter()
  while calls < 2 or time.perf_counter() - t < seconds:
    jax.block_until_ready(fn())
    calls += 1
  return (time.perf_counter() - t) / calls


def measure(name: str, batch: int, rounds: int, seconds: float) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from cnnzoo import models
  from cnnzoo.kernels import dispatch
  info = models.model_info(name)
  model = models.create_model(name, num_classes=info.num_classes)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((batch, *info.input_shape), np.float32))
  variables = jax.jit(lambda: model.init(jax.random.key(0), x[:1], train=False))()
  programs = {}
  for label, kernels in (("onednn", dispatch.default()), ("xla", dispatch.default().without_ffi())):
    with dispatch.use(kernels):
      compiled = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x).compile()
    jax.block_until_ready(compiled(variables, x))
    programs[label] = lambda compiled=compiled: compiled(variables, x)
  times = {label: [] for label in programs}
  for _ in range(rounds):
    for label, fn in programs.items():
      times[label].append(per_call(fn, seconds))
  ms = {label: 1e3 * statistics.median(t) for label, t in times.items()}
  return {"model": name, "batch": batch, **ms, "ratio": ms["xla"] / ms["onednn"]}


def main(argv):
  del argv
  from cnnzoo import cli
  cli.choose_platform()
  import jax
  from cnnzoo.kernels import dispatch
  if dispatch.default().name != "onednn":
    raise app.UsageError(f"oneDNN's convolutions are not in use here{dispatch.default().note(why=True)}")
  chosen = [(f, n, b) for f, n, b in FAMILIES if not _MODELS.value or n in _MODELS.value]
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}; ms per forward batch (median of "
        f"{_ROUNDS.value} alternated rounds)\n")
  print("| model | batch | oneDNN's convolutions | XLA's | XLA's / oneDNN's |")
  print("|---|---:|---:|---:|---:|")
  for _, name, batch in chosen:
    r = measure(name, batch, _ROUNDS.value, _SECONDS.value)
    print(f"| {name} | {batch} | {r['onednn']:.1f} | {r['xla']:.1f} | {r['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
  app.run(main)
