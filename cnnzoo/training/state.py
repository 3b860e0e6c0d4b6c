"""The training state: parameters, BatchNorm statistics, optimizer state, step and base RNG key."""

import os
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state


class TrainState(train_state.TrainState):
  """flax's TrainState plus `batch_stats` and the run's base `rng` (a raw uint32 key).

  Per-step randomness is `fold_in(rng, step)`, so it depends on nothing but the seed and the step.
  """
  batch_stats: Any = struct.field(default_factory=dict)
  rng: jax.Array = None

  def variables(self, params=None) -> dict:
    """The `variables` dict for `apply_fn`."""
    v = {"params": self.params if params is None else params}
    if self.batch_stats:
      v["batch_stats"] = self.batch_stats
    return v

  def checkpoint_tree(self) -> dict:
    """The arrays a checkpoint holds (the static apply_fn / tx are rebuilt from the config)."""
    return {"step": self.step, "params": self.params, "batch_stats": self.batch_stats,
            "opt_state": self.opt_state, "rng": self.rng}

  def replace_from_tree(self, tree: dict) -> "TrainState":
    return self.replace(**tree)


KERNEL_INITS = {  # Keras' initializers (flax's definitions are the same: fans from HWIO / (in, out))
    "glorot_uniform": nn.initializers.glorot_uniform(),  # Keras' default for Conv2D and Dense
    "he_normal": nn.initializers.he_normal(),  # truncated normal, stddev sqrt(2 / fan_in)
}


def with_kernel_init(params, key, name: str):
  """`params` with every `kernel` drawn anew by the Keras initializer `name` (one key per kernel);
  biases, BatchNorm scales and the rest keep flax's initialization (Keras': zeros and ones)."""
  if name == "flax":
    return params
  init = KERNEL_INITS[name]
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  drawn = {path: init(jax.random.fold_in(key, i), v.shape, v.dtype) if path[-1] == "kernel" else v
           for i, (path, v) in enumerate(sorted(flat.items()))}
  return flax.traverse_util.unflatten_dict(drawn)


def create(model: nn.Module, tx: optax.GradientTransformation, input_shape, seed: int,
           sharding=None, kernel_init: str = "flax", abstract: bool = False) -> TrainState:
  """Initializes the model and optimizer from `seed` (jitted; placed with `sharding` if given).
  `kernel_init`: flax (the modules' own initializers), glorot_uniform or he_normal (Keras').
  `abstract`: only the shapes and dtypes (jax.eval_shape; nothing is computed or compiled)."""

  def init():
    rng = jax.random.PRNGKey(seed)
    params_key, dropout_key, run_key = jax.random.split(rng, 3)
    variables = model.init({"params": params_key, "dropout": dropout_key},
                           jnp.zeros((1, *input_shape), jnp.float32), train=False)
    variables = {**variables, "params": with_kernel_init(variables["params"], jax.random.fold_in(params_key, 1),
                                                         kernel_init)}
    return TrainState.create(apply_fn=model.apply, params=variables["params"],
                             batch_stats=variables.get("batch_stats", {}), tx=tx, rng=run_key)

  if abstract:
    return jax.eval_shape(init)
  jitted = jax.jit(init, out_shardings=sharding)
  options = init_compiler_options()
  return jitted.lower().compile(compiler_options=options)() if options else jitted()


# XLA:CPU spends most of the initial state's compile on the random draws (one threefry hash per
# parameter array) in LLVM's -O2. At -O1 it compiles them ~3x faster with bitwise the same values
# (-O0 draws other normal values; benchmarks/README.md has the times). tests/test_optim.py checks
# the bits against -O2.
INIT_OPTIMIZATION_LEVEL = 1


def init_compiler_options() -> dict | None:
  """XLA options for compiling the initial state: -O1 on the CPU, unless XLA_FLAGS sets the level (theirs wins)."""
  if jax.default_backend() != "cpu" or "--xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", ""):
    return None
  return {"xla_backend_optimization_level": INIT_OPTIMIZATION_LEVEL}


def count_params(tree) -> int:
  return int(sum(x.size for x in jax.tree.leaves(tree)))
