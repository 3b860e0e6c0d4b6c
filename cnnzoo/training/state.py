"""The training state: parameters, BatchNorm statistics, optimizer state, step and base RNG key."""

from typing import Any

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


def create(model: nn.Module, tx: optax.GradientTransformation, input_shape, seed: int,
           sharding=None) -> TrainState:
  """Initializes the model and optimizer from `seed` (jitted; placed with `sharding` if given)."""

  def init():
    rng = jax.random.PRNGKey(seed)
    params_key, dropout_key, run_key = jax.random.split(rng, 3)
    variables = model.init({"params": params_key, "dropout": dropout_key},
                           jnp.zeros((1, *input_shape), jnp.float32), train=False)
    return TrainState.create(apply_fn=model.apply, params=variables["params"],
                             batch_stats=variables.get("batch_stats", {}), tx=tx, rng=run_key)

  return jax.jit(init, out_shardings=sharding)()


def count_params(tree) -> int:
  return int(sum(x.size for x in jax.tree.leaves(tree)))
