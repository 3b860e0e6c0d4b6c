"""Model inspection: parameter counts, FLOPs from XLA's cost analysis, numbered layer listings."""

import dataclasses

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnzoo.models.registry import create_model, model_info


@dataclasses.dataclass
class Summary:
  name: str
  input_shape: tuple
  num_classes: int
  trainable: int
  non_trainable: int
  flops: float  # per image, forward pass in inference mode (XLA counts a multiply-add as 2)


def _count(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def build(name: str, input_shape=None, num_classes=None, **overrides):
  """(model, abstract variables, input shape) with no memory spent on weights."""
  info = model_info(name)
  shape = tuple(input_shape or info.input_shape)
  model = create_model(name, num_classes=num_classes or info.num_classes, **overrides)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *shape)), train=False))
  return model, variables, shape


def summarize(name: str, input_shape=None, num_classes=None, flops: bool = True, **overrides) -> Summary:
  """Counts and FLOPs of one registered model (compiles its forward pass once when `flops`)."""
  model, variables, shape = build(name, input_shape, num_classes, **overrides)
  total = float("nan")
  if flops:
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    compiled = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    total = float(cost.get("flops", float("nan")))
  return Summary(name, shape, num_classes or model_info(name).num_classes, _count(variables["params"]),
                 _count(variables.get("batch_stats", {})), total)


def layer_table(name: str, input_shape=None, num_classes=None, **overrides) -> list[tuple]:
  """The seed's numbered layer listing: (index, path, type, output shape, params) for every module
  in call order, the index used to pick "freeze up to layer N"."""
  model, variables, shape = build(name, input_shape, num_classes, **overrides)
  # Keras' "Param #" counts BatchNorm's moving statistics too; so does this listing.
  params = {**flax.traverse_util.flatten_dict(flax.core.unfreeze(variables["params"])),
            **{("batch_stats",) + k: v for k, v in flax.traverse_util.flatten_dict(
                flax.core.unfreeze(variables.get("batch_stats", {}))).items()}}
  rows = []

  def record(next_fun, args, kwargs, context):
    if context.method_name != "__call__" or not context.module.path:
      return next_fun(*args, **kwargs)
    row = [len(rows), "/".join(context.module.path), type(context.module).__name__, None,
           sum(int(np.prod(p.shape)) for k, p in params.items()
               if context.module.path in (k[:len(context.module.path)], k[1:len(context.module.path) + 1]))]
    rows.append(row)
    out = next_fun(*args, **kwargs)
    row[3] = tuple(out.shape[1:]) if hasattr(out, "shape") else ""
    return out

  with nn.intercept_methods(record):
    jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, *shape)), train=False), variables)
  return [tuple(r) for r in rows]


def tabulate(name: str, input_shape=None, num_classes=None, terminal: bool | None = None, **overrides) -> str:
  """flax's module table (inputs, outputs, parameters per module) for one registered model, with
  rich's bold and colour only for a terminal (`terminal` None: whether stdout is one)."""
  import sys
  if terminal is None:
    terminal = sys.stdout.isatty()
  info = model_info(name)
  shape = tuple(input_shape or info.input_shape)
  model = create_model(name, num_classes=num_classes or info.num_classes, **overrides)
  return nn.tabulate(model, jax.random.key(0), depth=2, console_kwargs={"width": 140, "force_terminal": terminal,
                                                                          "no_color": not terminal})(
      jnp.zeros((1, *shape)), train=False)


def markdown_table(names=None) -> str:
  """The README's model table: name, input, params, GFLOPs, reference; one row per model (all
  registered models by default)."""
  from cnnzoo.models.registry import list_models
  rows = ["| model | input | classes | trainable | non-trainable | GFLOPs | reference |",
          "|---|---|---:|---:|---:|---:|---|"]
  for name in names or list_models():
    s = summarize(name)
    info = model_info(name)
    rows.append(f"| `{name}` | {'×'.join(map(str, s.input_shape))} | {s.num_classes} | {s.trainable:,} | "
                f"{s.non_trainable:,} | {s.flops / 1e9:.3f} | {info.reference} |")
  return "\n".join(rows)
