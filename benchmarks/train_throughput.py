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


def main(argv):
  del argv
  from cnnzoo import parallel
  parallel.choose_platform()
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax

  from cnnzoo import models
  from cnnzoo.data.ops import normalize
  from cnnzoo.training import state as state_lib
  from cnnzoo.training import steps

  info = models.model_info(_MODEL.value)
  model = models.create_model(_MODEL.value, num_classes=info.num_classes, dtype=jnp.dtype(_DTYPE.value))
  mesh = parallel.make_mesh()
  parallel.check_batch_size(_BATCH.value, mesh)
  repl, batch_sharding = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  state = state_lib.create(model, optax.sgd(0.01, momentum=0.9), info.input_shape, 0, sharding=repl)
  step = jax.jit(functools.partial(steps.train_step, preprocess=lambda k, x: normalize(x, "scale"),
                                   num_classes=info.num_classes, l2=5e-4),
                 in_shardings=(repl, batch_sharding), out_shardings=(repl, repl), donate_argnums=0)
  rng = np.random.default_rng(0)
  batch = parallel.put_global_batch(
      {"image": rng.integers(0, 256, (_BATCH.value, *info.input_shape), dtype=np.uint8),
       "label": rng.integers(0, info.num_classes, _BATCH.value).astype(np.int32)}, batch_sharding)
  t = time.perf_counter()
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t
  for _ in range(_WARMUP.value):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  t = time.perf_counter()
  for _ in range(_STEPS.value):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - t
  devices = jax.devices()
  print(f"{_MODEL.value}: batch {_BATCH.value}, {_DTYPE.value}, {len(devices)} x {devices[0].device_kind}; "
        f"first step (compile) {compile_s:.1f} s, {seconds / _STEPS.value * 1000:.1f} ms/step")
  print(f"img/s: {_BATCH.value * _STEPS.value / seconds:.1f}")


if __name__ == "__main__":
  app.run(main)
