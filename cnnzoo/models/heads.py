"""Network surgery, the seed's fine-tuning: a zoo model without its classifier as the base and a
new head on top.

  fc:  flatten the base's last feature map -> Dense(hidden=256) -> ReLU -> Dropout(0.5) -> Dense(classes)
       (the seed's FCHeadNet on VGG16's 7x7x512 block5_pool)
  gap: global average pool -> [Dense(hidden) -> ReLU -> Dropout] -> Dense(classes)
       (seed 003's InceptionV3 head: hidden 1024, no dropout)

Parameters live under `base` (named as in the zoo model, so Keras weight files load into it) and
`head`. What trains is the optimizer's business (cnnzoo/training/trainable.py).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.errors import ConfigError
from cnnzoo.models.registry import create_model, model_info

HEADS = ("fc", "gap")
DEFAULTS = {"fc": (256, 0.5), "gap": (0, 0.0)}  # (hidden units, dropout) when the config says -1


class Head(nn.Module):
  kind: str
  num_classes: int
  hidden: int
  dropout: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.kind == "gap":
      x = jnp.mean(x, axis=(1, 2)) if x.ndim == 4 else x
    else:
      x = x.reshape((x.shape[0], -1))
    if self.hidden:
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="hidden")(x))
    if self.dropout:
      x = nn.Dropout(self.dropout, deterministic=not train, name="dropout")(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="out")(x).astype(jnp.float32)


class TransferNet(nn.Module):
  """`head(base(x))`; `base` is a zoo model built with include_top=False."""
  base: nn.Module
  head: Head

  @nn.compact
  def __call__(self, x, train: bool = False):
    features = self.base(x, train=train)
    self.sow("intermediates", "features", features)
    return self.head(features, train=train)


def create_transfer_model(name: str, *, num_classes: int, head: str, hidden: int = -1, dropout: float = -1.0,
                          dtype=jnp.float32, **kwargs) -> TransferNet:
  """The zoo model `name` without its top, with a new `head` (fc | gap) of `num_classes` outputs."""
  if head not in HEADS:
    raise ConfigError(f"model.head={head!r}: choose fc (the seed's FCHeadNet) or gap (global pool + Dense), "
                      "or leave it empty for the model's own classifier")
  info = model_info(name)
  default_hidden, default_dropout = DEFAULTS[head]
  hidden = default_hidden if hidden < 0 else hidden
  dropout = default_dropout if dropout < 0 else dropout
  try:
    probe = create_model(name, num_classes=info.num_classes, include_top=False)
  except TypeError:
    raise ConfigError(f"model {name!r} has no include_top switch, so it cannot be a base for model.head") from None
  fields = {f.name for f in dataclasses.fields(probe)}
  flattened = tuple(getattr(probe, "features", ())[-1:]) == (("flatten",),)  # a plain net that ends in Flatten
  if head == "fc" and "pooling" not in fields and not flattened:
    raise ConfigError(f"model.head=fc flattens the base's last feature map, which {name!r} does not give; "
                      "use model.head=gap, or a base with a pooling switch (vgg*, resnet*_keras, inception_v3, "
                      "inception_resnet_v2) or one that ends in Flatten (seed003_cifar_net)")
  base_kwargs = dict(kwargs, include_top=False, dtype=dtype)
  if "pooling" in fields:
    base_kwargs["pooling"] = "none" if head == "fc" else "avg"
  base = create_model(name, num_classes=info.num_classes, **base_kwargs)
  return TransferNet(base=base, head=Head(head, num_classes, hidden, dropout, dtype))
