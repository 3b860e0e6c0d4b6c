"""Inception-v4 and Inception-ResNet-v1 (Szegedy et al. 2016, "Inception-v4, Inception-ResNet and
the Impact of Residual Connections on Learning"), Figures 3-10 and 14-20.

Convs are conv (no bias) -> BatchNorm (epsilon 1e-3) -> ReLU as in the TF-slim / timm ports; the
residual up-projections of Inception-ResNet are linear 1x1 convs with bias whose output is scaled
(0.17 / 0.1 / 0.2) before the addition, as Sec. 3.3 of the paper recommends.
"""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import BatchNorm, Conv, pooled_classifier
from cnnzoo.models.pooling import max_pool
from cnnzoo.models.registry import register_model


class _Convs:
  """conv-BN-ReLU units named `conv{k}` / `bn{k}` in creation order."""

  def __init__(self, train, dtype):
    self.k, self.train, self.dtype = 0, train, dtype

  def __call__(self, x, filters, kernel, strides=1, padding="SAME"):
    self.k += 1
    kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    x = Conv(filters, kernel, (strides, strides), padding=padding, use_bias=False, dtype=self.dtype,
                name=f"conv{self.k}")(x)
    x = BatchNorm(use_running_average=not self.train, momentum=0.9, epsilon=1e-3, dtype=self.dtype,
                     name=f"bn{self.k}")(x)
    return nn.relu(x)


_maxpool = functools.partial(max_pool, window_shape=(3, 3), strides=(2, 2))
_avgpool = functools.partial(nn.avg_pool, window_shape=(3, 3), strides=(1, 1), padding="SAME",
                             count_include_pad=False)


class InceptionV4(nn.Module):
  """Inception-v4 on 299x299: stem (Fig. 3), 4 x Inception-A, Reduction-A, 7 x Inception-B,
  Reduction-B, 3 x Inception-C, average pool, dropout (keep 0.8), FC."""
  num_classes: int
  dropout: float = 0.2
  include_top: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    c = _Convs(train, self.dtype)
    x = c(c(c(x, 32, 3, 2, "VALID"), 32, 3, padding="VALID"), 64, 3)
    x = jnp.concatenate([_maxpool(x), c(x, 96, 3, 2, "VALID")], -1)  # mixed_3a: 160
    b0 = c(c(x, 64, 1), 96, 3, padding="VALID")
    b1 = c(c(c(c(x, 64, 1), 64, (1, 7)), 64, (7, 1)), 96, 3, padding="VALID")
    x = jnp.concatenate([b0, b1], -1)  # mixed_4a: 192
    x = jnp.concatenate([c(x, 192, 3, 2, "VALID"), _maxpool(x)], -1)  # mixed_5a: 384
    for _ in range(4):  # Inception-A
      x = jnp.concatenate([c(x, 96, 1), c(c(x, 64, 1), 96, 3), c(c(c(x, 64, 1), 96, 3), 96, 3),
                           c(_avgpool(x), 96, 1)], -1)
    x = jnp.concatenate([c(x, 384, 3, 2, "VALID"), c(c(c(x, 192, 1), 224, 3), 256, 3, 2, "VALID"),
                         _maxpool(x)], -1)  # Reduction-A: 1024
    for _ in range(7):  # Inception-B
      b1 = c(c(c(x, 192, 1), 224, (1, 7)), 256, (7, 1))
      b2 = c(c(c(c(c(x, 192, 1), 192, (7, 1)), 224, (1, 7)), 224, (7, 1)), 256, (1, 7))
      x = jnp.concatenate([c(x, 384, 1), b1, b2, c(_avgpool(x), 128, 1)], -1)
    b0 = c(c(x, 192, 1), 192, 3, 2, "VALID")
    b1 = c(c(c(c(x, 256, 1), 256, (1, 7)), 320, (7, 1)), 320, 3, 2, "VALID")
    x = jnp.concatenate([b0, b1, _maxpool(x)], -1)  # Reduction-B: 1536
    for _ in range(3):  # Inception-C
      b1 = c(x, 384, 1)
      b1 = jnp.concatenate([c(b1, 256, (1, 3)), c(b1, 256, (3, 1))], -1)
      b2 = c(c(c(x, 384, 1), 448, (3, 1)), 512, (1, 3))
      b2 = jnp.concatenate([c(b2, 256, (1, 3)), c(b2, 256, (3, 1))], -1)
      x = jnp.concatenate([c(x, 256, 1), b1, b2, c(_avgpool(x), 256, 1)], -1)
    return pooled_classifier(self, x, train=train, dropout=self.dropout)


class InceptionResNetV1(nn.Module):
  """Inception-ResNet-v1 on 299x299: stem (Fig. 14), 5 x Inception-ResNet-A (scale 0.17),
  Reduction-A (k, l, m, n = 192, 192, 256, 384), 10 x B (0.1), Reduction-B, 5 x C (0.2; the last
  without ReLU), average pool, dropout (keep 0.8), FC."""
  num_classes: int
  dropout: float = 0.2
  include_top: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    c = _Convs(train, self.dtype)
    x = c(c(c(x, 32, 3, 2, "VALID"), 32, 3, padding="VALID"), 64, 3)
    x = c(c(c(_maxpool(x), 80, 1), 192, 3, padding="VALID"), 256, 3, 2, "VALID")
    for i in range(5):
      branches = [c(x, 32, 1), c(c(x, 32, 1), 32, 3), c(c(c(x, 32, 1), 32, 3), 32, 3)]
      x = self._residual(x, branches, 0.17, f"block_a{i + 1}")
    x = jnp.concatenate([c(x, 384, 3, 2, "VALID"), c(c(c(x, 192, 1), 192, 3), 256, 3, 2, "VALID"),
                         _maxpool(x)], -1)  # Reduction-A: 896
    for i in range(10):
      x = self._residual(x, [c(x, 128, 1), c(c(c(x, 128, 1), 128, (1, 7)), 128, (7, 1))], 0.1, f"block_b{i + 1}")
    x = jnp.concatenate([c(c(x, 256, 1), 384, 3, 2, "VALID"), c(c(x, 256, 1), 256, 3, 2, "VALID"),
                         c(c(c(x, 256, 1), 256, 3), 256, 3, 2, "VALID"), _maxpool(x)], -1)  # 1792
    for i in range(5):
      x = self._residual(x, [c(x, 192, 1), c(c(c(x, 192, 1), 192, (1, 3)), 192, (3, 1))], 0.2,
                         f"block_c{i + 1}", act=i < 4)
    return pooled_classifier(self, x, train=train, dropout=self.dropout)

  def _residual(self, x, branches, scale, name, act=True):
    up = Conv(x.shape[-1], (1, 1), dtype=self.dtype, name=f"{name}_up")(jnp.concatenate(branches, -1))
    x = x + scale * up
    return nn.relu(x) if act else x


@register_model(input_shape=(299, 299, 3), num_classes=1000, reference="timm model card: 42.7M (rounded)")
def inception_v4(*, num_classes, **kw):
  """Inception-v4 on 299x299."""
  return InceptionV4(num_classes=num_classes, **kw)


@register_model(input_shape=(299, 299, 3), num_classes=1000, reference="none exact: paper's figures only")
def inception_resnet_v1(*, num_classes, **kw):
  """Inception-ResNet-v1 on 299x299."""
  return InceptionResNetV1(num_classes=num_classes, **kw)
