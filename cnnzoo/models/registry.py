"""One registry of model builders: `create_model(name, ...)` and `list_models(pattern)`.

A builder is a function registered with `@register_model(...)`; the model's name is the builder's
name, so a variant is one line. Each entry records the model's natural input shape, used by the
tests, the summary tool and the configs' defaults.
"""

import dataclasses
import difflib
import fnmatch
from typing import Callable

import flax.linen as nn

from cnnzoo.errors import UserError


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What the registry knows of one model besides its builder."""
  name: str
  builder: Callable[..., nn.Module]
  input_shape: tuple[int, int, int]  # (height, width, channels) of one image
  num_classes: int  # the class count of the model's reference configuration
  reference: str  # where the expected parameter count comes from


_REGISTRY: dict[str, ModelInfo] = {}


class UnknownModelError(UserError, ValueError):
  """Raised for a model name that is not registered."""


def register_model(*, input_shape: tuple[int, int, int], num_classes: int, reference: str = ""):
  """Decorator registering a builder `fn(*, num_classes, **overrides) -> nn.Module` under its name."""

  def decorator(fn):
    name = fn.__name__
    if name in _REGISTRY:
      raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = ModelInfo(name, fn, tuple(input_shape), num_classes, reference)
    return fn

  return decorator


def model_info(name: str) -> ModelInfo:
  """Registry entry for `name`; unknown names raise UnknownModelError listing the close matches."""
  if name not in _REGISTRY:
    close = difflib.get_close_matches(name, _REGISTRY, n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(sorted(_REGISTRY))}"
    raise UnknownModelError(f"unknown model {name!r}{hint}")
  return _REGISTRY[name]


def create_model(name: str, *, num_classes: int, **overrides) -> nn.Module:
  """Builds the registered model `name` with `num_classes` outputs and any field overrides."""
  if not isinstance(name, str):
    raise UnknownModelError(f"model name {name!r}: expected a string such as 'resnet50'")
  info = model_info(name)
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
    raise UserError(f"num_classes={num_classes!r}: a model needs a positive integer number of classes")
  try:
    return info.builder(num_classes=num_classes, **overrides)
  except TypeError as e:
    raise UserError(f"{name!r} does not take the overrides {sorted(overrides)}: {e}") from None


def input_problem(model: nn.Module, image_shape) -> str | None:
  """Why `model` cannot take images of `image_shape` (H, W, C), or None: a shape error, or a layer
  whose output has a zero-sized dimension (a feature map pooled away to 0x0). Shapes only, via
  jax.eval_shape: nothing is computed or compiled."""
  import jax
  import jax.numpy as jnp
  x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
  rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
  try:
    variables = jax.eval_shape(lambda x: model.init(rngs, x, train=False), x)
    _, state = jax.eval_shape(lambda v, x: model.apply(v, x, train=False, capture_intermediates=True,
                                                       mutable=["intermediates"]), variables, x)
  except Exception as e:  # noqa: BLE001 -- shape errors of every kind, from flax or XLA
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    return (lines[-1] if lines else type(e).__name__)[:160]
  flat = jax.tree_util.tree_leaves_with_path(state["intermediates"])
  empty = [(jax.tree_util.keystr(p), tuple(v.shape)) for p, v in flat if 0 in tuple(v.shape)]
  if empty:
    path, shape = empty[0]
    return f"layer {path} outputs an empty {shape}"
  return None


def list_models(pattern: str = "*") -> list[str]:
  """Sorted names of the registered models matching the shell-style `pattern`."""
  return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))
