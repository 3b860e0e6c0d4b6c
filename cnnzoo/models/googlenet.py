"""GoogLeNet (Szegedy et al. 2014) and the journal's MiniGoogLeNet / DeeperGoogLeNet.

A "conv module" is conv -> BatchNorm -> ReLU throughout. `googlenet` is torchvision's BatchNorm
form (no conv bias, BN epsilon 1e-3, the "5x5" branch with a 3x3 kernel as torchvision has it,
ceil-mode pooling); the seed's networks are Keras (conv bias, Keras BN defaults).
"""

import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import BatchNorm, Conv, adaptive_avg_pool, pooled_classifier
from cnnzoo.models.pooling import max_pool
from cnnzoo.models.registry import register_model

# Szegedy et al. 2014, Table 1: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) per module.
INCEPTION_3 = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64)}
INCEPTION_4 = {"4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
               "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
               "4e": (256, 160, 320, 32, 128, 128)}
INCEPTION_5 = {"5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128)}


class ConvModule(nn.Module):
  """conv -> BatchNorm -> ReLU."""
  filters: int
  kernel: int = 1
  strides: int = 1
  padding: Any = "SAME"
  use_bias: bool = True
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = Conv(self.filters, (self.kernel, self.kernel), (self.strides, self.strides), padding=self.padding,
                use_bias=self.use_bias, dtype=self.dtype, name="conv")(x)
    x = BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                     dtype=self.dtype, name="bn")(x)
    return nn.relu(x)


class Inception(nn.Module):
  """The four-branch inception module: 1x1 | 1x1-3x3 | 1x1-kxk | 3x3 max pool-1x1, concatenated."""
  widths: Sequence[int]  # (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
  conv: Any
  wide_kernel: int = 5

  @nn.compact
  def __call__(self, x, train: bool = False):
    c1, r3, c3, r5, c5, pp = self.widths
    b1 = self.conv(c1, name="branch1")(x, train)
    b2 = self.conv(c3, 3, name="branch2_conv2")(self.conv(r3, name="branch2_conv1")(x, train), train)
    b3 = self.conv(c5, self.wide_kernel, name="branch3_conv2")(self.conv(r5, name="branch3_conv1")(x, train), train)
    b4 = self.conv(pp, name="branch4")(max_pool(x, (3, 3), (1, 1), padding="SAME"), train)
    return jnp.concatenate([b1, b2, b3, b4], axis=-1)


def max_pool_ceil(x, size: int, stride: int):
  """Max pooling with PyTorch's ceil_mode=True (the last window may hang over the edge)."""
  pads = []
  for n in x.shape[1:3]:
    out = math.ceil((n - size) / stride) + 1
    pads.append((0, max(0, (out - 1) * stride + size - n)))
  return max_pool(x, (size, size), (stride, stride), padding=pads)


class AuxHead(nn.Module):
  """torchvision's InceptionAux: 4x4 average pool, 1x1 conv 128, FC 1024, dropout 0.7, FC."""
  num_classes: int
  conv: Any
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = self.conv(128, name="conv")(adaptive_avg_pool(x, 4), train)
    x = nn.relu(nn.Dense(1024, dtype=self.dtype, name="fc1")(x.reshape((x.shape[0], -1))))
    x = nn.Dropout(0.7, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="fc2")(x)


class GoogLeNet(nn.Module):
  """Inception v1 in torchvision's BatchNorm form; `aux_logits` adds the two auxiliary classifiers
  (after 4a and 4d), whose logits are sown in the `aux_logits` collection."""
  num_classes: int
  aux_logits: bool = False
  dropout: float = 0.2
  include_top: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = functools.partial(ConvModule, use_bias=False, bn_momentum=0.9, bn_epsilon=1e-3, dtype=self.dtype)
    x = max_pool_ceil(conv(64, 7, 2, padding=((3, 3), (3, 3)), name="conv1")(x, train), 3, 2)
    x = conv(64, name="conv2")(x, train)
    x = max_pool_ceil(conv(192, 3, name="conv3")(x, train), 3, 2)
    for name, widths in INCEPTION_3.items():
      x = Inception(widths, conv, wide_kernel=3, name=f"inception{name}")(x, train)
    x = max_pool_ceil(x, 3, 2)
    for name, widths in INCEPTION_4.items():
      x = Inception(widths, conv, wide_kernel=3, name=f"inception{name}")(x, train)
      if self.aux_logits and name in ("4a", "4d"):
        aux = AuxHead(self.num_classes, conv, self.dtype, name=f"aux{1 if name == '4a' else 2}")(x, train)
        self.sow("aux_logits", name, aux.astype(jnp.float32))
    x = max_pool_ceil(x, 2, 2)
    for name, widths in INCEPTION_5.items():
      x = Inception(widths, conv, wide_kernel=3, name=f"inception{name}")(x, train)
    return pooled_classifier(self, x, train=train, dropout=self.dropout, name="fc")


class MiniGoogLeNet(nn.Module):
  """Seed 2020-12-06 (CIFAR-10): conv 96; inception (32,32), (32,48); downsample 80; inception
  (112,48), (96,64), (80,80), (48,96); downsample 96; inception (176,160) x2; 7x7 average pool,
  dropout 0.5, dense. Inception = 1x1 beside 3x3; downsample = 3x3/2 conv beside 3x3/2 max pool."""
  num_classes: int
  dropout: float = 0.5
  include_top: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = functools.partial(ConvModule, dtype=self.dtype)
    count = iter(range(1, 100))

    def inception(x, k1, k3):
      i = next(count)
      return jnp.concatenate([conv(k1, name=f"inception{i}_1x1")(x, train),
                              conv(k3, 3, name=f"inception{i}_3x3")(x, train)], axis=-1)

    def downsample(x, k):
      i = next(count)
      return jnp.concatenate([conv(k, 3, 2, padding="VALID", name=f"downsample{i}")(x, train),
                              max_pool(x, (3, 3), (2, 2))], axis=-1)

    x = conv(96, 3, name="stem")(x, train)
    x = downsample(inception(inception(x, 32, 32), 32, 48), 80)
    for k1, k3 in ((112, 48), (96, 64), (80, 80), (48, 96)):
      x = inception(x, k1, k3)
    x = downsample(x, 96)
    x = inception(inception(x, 176, 160), 176, 160)
    return pooled_classifier(self, x, train=train, dropout=self.dropout)


class DeeperGoogLeNet(nn.Module):
  """Seed 2020-12-10 (Tiny-ImageNet 64x64): conv 64 5x5, pool, conv 64 1x1, conv 192 3x3, pool,
  inception 3a, 3b, pool, 4a-4e (GoogLeNet's widths, true 5x5 kernels), pool, 4x4 average pool,
  dropout 0.4, dense. Pools are 3x3/2 "same". L2 is the config's (configs/deepergooglenet_tiny.py:
  2e-4, the book's; the journal names none for this network)."""
  num_classes: int
  dropout: float = 0.4
  include_top: bool = True
  inception4_modules: int = 5  # 4a-4e; fewer (the first N) only to make smoke runs compile faster
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = functools.partial(ConvModule, dtype=self.dtype)
    pool = functools.partial(max_pool, window_shape=(3, 3), strides=(2, 2), padding="SAME")
    x = pool(conv(64, 5, name="block1")(x, train))
    x = pool(conv(192, 3, name="block3")(conv(64, 1, name="block2")(x, train), train))
    for name, widths in INCEPTION_3.items():
      x = Inception(widths, conv, name=f"inception{name}")(x, train)
    x = pool(x)
    for name, widths in list(INCEPTION_4.items())[:self.inception4_modules]:
      x = Inception(widths, conv, name=f"inception{name}")(x, train)
    x = jnp.mean(pool(x), axis=(1, 2))  # AveragePooling2D(4) on the 4x4 map
    self.sow("intermediates", "features", x)
    if not self.include_top:
      return x
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


@register_model(input_shape=(224, 224, 3), num_classes=1000, reference="torchvision docs: 6,624,904 (no aux)")
def googlenet(*, num_classes, **kw):
  """GoogLeNet / Inception v1 (torchvision's BatchNorm form) on 224x224."""
  return GoogLeNet(num_classes=num_classes, **kw)


@register_model(input_shape=(32, 32, 3), num_classes=10, reference="seed 2020-12-06, rebuilt in Keras 3")
def minigooglenet(*, num_classes, **kw):
  """Seed 2020-12-06: MiniGoogLeNet on CIFAR-10."""
  return MiniGoogLeNet(num_classes=num_classes, **kw)


@register_model(input_shape=(64, 64, 3), num_classes=200, reference="seed 2020-12-10, rebuilt in Keras 3")
def deepergooglenet(*, num_classes, **kw):
  """Seed 2020-12-10: DeeperGoogLeNet on Tiny-ImageNet-200."""
  return DeeperGoogLeNet(num_classes=num_classes, **kw)
