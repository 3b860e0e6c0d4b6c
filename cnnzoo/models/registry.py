"""One registry of model builders: `create_model(name, ...)` and `list_models(pattern)`.

A builder is a function registered with `@register_model(...)`; the model's name is the builder's
name (or `name=`), so a variant is one line. Each entry records the model's natural input shape,
used by the tests, the summary tool and the configs' defaults, and the facts other parts ask of a
model: the Keras preprocess_input mode of the application it mirrors (`preprocess`, for features
and predict) and the convolution kernels its forward-only programs run fastest with
(`forward_kernels`). A user's model registered in their own module is an entry like these.
"""

import dataclasses
import difflib
from typing import Callable

import flax.linen as nn

from cnnzoo.errors import UserError
from cnnzoo.registry import Registry, RegistryError


PREPROCESS_MODES = ("caffe", "tf", "torch", "scale")
FORWARD_KERNELS = ("", "xla")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What the registry knows of one model besides its builder."""
  name: str
  builder: Callable[..., nn.Module]
  input_shape: tuple[int, int, int]  # (height, width, channels) of one image
  num_classes: int  # the class count of the model's reference configuration
  reference: str  # where the expected parameter count comes from
  preprocess: str = "torch"  # Keras preprocess_input mode of the application it mirrors (caffe, tf, torch)
  forward_kernels: str = ""  # "": the run's convolution kernels; "xla": XLA's for forward-only programs
  module: str = ""  # where its builder is defined


MODELS = Registry("model", facts={"input_shape": (), "num_classes": 0, "reference": "", "preprocess": "torch",
                                  "forward_kernels": ""})


class UnknownModelError(UserError, ValueError):
  """Raised for a model name that is not registered."""


def register_model(*, input_shape: tuple[int, int, int], num_classes: int, reference: str = "",
                   preprocess: str = "torch", forward_kernels: str = "", name: str | None = None):
  """Decorator registering a builder `fn(*, num_classes, **overrides) -> nn.Module` (a flax module
  whose `__call__(x, train)` returns logits) under its name, or `name`."""
  shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
  if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
    raise RegistryError(f"register_model: input_shape={input_shape!r}: expected (height, width, channels)")
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
    raise RegistryError(f"register_model: num_classes={num_classes!r}: expected a positive integer")
  if preprocess not in PREPROCESS_MODES:
    raise RegistryError(f"register_model: preprocess={preprocess!r}: choose one of {', '.join(PREPROCESS_MODES)}")
  if forward_kernels not in FORWARD_KERNELS:
    raise RegistryError(f"register_model: forward_kernels={forward_kernels!r}: choose '' or 'xla'")
  return MODELS.register(name, input_shape=shape, num_classes=num_classes, reference=reference,
                         preprocess=preprocess, forward_kernels=forward_kernels)


def model_info(name: str) -> ModelInfo:
  """Registry entry for `name`; unknown names raise UnknownModelError listing the close matches."""
  if not isinstance(name, str) or name not in MODELS:
    known = MODELS.names()
    close = difflib.get_close_matches(str(name), known, n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(known)}"
    raise UnknownModelError(f"unknown model {name!r}{hint}")
  e = MODELS.get(name)
  return ModelInfo(e.name, e.fn, e.input_shape, e.num_classes, e.reference, e.preprocess, e.forward_kernels,
                   e.module)


def create_model(name: str, *, num_classes: int, **overrides) -> nn.Module:
  """Builds the registered model `name` with `num_classes` outputs and any field overrides."""
  if not isinstance(name, str):
    raise UnknownModelError(f"model name {name!r}: expected a string such as 'resnet50'")
  info = model_info(name)
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
    raise UserError(f"num_classes={num_classes!r}: a model needs a positive integer number of classes")
  try:
    model = info.builder(num_classes=num_classes, **overrides)
  except TypeError as e:
    raise UserError(f"{name!r} does not take the overrides {sorted(overrides)}: {e}") from None
  if not isinstance(model, nn.Module):
    raise UserError(f"model {name!r} ({info.module}.{info.builder.__name__}) returned {type(model).__name__}, "
                    "not a flax.linen.Module")
  return model


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
  return MODELS.names(pattern)
