"""BatchNorm's arithmetic in the train step: flax's (x - mean) * inv + bias against Keras'
x * inv + (bias - mean * inv), which cnnzoo.models.layers.BatchNorm computes.

  python -m benchmarks.batchnorm [--models=minivggnet,resnet20_v1] [--batch_size=64] [--rounds=6]

Builds each model twice, its BatchNorm layers flax's nn.BatchNorm (two-pass variances, as before
2026-12-02) or cnnzoo's, and times, alternated round by round: (1) BatchNorm alone, forward and
backward, at the activation shapes of MiniVGGNet; (2) the train step called once a step (the path of
streamed splits and several CPU devices); (3) the train step inside the K-step loop of on-device
splits (`--steps_per_call`). SGD with Nesterov momentum, synthetic 28x28x1 images (Fashion-MNIST's
size). Prints ms (median of the rounds, and each round). A timing: run it on an otherwise idle
machine; tcmalloc changes (2) a lot (LD_PRELOAD, as cnnzoo's entry points run).
"""

import functools
import statistics
import time

from absl import app, flags

_MODELS = flags.DEFINE_list("models", ["minivggnet", "resnet20_v1"], "Registered models with BatchNorm.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Batch size.")
_ROUNDS = flags.DEFINE_integer("rounds", 6, "Alternated rounds.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps a round (calls of one step).")
_PER_CALL = flags.DEFINE_integer("steps_per_call", 20, "Steps of the K-step loop (timed: 2 calls a round).")
_SHAPE = (28, 28, 1)


def _forms():
  import flax.linen as nn
  from cnnzoo.models import layers
  return {"flax": functools.partial(nn.BatchNorm, use_fast_variance=False), "cnnzoo": layers.BatchNorm}


def _timed(fn, repeats: int) -> float:
  """ms per call of `fn()` (which blocks), over `repeats` calls."""
  t = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - t) / repeats * 1e3


def batchnorm_alone(forms, shapes, rounds: int) -> dict:
  """{(shape, form): [ms per forward + backward, a round]} for BatchNorm (then ReLU) alone."""
  import jax
  import jax.numpy as jnp
  programs = {}
  for shape in shapes:
    x = jax.random.normal(jax.random.key(0), shape) * 2 + 1
    g = jax.random.normal(jax.random.key(1), shape)
    for name, cls in forms.items():
      module = cls(use_running_average=False)
      variables = module.init(jax.random.key(2), x)

      def loss(params, x, module=module, variables=variables, g=g):
        y, _ = module.apply({**variables, "params": params}, x, mutable=["batch_stats"])
        return jnp.sum(jax.nn.relu(y) * g)
      grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
      jax.block_until_ready(grad(variables["params"], x))
      programs[shape, name] = lambda grad=grad, p=variables["params"], x=x: jax.block_until_ready(grad(p, x))
  times = {key: [] for key in programs}
  for _ in range(rounds):
    for key, run in programs.items():
      times[key].append(_timed(run, 20))
  return times


def train_steps(model_name: str, forms, rounds: int, batch_size: int, steps: int, per_call: int) -> dict:
  """{(way, form): [ms per step, a round]}, way "a call a step" or "K-step loop"."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from cnnzoo import models
  from cnnzoo.data.ops import normalize
  from cnnzoo.training import state as state_lib
  from cnnzoo.training import steps as steps_lib
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (per_call, batch_size, *_SHAPE), dtype=np.uint8),
           "label": rng.integers(0, 10, (per_call, batch_size)).astype(np.int32)}
  stacked, single = jax.device_put(batch), jax.device_put(jax.tree.map(lambda a: a[0], batch))
  step = functools.partial(steps_lib.train_step, preprocess=lambda k, x: normalize(x, "scale"), num_classes=10)
  runs, trained = {}, {}
  for name, cls in forms.items():
    model = models.create_model(model_name, num_classes=10)
    tx = optax.sgd(0.01, momentum=0.9, nesterov=True)
    one = jax.jit(step, donate_argnums=0)
    loop = jax.jit(lambda state, sums, b: steps_lib.train_steps(state, sums, b, jnp.int32(per_call), step=step),
                   donate_argnums=(0, 1))
    with _batchnorm(cls):  # the models look the name up when they are traced
      holder = {"one": state_lib.create(model, tx, _SHAPE, 0), "loop": state_lib.create(model, tx, _SHAPE, 0)}

    def call_one(holder=holder, one=one):
      for _ in range(steps):
        holder["one"], m = one(holder["one"], single)
      jax.block_until_ready(m)

    def call_loop(holder=holder, loop=loop):
      for _ in range(2):
        holder["loop"], m = loop(holder["loop"], steps_lib.zero_metrics(), stacked)
      jax.block_until_ready(m)
    with _batchnorm(cls):
      call_one(), call_loop()  # compile (trace) and warm up
    runs["a call a step", name] = (call_one, steps)
    runs["K-step loop", name] = (call_loop, 2 * per_call)
    trained[name] = np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(holder["one"].params))])
  if np.array_equal(*trained.values()):  # the two forms round differently: equal bits mean one was timed twice
    raise SystemExit("both forms trained to the same bits: the BatchNorm swap did not take effect")
  times = {key: [] for key in runs}
  for _ in range(rounds):
    for key, (run, n) in runs.items():
      times[key].append(_timed(run, 1) / n)
  return times


class _batchnorm:
  """Traces models with `cls` as their BatchNorm (the model modules import the name)."""

  def __init__(self, cls):
    from cnnzoo.models import googlenet, inception, inception_v4, plain, resnet, resnet_cifar, resnet_keras, vgg
    self.modules = (googlenet, inception, inception_v4, plain, resnet, resnet_cifar, resnet_keras, vgg)
    self.cls = cls

  def __enter__(self):
    self.kept = [m.BatchNorm for m in self.modules]
    for m in self.modules:
      m.BatchNorm = self.cls

  def __exit__(self, *exc):
    for m, kept in zip(self.modules, self.kept):
      m.BatchNorm = kept


def _print(title: str, times: dict) -> None:
  print(f"\n{title}")
  for key, values in times.items():
    label = " ".join(str(k) for k in key)
    print(f"  {label:44s} {statistics.median(values):8.2f} ms   " + " ".join(f"{v:.2f}" for v in values))


def main(argv):
  del argv
  from cnnzoo import cli
  cli.choose_platform()
  forms = _forms()
  b = _BATCH.value
  shapes = [(b, 28, 28, 32), (b, 14, 14, 64)]
  _print("BatchNorm + ReLU alone, forward and backward (ms)", batchnorm_alone(forms, shapes, _ROUNDS.value))
  for name in _MODELS.value:
    times = train_steps(name, forms, _ROUNDS.value, b, _STEPS.value, _PER_CALL.value)
    _print(f"{name}, batch {b}, 28x28x1: ms per train step", times)


if __name__ == "__main__":
  app.run(main)
