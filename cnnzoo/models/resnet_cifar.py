"""CIFAR ResNets: He et al. 2015 (Sec. 4.2) and the Keras example (keras.io cifar10_resnet) the
seeds train (seed 004's ResNet20-v1 is "identical to the Keras example").

He et al.: 3x3 conv 16, then 3 stages of n basic blocks (16, 32, 64 filters), global pool, FC; depth
6n+2; identity shortcuts everywhere, with option A (stride-2 subsampling and zero-padded channels)
where the shape changes. Paper Table 6: ResNet-20/32/44/56/110 have 0.27/0.46/0.66/0.85/1.7M params.

Keras example v1: the same layout with conv biases, Keras BatchNorm defaults, and a 1x1 stride-2
projection conv (no BN) on each stage's first block. Keras example v2 (depth 9n+2): pre-activation
bottlenecks whose inner width is the stage's input width (16, 64, 128) and output 4x / 2x / 2x it;
the 1x1 conv of a stage's first block carries the stride.
"""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import BatchNorm, Conv, pooled_classifier
from cnnzoo.models.registry import register_model


class HeCifarResNet(nn.Module):
  """He et al. 2015's CIFAR ResNet (option A shortcuts), depth 6n+2."""
  depth: int
  num_classes: int
  include_top: bool = True
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if (self.depth - 2) % 6:
      raise ValueError(f"He et al.'s CIFAR ResNet needs depth = 6n + 2, got {self.depth}")
    n = (self.depth - 2) // 6
    conv = functools.partial(Conv, kernel_size=(3, 3), padding="SAME", use_bias=False, dtype=self.dtype)
    norm = functools.partial(BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=self.bn_epsilon, dtype=self.dtype)
    x = nn.relu(norm(name="stem_bn")(conv(16, name="stem_conv")(x)))
    for s, width in enumerate((16, 32, 64)):
      for b in range(n):
        stride = 2 if s > 0 and b == 0 else 1
        name = f"stage{s + 1}_block{b + 1}"
        y = nn.relu(norm(name=f"{name}_bn1")(conv(width, strides=(stride, stride), name=f"{name}_conv1")(x)))
        y = norm(name=f"{name}_bn2")(conv(width, name=f"{name}_conv2")(y))
        if stride != 1 or x.shape[-1] != width:  # option A: subsample, pad the new channels with zeros
          x = x[:, ::stride, ::stride]
          extra = width - x.shape[-1]
          x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
        x = nn.relu(x + y)
      self.sow("intermediates", f"stage{s + 1}", x)
    return pooled_classifier(self, x, train=train)


class KerasCifarResNet(nn.Module):
  """The Keras example's resnet_v1 (depth 6n+2) and resnet_v2 (depth 9n+2)."""
  depth: int
  num_classes: int
  version: int = 1
  include_top: bool = True
  bn_momentum: float = 0.99  # Keras BatchNormalization defaults
  bn_epsilon: float = 1e-3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    per = 6 if self.version == 1 else 9
    if (self.depth - 2) % per:
      raise ValueError(f"Keras resnet_v{self.version} needs depth = {per}n + 2, got {self.depth}")
    n = (self.depth - 2) // per
    conv = functools.partial(Conv, padding="SAME", dtype=self.dtype)
    norm = functools.partial(BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=self.bn_epsilon, dtype=self.dtype)
    x = nn.relu(norm(name="stem_bn")(conv(16, (3, 3), name="stem_conv")(x)))
    block = self._v1_block if self.version == 1 else self._v2_block
    width = 16
    for s in range(3):
      for b in range(n):
        x, out = block(x, s, b, width, conv, norm, f"stage{s + 1}_block{b + 1}")
      width = out
      self.sow("intermediates", f"stage{s + 1}", x)
    if self.version == 2:
      x = nn.relu(norm(name="final_bn")(x))
    return pooled_classifier(self, x, train=train)

  @staticmethod
  def _v1_block(x, s, b, width, conv, norm, name):
    width = 16 * 2 ** s
    stride = 2 if s > 0 and b == 0 else 1
    y = nn.relu(norm(name=f"{name}_bn1")(conv(width, (3, 3), (stride, stride), name=f"{name}_conv1")(x)))
    y = norm(name=f"{name}_bn2")(conv(width, (3, 3), name=f"{name}_conv2")(y))
    if stride != 1:
      x = conv(width, (1, 1), (stride, stride), name=f"{name}_proj_conv")(x)
    return nn.relu(x + y), width

  @staticmethod
  def _v2_block(x, s, b, width_in, conv, norm, name):
    out = width_in * (4 if s == 0 else 2)
    stride = 2 if s > 0 and b == 0 else 1
    first = s == 0 and b == 0  # follows the stem's BN-ReLU: no second pre-activation
    y = x if first else nn.relu(norm(name=f"{name}_bn1")(x))
    y = conv(width_in, (1, 1), (stride, stride), name=f"{name}_conv1")(y)
    y = conv(width_in, (3, 3), name=f"{name}_conv2")(nn.relu(norm(name=f"{name}_bn2")(y)))
    y = conv(out, (1, 1), name=f"{name}_conv3")(nn.relu(norm(name=f"{name}_bn3")(y)))
    if b == 0:
      x = conv(out, (1, 1), (stride, stride), name=f"{name}_proj_conv")(x)
    return x + y, out


def _register(name, cls, depth, reference, **fields):
  def builder(*, num_classes, **kw):
    return cls(depth=depth, num_classes=num_classes, **{**fields, **kw})
  builder.__name__ = name
  builder.__doc__ = f"{cls.__name__} of depth {depth} on 32x32 CIFAR images."
  register_model(input_shape=(32, 32, 3), num_classes=10, reference=reference)(builder)


for _depth in (20, 32, 44, 56, 110):
  _register(f"resnet{_depth}", HeCifarResNet, _depth, "He et al. 2015, Table 6 (rounded)")
  _register(f"resnet{_depth}_v1", KerasCifarResNet, _depth, "Keras example resnet_v1, rebuilt in Keras 3",
            version=1)
for _depth in (20, 56, 110):
  _register(f"resnet{_depth}_v2", KerasCifarResNet, _depth, "Keras example resnet_v2, rebuilt in Keras 3",
            version=2)
_register("resnet164", KerasCifarResNet, 164, "Keras example resnet_v2 (depth 164), rebuilt in Keras 3",
          version=2)
