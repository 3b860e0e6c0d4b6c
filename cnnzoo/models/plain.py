"""Plain (sequential) CNNs described as data: a tuple of layer specs, the way the journal's Keras
`Sequential` models are written. Used by the AlexNet family and the seed 003 networks.

A spec is a tuple whose first item names the layer:
  ("conv", filters, kernel, stride, padding)   Conv2D with bias ("SAME" / "VALID")
  ("relu",) ("tanh",)                          activations
  ("bn",)                                       BatchNorm (Keras defaults unless the model says)
  ("lrn",)                                      AlexNet's local response normalization
  ("maxpool", size, stride)                     max pooling, VALID
  ("adaptive_avg", size)                        torchvision's adaptive average pooling
  ("gap",)                                      global average pooling
  ("dropout", rate) ("spatial_dropout", rate)   dropout (whole feature maps for spatial)
  ("flatten",) ("dense", units)
`features` ends at the pooled / flattened features (what `include_top=False` returns); `classifier`
follows it, and a Dense `head` with `num_classes` units closes the network.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import BatchNorm, Conv, LocalResponseNorm, adaptive_avg_pool
from cnnzoo.models.pooling import max_pool


class PlainNet(nn.Module):
  """A sequential CNN built from `features` + `classifier` layer specs, then the head."""
  features: Sequence[tuple]
  classifier: Sequence[tuple]
  num_classes: int
  include_top: bool = True
  bn_momentum: float = 0.99  # Keras' BatchNormalization defaults
  bn_epsilon: float = 1e-3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    counts: dict[str, int] = {}
    x = self._run(self.features, x, train, counts)
    self.sow("intermediates", "features", x)
    if not self.include_top:
      return x
    x = self._run(self.classifier, x, train, counts)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)

  def _run(self, specs, x, train, counts):
    for spec in specs:
      kind, args = spec[0], spec[1:]
      counts[kind] = counts.get(kind, 0) + 1
      name = f"{kind}{counts[kind]}"
      if kind == "conv":
        filters, kernel, stride, padding = args
        x = Conv(filters, (kernel, kernel), (stride, stride), padding=padding, dtype=self.dtype,
                    name=name)(x)
      elif kind == "dense":
        x = nn.Dense(args[0], dtype=self.dtype, name=name)(x)
      elif kind == "bn":
        x = BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                         epsilon=self.bn_epsilon, dtype=self.dtype, name=name)(x)
      elif kind == "relu":
        x = nn.relu(x)
      elif kind == "tanh":
        x = jnp.tanh(x)
      elif kind == "lrn":
        x = LocalResponseNorm()(x)
      elif kind == "maxpool":
        x = max_pool(x, (args[0], args[0]), (args[1], args[1]))
      elif kind == "adaptive_avg":
        x = adaptive_avg_pool(x, args[0])
      elif kind == "gap":
        x = jnp.mean(x, axis=(1, 2))
      elif kind == "dropout":
        x = nn.Dropout(args[0], deterministic=not train)(x)
      elif kind == "spatial_dropout":
        x = nn.Dropout(args[0], broadcast_dims=(1, 2), deterministic=not train)(x)
      elif kind == "flatten":
        x = x.reshape((x.shape[0], -1))
      else:
        raise ValueError(f"unknown layer spec {spec!r}")
    return x
