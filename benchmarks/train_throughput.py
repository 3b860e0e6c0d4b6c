"""Times the real jitted train step on synthetic data.

  python -m benchmarks.train_throughput --model=resnet_cifar --batch_size=64

Builds the model from the registry, an SGD-momentum optimizer with L2 (as the seed's configs), and
the same `train_step` the loop jits (sharded over all devices), warms up (compile + a few steps),
then times `--steps` steps. The last line is `img/s: <number>`.
"""

import functools
import time

from absl import app, flags

_MODEL = flags.DEFINE_string("model", "lenet5", "Registered model name.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Global batch size.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")


def build(name: str, batch_size: int, dtype: str = "float32"):
  """(jitted step, state, batch) for `name`: the loop's `train_step` with SGD momentum and L2 5e-4
  on a synthetic uint8 batch at the model's input shape, sharded over all devices (not compiled)."""
  from cnnzoo import cli, parallel
  cli.choose_platform()
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax

  from cnnzoo import models
  from cnnzoo.data.ops import normalize
  from cnnzoo.training import state as state_lib
  from cnnzoo.training import steps

  info = models.model_info(name)
  model = models.create_model(name, num_classes=info.num_classes, dtype=jnp.dtype(dtype))
  mesh = parallel.make_mesh()
  parallel.check_batch_size(batch_size, mesh)
  repl, batch_sharding = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  state = state_lib.create(model, optax.sgd(0.01, momentum=0.9), info.input_shape, 0, sharding=repl)
  step = jax.jit(functools.partial(steps.train_step, preprocess=lambda k, x: normalize(x, "scale"),
                                   num_classes=info.num_classes, l2=5e-4),
                 in_shardings=(repl, batch_sharding), out_shardings=(repl, repl), donate_argnums=0)
  rng = np.random.default_rng(0)
  batch = parallel.put_global_batch(
      {"image": rng.integers(0, 256, (batch_size, *info.input_shape), dtype=np.uint8),
       "label": rng.integers(0, info.num_classes, batch_size).astype(np.int32)}, batch_sharding)
  return step, state, batch


def time_steps(step, state, batch, steps: int, warmup: int):
  """(first call seconds, seconds per step over `steps` after `warmup`, the last state)."""
  import jax
  t = time.perf_counter()
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  first = time.perf_counter() - t
  for _ in range(warmup):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  t = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  return first, (time.perf_counter() - t) / steps, state


def main(argv):
  del argv
  import jax
  step, state, batch = build(_MODEL.value, _BATCH.value, _DTYPE.value)
  compile_s, per_step, _ = time_steps(step, state, batch, _STEPS.value, _WARMUP.value)
  devices = jax.devices()
  print(f"{_MODEL.value}: batch {_BATCH.value}, {_DTYPE.value}, {len(devices)} x {devices[0].device_kind}; "
        f"first step (compile) {compile_s:.1f} s, {per_step * 1000:.1f} ms/step")
  print(f"img/s: {_BATCH.value / per_step:.1f}")


if __name__ == "__main__":
  app.run(main)
