"""Model inspection: parameter counts, FLOPs from XLA's cost analysis, numbered layer listings."""

import dataclasses

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnzoo.kernels import dispatch
from cnnzoo.models.registry import create_model, model_info
from cnnzoo.models.registry import list_models


@dataclasses.dataclass
class Summary:
  name: str
  input_shape: tuple
  num_classes: int
  trainable: int
  non_trainable: int
  flops: float  # per image, forward pass in inference mode (XLA counts a multiply-add as 2)


def count(tree) -> int:
  """Elements in a tree of arrays (or shapes)."""
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


_count = count


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
    with dispatch.use(dispatch.active().without_ffi()):  # XLA counts no FLOPs inside oneDNN's FFI calls
      compiled = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    total = float(cost.get("flops", float("nan")))
  return Summary(name, shape, num_classes or model_info(name).num_classes, _count(variables["params"]),
                 _count(variables.get("batch_stats", {})), total)


@dataclasses.dataclass(frozen=True)
class Layers:
  """The layers of a model in call order: `paths[i]` is the module path of listing index i + 1
  (index 0 is the input, as in Keras), `batchnorm` the paths of its BatchNorm layers."""
  paths: tuple
  batchnorm: frozenset


def model_layers(model: nn.Module, image_shape) -> Layers:
  """The leaf modules of `model` in call order (traced abstractly: nothing is computed)."""
  calls, norms = [], set()

  def record(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name == "__call__" and module.path:
      path = tuple(module.path)
      if path not in calls:
        calls.append(path)
      if isinstance(module, nn.BatchNorm):
        norms.add(path)
    return next_fun(*args, **kwargs)

  x = jnp.zeros((1, *image_shape), jnp.float32)
  with nn.intercept_methods(record):
    jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  leaves = tuple(p for p in calls if not any(q[:len(p)] == p and q != p for q in calls))
  return Layers(leaves, frozenset(norms))


def layer_table(name: str, input_shape=None, num_classes=None, **overrides) -> list[tuple]:
  """The seed's numbered layer listing: (index, path, type, output shape, params) with the input
  as row 0 and then every leaf module in call order, numbered as Keras numbers `model.layers` for
  the Keras-form models (VGG16's block5_conv1 is 15): the index `optim.trainable=from:N` takes.
  Params include BatchNorm's moving statistics, as Keras' "Param #" does."""
  model, variables, shape = build(name, input_shape, num_classes, **overrides)
  return [row[:5] for row in surgery_table(model, shape, model_layers(model, shape), lambda path: True,
                                           with_stats=True)]


def surgery_table(model, shape, layers, is_trainable, with_stats=False) -> list[tuple]:
  """Rows (index, path, type, output shape, params, frozen) of the leaf layers of `model` (index 0
  the input, as Keras numbers `model.layers`), as `optim.trainable=from:INDEX` counts them."""
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *shape)), train=False))
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables["params"]))
  stats = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables.get("batch_stats", {})))
  kinds, outs = {}, {}

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and context.module.path:
      kinds[tuple(context.module.path)] = type(context.module).__name__
      outs[tuple(context.module.path)] = tuple(out.shape[1:]) if hasattr(out, "shape") else ""
    return out

  with nn.intercept_methods(record):
    jax.eval_shape(lambda v: model.apply(v, jnp.zeros((1, *shape)), train=False), variables)
  rows = [(0, "input", "Input", tuple(shape), 0, False)]
  for i, path in enumerate(layers.paths, start=1):
    mine = {k: v for k, v in flat.items() if k[:len(path)] == path}
    extra = sum(int(np.prod(v.shape)) for k, v in stats.items() if k[:len(path)] == path) if with_stats else 0
    rows.append((i, "/".join(path), kinds.get(path, ""), outs.get(path, ""),
                 sum(int(np.prod(v.shape)) for v in mine.values()) + extra,
                 bool(mine) and not any(is_trainable(k) for k in mine)))
  return rows


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
  rows = ["| model | input | classes | trainable | non-trainable | GFLOPs | reference |",
          "|---|---|---:|---:|---:|---:|---|"]
  for name in names or list_models():
    s = summarize(name)
    info = model_info(name)
    rows.append(f"| `{name}` | {'×'.join(map(str, s.input_shape))} | {s.num_classes} | {s.trainable:,} | "
                f"{s.non_trainable:,} | {s.flops / 1e9:.3f} | {info.reference} |")
  return "\n".join(rows)
