"""Inception v3 (Szegedy et al. 2015) and Inception-ResNet-v2 (Szegedy et al. 2016) in
keras.applications' form, layer for layer.

Every conv is conv (no bias) -> BatchNorm (no scale, Keras defaults) -> ReLU, created in Keras'
code order and named as Keras 2 named them in a fresh session (`conv2d_1` ... `conv2d_94`,
`batch_normalization_1` ...), the names inside the official
`inception_v3_weights_tf_dim_ordering_tf_kernels*.h5` files, so those import by name.
"""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import BatchNorm, Conv, pooled_classifier
from cnnzoo.models.pooling import max_pool
from cnnzoo.models.registry import register_model


class InceptionV3(nn.Module):
  """keras.applications.InceptionV3 on 299x299 (23,851,784 params with BN statistics)."""
  num_classes: int
  include_top: bool = True
  pooling: str = "avg"  # without the top: avg | max | none (the last feature map)
  grids: int = 3  # the 35x35, 17x17 and 8x8 sections built; fewer (1, 2) for quick smoke tests
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.grids not in (1, 2, 3):
      raise ValueError(f"InceptionV3 grids={self.grids}: 1, 2 or 3 (the full network)")
    count = [0]

    def cbr(x, filters, rows, cols, strides=1, padding="SAME"):
      count[0] += 1
      k = count[0]
      x = Conv(filters, (rows, cols), (strides, strides), padding=padding, use_bias=False,
                  dtype=self.dtype, name=f"conv2d_{k}")(x)
      x = BatchNorm(use_running_average=not train, use_scale=False, momentum=0.99, epsilon=1e-3,
                       dtype=self.dtype, name=f"batch_normalization_{k}")(x)
      return nn.relu(x)

    avg = functools.partial(nn.avg_pool, window_shape=(3, 3), strides=(1, 1), padding="SAME",
                            count_include_pad=False)  # Keras' "same" average excludes the padding
    maxp = functools.partial(max_pool, window_shape=(3, 3), strides=(2, 2))

    x = cbr(x, 32, 3, 3, 2, "VALID")
    x = cbr(x, 32, 3, 3, padding="VALID")
    x = maxp(cbr(x, 64, 3, 3))
    x = cbr(x, 80, 1, 1, padding="VALID")
    x = maxp(cbr(x, 192, 3, 3, padding="VALID"))
    for pool_proj in (32, 64, 64):  # mixed0-2: 35x35
      b1 = cbr(x, 64, 1, 1)
      b5 = cbr(cbr(x, 48, 1, 1), 64, 5, 5)
      b3 = cbr(cbr(cbr(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
      bp = cbr(avg(x), pool_proj, 1, 1)
      x = jnp.concatenate([b1, b5, b3, bp], -1)
    if self.grids == 1:
      return pooled_classifier(self, x, train=train, name="predictions")
    b3 = cbr(x, 384, 3, 3, 2, "VALID")  # mixed3: 17x17
    bd = cbr(cbr(cbr(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, 2, "VALID")
    x = jnp.concatenate([b3, bd, maxp(x)], -1)
    for width in (128, 160, 160, 192):  # mixed4-7
      b1 = cbr(x, 192, 1, 1)
      b7 = cbr(cbr(cbr(x, width, 1, 1), width, 1, 7), 192, 7, 1)
      bd = cbr(x, width, 1, 1)
      for rows, cols, out in ((7, 1, width), (1, 7, width), (7, 1, width), (1, 7, 192)):
        bd = cbr(bd, out, rows, cols)
      bp = cbr(avg(x), 192, 1, 1)
      x = jnp.concatenate([b1, b7, bd, bp], -1)
    self.sow("intermediates", "mixed7", x)
    if self.grids == 2:
      return pooled_classifier(self, x, train=train, name="predictions")
    b3 = cbr(cbr(x, 192, 1, 1), 320, 3, 3, 2, "VALID")  # mixed8: 8x8
    b7 = cbr(cbr(cbr(cbr(x, 192, 1, 1), 192, 1, 7), 192, 7, 1), 192, 3, 3, 2, "VALID")
    x = jnp.concatenate([b3, b7, maxp(x)], -1)
    for _ in range(2):  # mixed9, mixed10
      b1 = cbr(x, 320, 1, 1)
      b3 = cbr(x, 384, 1, 1)
      b3 = jnp.concatenate([cbr(b3, 384, 1, 3), cbr(b3, 384, 3, 1)], -1)
      bd = cbr(cbr(x, 448, 1, 1), 384, 3, 3)
      bd = jnp.concatenate([cbr(bd, 384, 1, 3), cbr(bd, 384, 3, 1)], -1)
      bp = cbr(avg(x), 192, 1, 1)
      x = jnp.concatenate([b1, b3, bd, bp], -1)
    return pooled_classifier(self, x, train=train, name="predictions")


@register_model(input_shape=(299, 299, 3), num_classes=1000, preprocess="tf",
                reference="keras.applications.InceptionV3: 23,851,784 total; logits equal in tests")
def inception_v3(*, num_classes, **kw):
  """Inception v3 (keras.applications' form) on 299x299."""
  return InceptionV3(num_classes=num_classes, **kw)


class _KerasConvs:
  """Creates conv2d_bn units as Keras does: auto-named ones numbered in creation order
  (`conv2d_k`, `batch_normalization_k`), named ones `NAME` / `NAME_bn`."""

  def __init__(self, train, dtype):
    self.count, self.train, self.dtype = 0, train, dtype

  def __call__(self, x, filters, kernel, strides=1, padding="SAME", act=True, use_bias=False, name=None):
    kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    if name is None:
      self.count += 1
      conv_name, bn_name = f"conv2d_{self.count}", f"batch_normalization_{self.count}"
    else:
      conv_name, bn_name = name, f"{name}_bn"
    x = Conv(filters, kernel, (strides, strides), padding=padding, use_bias=use_bias, dtype=self.dtype,
                name=conv_name)(x)
    if not use_bias:
      x = BatchNorm(use_running_average=not self.train, use_scale=False, momentum=0.99, epsilon=1e-3,
                       dtype=self.dtype, name=bn_name)(x)
    return nn.relu(x) if act else x


class InceptionResNetV2(nn.Module):
  """keras.applications.InceptionResNetV2 (Szegedy et al. 2016) on 299x299: stem, mixed_5b,
  10 x block35 (residual scale 0.17), mixed_6a, 20 x block17 (0.1), mixed_7a, 10 x block8 (0.2, the
  last with scale 1 and no ReLU), conv_7b. The residual branches are scaled before the addition,
  as the paper does to keep very deep residual Inception networks stable."""
  num_classes: int
  include_top: bool = True
  pooling: str = "avg"  # without the top: avg | max | none (the last feature map)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    cbr = _KerasConvs(train, self.dtype)
    maxp = functools.partial(max_pool, window_shape=(3, 3), strides=(2, 2))
    x = cbr(x, 32, 3, 2, "VALID")
    x = cbr(x, 32, 3, padding="VALID")
    x = maxp(cbr(x, 64, 3))
    x = cbr(x, 80, 1, padding="VALID")
    x = maxp(cbr(x, 192, 3, padding="VALID"))
    b0 = cbr(x, 96, 1)
    b1 = cbr(cbr(x, 48, 1), 64, 5)
    b2 = cbr(cbr(cbr(x, 64, 1), 96, 3), 96, 3)
    bp = cbr(nn.avg_pool(x, (3, 3), (1, 1), "SAME", count_include_pad=False), 64, 1)
    x = jnp.concatenate([b0, b1, b2, bp], -1)  # mixed_5b
    for i in range(1, 11):
      x = self._block(cbr, x, "block35", i, 0.17)
    b0 = cbr(x, 384, 3, 2, "VALID")
    b1 = cbr(cbr(cbr(x, 256, 1), 256, 3), 384, 3, 2, "VALID")
    x = jnp.concatenate([b0, b1, maxp(x)], -1)  # mixed_6a
    for i in range(1, 21):
      x = self._block(cbr, x, "block17", i, 0.1)
    b0 = cbr(cbr(x, 256, 1), 384, 3, 2, "VALID")
    b1 = cbr(cbr(x, 256, 1), 288, 3, 2, "VALID")
    b2 = cbr(cbr(cbr(x, 256, 1), 288, 3), 320, 3, 2, "VALID")
    x = jnp.concatenate([b0, b1, b2, maxp(x)], -1)  # mixed_7a
    for i in range(1, 10):
      x = self._block(cbr, x, "block8", i, 0.2)
    x = self._block(cbr, x, "block8", 10, 1.0, act=False)
    x = cbr(x, 1536, 1, name="conv_7b")
    return pooled_classifier(self, x, train=train, name="predictions")

  @staticmethod
  def _block(cbr, x, kind, index, scale, act=True):
    if kind == "block35":
      branches = [cbr(x, 32, 1), cbr(cbr(x, 32, 1), 32, 3), cbr(cbr(cbr(x, 32, 1), 48, 3), 64, 3)]
    elif kind == "block17":
      branches = [cbr(x, 192, 1), cbr(cbr(cbr(x, 128, 1), 160, (1, 7)), 192, (7, 1))]
    else:
      branches = [cbr(x, 192, 1), cbr(cbr(cbr(x, 192, 1), 224, (1, 3)), 256, (3, 1))]
    up = cbr(jnp.concatenate(branches, -1), x.shape[-1], 1, act=False, use_bias=True,
             name=f"{kind}_{index}_conv")
    x = x + scale * up
    return nn.relu(x) if act else x


@register_model(input_shape=(299, 299, 3), num_classes=1000, preprocess="tf",
                reference="keras.applications.InceptionResNetV2: 55,873,736; logits equal in tests")
def inception_resnet_v2(*, num_classes, **kw):
  """Inception-ResNet-v2 (keras.applications' form) on 299x299."""
  return InceptionResNetV2(num_classes=num_classes, **kw)
