"""Small layers the Keras-era networks use that flax.linen does not provide."""

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnzoo.kernels import dispatch
from cnnzoo.models.pooling import max_pool


# BatchNorm with batch variances as Keras computes them: mean((x - mean)^2) in two passes (Keras'
# ops.moments uses jnp.var). flax's default E[x^2] - E[x]^2 loses precision when the mean is large.
BatchNorm = functools.partial(nn.BatchNorm, use_fast_variance=False)


class Conv(nn.Conv):
  """flax's nn.Conv -- the same parameters, names, initializers and forward pass -- whose
  convolutions go to the process's kernels (oneDNN's, or XLA's with cnnzoo's faster backward pass,
  on the CPU: cnnzoo/kernels/). Every cnnzoo model builds its convolutions with it."""
  conv_general_dilated: Any = dispatch.conv_general_dilated


class LocalResponseNorm(nn.Module):
  """AlexNet's local response normalization across channels (Krizhevsky et al. 2012, Sec. 3.3):
  b = a / (k + alpha * sum_{window of n channels} a^2) ** beta, with k=2, n=5, alpha=1e-4, beta=0.75."""
  size: int = 5
  k: float = 2.0
  alpha: float = 1e-4
  beta: float = 0.75

  @nn.compact
  def __call__(self, x):
    sq = jnp.square(x)
    half = self.size // 2
    window = jax.lax.reduce_window(sq, 0.0, jax.lax.add, (1, 1, 1, self.size), (1, 1, 1, 1),
                                   ((0, 0), (0, 0), (0, 0), (half, self.size - 1 - half)))
    return x / (self.k + self.alpha * window) ** self.beta


class MaxPool(nn.Module):
  """A named max pool (no parameters): it gets a row, and so Keras' index, in the layer listing
  (`experiments.summarize --layers`) where a pool is a layer of its own, as VGG's `block1_pool`."""
  window: int = 2
  strides: int = 2
  padding: str = "VALID"

  @nn.compact
  def __call__(self, x):
    return max_pool(x, (self.window, self.window), (self.strides, self.strides), self.padding)


def adaptive_avg_pool(x, output_size: int):
  """torchvision's AdaptiveAvgPool2d: bin i spans [floor(i*H/o), ceil((i+1)*H/o))."""
  h, w = x.shape[1:3]
  if (h, w) == (output_size, output_size):
    return x
  rows = []
  for i in range(output_size):
    r0, r1 = (i * h) // output_size, math.ceil((i + 1) * h / output_size)
    cols = []
    for j in range(output_size):
      c0, c1 = (j * w) // output_size, math.ceil((j + 1) * w / output_size)
      cols.append(jnp.mean(x[:, r0:r1, c0:c1, :], axis=(1, 2)))
    rows.append(jnp.stack(cols, axis=1))
  return jnp.stack(rows, axis=1)


def pooled_classifier(module, x, *, train: bool, dropout: float = 0.0, name: str = "head"):
  """The tail most CNNs share: global average pool, sow it as `features`, and unless
  `module.include_top` is False, dropout then a Dense with `module.num_classes` outputs (float32
  logits). Called from a model's compact `__call__`, so the layers belong to `module`."""
  pooling = getattr(module, "pooling", "avg")
  if not module.include_top and pooling == "none":  # Keras' pooling=None: the last feature map
    module.sow("intermediates", "features", x)
    return x
  x = jnp.max(x, axis=(1, 2)) if pooling == "max" and not module.include_top else jnp.mean(x, axis=(1, 2))
  module.sow("intermediates", "features", x)
  if not module.include_top:
    return x
  if dropout:
    x = nn.Dropout(dropout, deterministic=not train)(x)
  return nn.Dense(module.num_classes, dtype=module.dtype, name=name)(x).astype(jnp.float32)
