"""Small layers the Keras-era networks use that flax.linen does not provide."""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnzoo.kernels import dispatch
from cnnzoo.models.pooling import max_pool


def normalize(x, mean, var, scale, bias, epsilon: float, dtype=None):
  """BatchNorm's arithmetic as Keras' JAX backend does it (ops.batch_normalization):
  inv = scale / sqrt(var + epsilon), y = x * inv + (bias - mean * inv), one multiply-add an element
  (flax's nn.BatchNorm computes (x - mean) * inv + bias, which keeps x - mean for the gradient and
  is slower: benchmarks/README.md, "BatchNorm in Keras' arithmetic"). `scale` and `bias` may be
  None (use_scale / use_bias False); `dtype` None is x's and the statistics' result type."""
  inv = jax.lax.rsqrt(var + epsilon)
  if scale is not None:
    inv = inv * scale
  shift = -mean * inv
  if bias is not None:
    shift = shift + bias
  return jnp.asarray(x * inv + shift, dtype or jnp.result_type(x, mean))


class BatchNorm(nn.BatchNorm):
  """flax's nn.BatchNorm -- the same parameters (scale, bias), batch statistics (mean, var), moving
  averages, initializers and dtypes -- computing as Keras does: batch variances in two passes,
  mean((x - mean)^2) (Keras' ops.moments uses jnp.var; flax's default E[x^2] - E[x]^2 loses
  precision when the mean is large), statistics in float32 at least, and `normalize`'s multiply-add.
  Reduces over every axis but the last (`axis` -1); no cross-device `axis_name` (under jit and a
  sharded batch XLA reduces over the global batch) and no `mask`."""
  use_fast_variance: bool = False

  @nn.compact
  def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
    if self.axis not in (-1, x.ndim - 1) or self.axis_name is not None or mask is not None or self.use_fast_variance:
      raise NotImplementedError("cnnzoo's BatchNorm normalizes the last axis, with two-pass variances, "
                                "no axis_name and no mask")
    use_running_average = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
    features = x.shape[-1:]
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), features)
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), features)
    if use_running_average:
      mean, var = ra_mean.value, ra_var.value
    else:
      axes = tuple(range(x.ndim - 1))
      stats = x.astype(jnp.promote_types(self.dtype or x.dtype, jnp.float32))
      mean = stats.mean(axes)
      var = jnp.square(stats - mean).mean(axes)
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    scale = self.param("scale", self.scale_init, features, self.param_dtype) if self.use_scale else None
    bias = self.param("bias", self.bias_init, features, self.param_dtype) if self.use_bias else None
    return normalize(x, mean, var, scale, bias, self.epsilon, self.dtype)


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
