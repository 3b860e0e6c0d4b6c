"""The keras.applications ResNets (He et al. 2015 v1 in Keras' form, and ResNetV2), layer for layer.

These differ from torchvision's ResNets in ways that change the numbers: every convolution has a
bias, BatchNorm epsilon is 1.001e-5, v1 strides on the first 1x1 conv of a block (Caffe style), and
v2 strides in the *last* block of a stage with a 1x1 max-pool shortcut. Layer names are Keras'
(`conv2_block1_1_conv`), so Keras weight files map onto them by name.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import BatchNorm, Conv, pooled_classifier
from cnnzoo.models.pooling import max_pool
from cnnzoo.models.registry import register_model

KERAS_BN = dict(momentum=0.99, epsilon=1.001e-5)


def _pad(x, p):
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))


class KerasResNet(nn.Module):
  """keras.applications ResNet50/101/152 (`preact=False`) and ResNet50V2/101V2/152V2 (`preact=True`)."""
  stage_sizes: Sequence[int]
  num_classes: int
  preact: bool = False
  include_top: bool = True
  pooling: str = "avg"  # without the top: avg | max | none (the last feature map)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = functools.partial(Conv, dtype=self.dtype)
    bn = functools.partial(BatchNorm, use_running_average=not train, dtype=self.dtype, **KERAS_BN)
    x = conv(64, (7, 7), (2, 2), padding=((3, 3), (3, 3)), name="conv1_conv")(x)
    if not self.preact:
      x = nn.relu(bn(name="conv1_bn")(x))
    x = max_pool(_pad(x, 1), (3, 3), (2, 2))  # Keras zero-pads, then pools (matters for v2)
    for s, blocks in enumerate(self.stage_sizes):
      filters = 64 * 2 ** s
      for b in range(1, blocks + 1):
        name = f"conv{s + 2}_block{b}"
        if self.preact:  # stride 2 in the last block of stages 2-4
          stride = 2 if b == blocks and s < len(self.stage_sizes) - 1 else 1
          x = self._block_v2(x, filters, stride, b == 1, name, conv, bn)
        else:  # stride 2 in the first block of stages 3-5
          stride = 2 if b == 1 and s > 0 else 1
          x = self._block_v1(x, filters, stride, b == 1, name, conv, bn)
      self.sow("intermediates", f"conv{s + 2}", x)
    if self.preact:
      x = nn.relu(bn(name="post_bn")(x))
    return pooled_classifier(self, x, train=train, name="predictions")

  @staticmethod
  def _block_v1(x, filters, stride, project, name, conv, bn):
    s = (stride, stride)
    shortcut = x
    if project:
      shortcut = bn(name=f"{name}_0_bn")(conv(4 * filters, (1, 1), s, name=f"{name}_0_conv")(x))
    y = nn.relu(bn(name=f"{name}_1_bn")(conv(filters, (1, 1), s, name=f"{name}_1_conv")(x)))
    y = nn.relu(bn(name=f"{name}_2_bn")(conv(filters, (3, 3), padding="SAME", name=f"{name}_2_conv")(y)))
    y = bn(name=f"{name}_3_bn")(conv(4 * filters, (1, 1), name=f"{name}_3_conv")(y))
    return nn.relu(shortcut + y)

  @staticmethod
  def _block_v2(x, filters, stride, project, name, conv, bn):
    preact = nn.relu(bn(name=f"{name}_preact_bn")(x))
    if project:
      shortcut = conv(4 * filters, (1, 1), name=f"{name}_0_conv")(preact)
    else:
      shortcut = x[:, ::stride, ::stride] if stride > 1 else x  # MaxPooling2D(1, strides=stride)
    y = conv(filters, (1, 1), use_bias=False, name=f"{name}_1_conv")(preact)
    y = nn.relu(bn(name=f"{name}_1_bn")(y))
    y = conv(filters, (3, 3), (stride, stride), padding="VALID", use_bias=False, name=f"{name}_2_conv")(_pad(y, 1))
    y = nn.relu(bn(name=f"{name}_2_bn")(y))
    y = conv(4 * filters, (1, 1), name=f"{name}_3_conv")(y)
    return shortcut + y


_KA = "keras.applications (Keras 3.15), logits equal in tests"
_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _builder(depth, preact):
  def builder(*, num_classes, stage_sizes=_DEPTHS[depth], **kw):  # stage_sizes: smaller for tests
    return KerasResNet(stage_sizes=tuple(stage_sizes), preact=preact, num_classes=num_classes, **kw)
  builder.__name__ = f"resnet{depth}{'v2' if preact else ''}_keras"
  builder.__doc__ = f"keras.applications.ResNet{depth}{'V2' if preact else ''} on 224x224."
  return builder


for _depth in _DEPTHS:
  for _preact in (False, True):
    register_model(input_shape=(224, 224, 3), num_classes=1000, reference=_KA,  # keras.applications' modes:
                   preprocess="tf" if _preact else "caffe")(_builder(_depth, _preact))
