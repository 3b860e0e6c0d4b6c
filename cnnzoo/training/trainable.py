"""What trains (`optim.trainable`), as Keras' `layer.trainable = False` does it:

  all          every parameter (the default)
  head         the new head of a surgery model (model.head = fc | gap): the base is frozen
  from:LAYER   LAYER and every layer after it, and the head (the seed's "layers 15 and up");
               LAYER is a layer name or an index of `python -m experiments.summarize --layers`, which
               counts as Keras' `model.layers` does for the Keras-form models (VGG16: 0 is the input,
               15 is block5_conv1)
  bn           the BatchNorm layers only (seed 001)
  re:REGEX     the parameters whose path (`base/block5_conv1/kernel`) matches REGEX (re.search)

Frozen parameters get neither an update nor optimizer state (optax.multi_transform with
set_to_zero), and a frozen BatchNorm layer runs in inference mode in training too: it normalizes
with its moving statistics and leaves them unchanged, as Keras does for `trainable=False`. With
`head`, the whole base runs in inference mode (its dropout off too), as the seed's frozen bases
ran: their features came from Keras' `predict`.
"""

import dataclasses
import re

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnzoo import numbers
from cnnzoo.errors import ConfigError
from cnnzoo.models.inspect import Layers, model_layers  # noqa: F401 -- model_layers: the API
from cnnzoo.models.layers import normalize


def _layer_index(layers: Layers, name: str) -> int:
  """Listing index (input = 0) of a layer named by index or by name (its last path part or its
  whole path); a ConfigError listing the names otherwise."""
  if numbers.is_count(name):
    index = int(name)
    if not 1 <= index <= len(layers.paths):
      raise ConfigError(f"optim.trainable=from:{name}: the model's layers are numbered 1..{len(layers.paths)} "
                        "(0 is the input); see python -m experiments.summarize --layers")
    return index
  for i, path in enumerate(layers.paths, start=1):
    if name in (path[-1], "/".join(path)):
      return i
  names = [p[-1] for p in layers.paths]
  shown = ", ".join(names[:60]) + (f", ... ({len(names)} in all)" if len(names) > 60 else "")
  raise ConfigError(f"optim.trainable=from:{name}: no layer named {name!r}; the layers are: {shown}")


def trainable_paths(spec: str, params, layers: Layers, transfer: bool):
  """(predicate on a parameter path -> trainable, predicate on a module path -> trainable)."""
  spec = spec.strip()
  if spec == "all":
    return (lambda path: True), (lambda module: True)
  if spec == "head":
    if not transfer:
      raise ConfigError("optim.trainable=head freezes the base of a surgery model: set model.head=fc or gap "
                        "(or use from:LAYER / re:REGEX on this model)")
    return (lambda path: path[0] == "head"), (lambda module: module[:1] == ("head",))
  if spec == "bn":
    if not layers.batchnorm:
      raise ConfigError("optim.trainable=bn: this model has no BatchNorm layers")
    in_bn = lambda module: any(module[:len(b)] == b for b in layers.batchnorm)
    return (lambda path: in_bn(path[:-1])), in_bn
  if spec.startswith("from:"):
    start = _layer_index(layers, spec[5:].strip())
    later = {p for p in layers.paths[start - 1:]}
    inside = lambda module: any(module[:len(p)] == p for p in later) or module[:1] == ("head",)
    return (lambda path: inside(path[:-1])), inside
  if spec.startswith("re:"):
    try:
      pattern = re.compile(spec[3:])
    except re.error as e:
      raise ConfigError(f"optim.trainable={spec}: not a regular expression ({e})") from None
    return (lambda path: bool(pattern.search("/".join(path)))), (lambda module: bool(pattern.search("/".join(module))))
  raise ConfigError(f"optim.trainable={spec!r}: choose all, head, bn, from:LAYER or re:REGEX")


@dataclasses.dataclass(frozen=True)
class Trainable:
  """One `optim.trainable` choice resolved on a model: `labels(params)` ("train" / "frozen" per
  leaf, for optax.multi_transform) and the module paths that run in inference mode in training:
  the frozen BatchNorm layers, or the whole base (dropout off too) when only the head trains."""
  spec: str
  labels: object  # params -> tree of "train" / "frozen"; None for "all"
  inference_modules: tuple
  trainable: int
  frozen: int


def resolve(spec: str, params, layers: Layers, transfer: bool) -> Trainable:
  is_trainable, module_trainable = trainable_paths(spec, params, layers, transfer)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  train = sum(int(v.size) for k, v in flat.items() if is_trainable(k))
  frozen = sum(int(v.size) for k, v in flat.items() if not is_trainable(k))
  if spec.strip() == "all":
    return Trainable("all", None, (), train, frozen)
  if not train:
    raise ConfigError(f"optim.trainable={spec}: no parameter would train")

  def labels(tree):
    return flax.traverse_util.unflatten_dict(
        {k: "train" if is_trainable(k) else "frozen" for k in flax.traverse_util.flatten_dict(flax.core.unfreeze(tree))})

  if spec.strip() == "head" and transfer:  # the whole base is frozen: it runs in inference mode
    return Trainable(spec.strip(), labels, (("base",),), train, frozen)
  frozen_bn = tuple(sorted(b for b in layers.batchnorm if not module_trainable(b)))
  return Trainable(spec.strip(), labels, frozen_bn, train, frozen)


def inference_modules(paths):
  """An nn.intercept_methods interceptor for the modules at `paths`: a BatchNorm layer normalizes
  with its moving statistics (its inference-mode arithmetic) and does not update them; any other
  module (the `base` of a surgery model whose head alone trains) is called with train=False, as
  the seed ran a frozen base (Keras' `predict` on it: no dropout, BatchNorm's moving statistics)."""
  paths = frozenset(tuple(p) for p in paths)

  def intercept(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name != "__call__" or tuple(module.path) not in paths:
      return next_fun(*args, **kwargs)
    if not isinstance(module, nn.BatchNorm):
      return next_fun(*args, **{**kwargs, "train": False})
    x = args[0] if args else kwargs["x"]
    mean = module.get_variable("batch_stats", "mean")
    var = module.get_variable("batch_stats", "var")
    scale = module.get_variable("params", "scale") if module.use_scale else None
    bias = module.get_variable("params", "bias") if module.use_bias else None
    return normalize(x, mean, var, scale, bias, module.epsilon, module.dtype)

  return intercept


def resolver(model, image_shape, transfer: bool):
  """`spec` -> Trainable on this model (its layers traced once, on first use): what stages.plan
  calls for each stage's optim.trainable."""
  cache = {}

  def on_model(spec: str) -> Trainable:
    if "layers" not in cache:
      cache["layers"] = model_layers(model, image_shape)
      cache["params"] = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *image_shape)),
                                                          train=False))["params"]
    return resolve(spec, cache["params"], cache["layers"], transfer)

  return on_model
