"""One configurable ResNet; the named networks are one-line variants of it.

`ResNet` covers the original (post-activation, He et al. 2015) and the pre-activation form
(He et al. 2016, "Identity Mappings"), basic and bottleneck blocks, and the stems the journal
uses: CIFAR's 3x3 conv, the seed's Tiny-ImageNet 5x5 conv + pool, and ImageNet's 7x7/2 + pool.
"""

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import BatchNorm, Conv, pooled_classifier
from cnnzoo.models.pooling import max_pool
from cnnzoo.models.registry import register_model

ModuleDef = Callable[..., nn.Module]


class BasicBlock(nn.Module):
  """Two 3x3 convs (He et al. 2015, Fig. 2 left); pre-activation when `preact`."""
  filters: int
  conv: ModuleDef
  norm: ModuleDef
  act: Callable
  strides: int = 1
  project: bool = False
  preact: bool = False

  @nn.compact
  def __call__(self, x):
    s = (self.strides, self.strides)
    if self.preact:
      a = self.act(self.norm(name="bn1")(x))
      y = self.conv(self.filters, (3, 3), s, name="conv1")(a)
      y = self.act(self.norm(name="bn2")(y))
      y = self.conv(self.filters, (3, 3), name="conv2")(y)
      shortcut = self.conv(self.filters, (1, 1), s, name="proj_conv")(a) if self.project else x
      return y + shortcut
    y = self.act(self.norm(name="bn1")(self.conv(self.filters, (3, 3), s, name="conv1")(x)))
    y = self.norm(name="bn2")(self.conv(self.filters, (3, 3), name="conv2")(y))
    shortcut = x
    if self.project:
      shortcut = self.norm(name="proj_bn")(self.conv(self.filters, (1, 1), s, name="proj_conv")(x))
    return self.act(y + shortcut)


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3 (carrying the stride), 1x1 expand to `filters`; pre-activation when `preact`."""
  filters: int
  conv: ModuleDef
  norm: ModuleDef
  act: Callable
  strides: int = 1
  project: bool = False
  preact: bool = False
  ratio: float = 0.25  # inner width = filters * ratio (4x expansion in He et al. 2015)

  @nn.compact
  def __call__(self, x):
    s = (self.strides, self.strides)
    inner = int(self.filters * self.ratio)
    if self.preact:
      a = self.act(self.norm(name="bn1")(x))
      y = self.conv(inner, (1, 1), name="conv1")(a)
      y = self.conv(inner, (3, 3), s, name="conv2")(self.act(self.norm(name="bn2")(y)))
      y = self.conv(self.filters, (1, 1), name="conv3")(self.act(self.norm(name="bn3")(y)))
      shortcut = self.conv(self.filters, (1, 1), s, name="proj_conv")(a) if self.project else x
      return y + shortcut
    y = self.act(self.norm(name="bn1")(self.conv(inner, (1, 1), name="conv1")(x)))
    y = self.act(self.norm(name="bn2")(self.conv(inner, (3, 3), s, name="conv2")(y)))
    y = self.norm(name="bn3")(self.conv(self.filters, (1, 1), name="conv3")(y))
    shortcut = x
    if self.project:
      shortcut = self.norm(name="proj_bn")(self.conv(self.filters, (1, 1), s, name="proj_conv")(x))
    return self.act(y + shortcut)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
  """ResNet with `stage_sizes` blocks per stage and `filters` = (stem, stage 1 out, stage 2 out, ...).

  Attributes:
    stem: "cifar" (3x3 conv), "tiny_imagenet" (the seed's 5x5 conv-BN-ReLU, pad 1, 3x3/2 max pool),
      or "imagenet" (7x7/2 conv-BN-ReLU, 3x3/2 max pool).
    input_norm: BatchNorm on the raw input, as the seed's Keras ResNet does.
    project_first: a projection shortcut on every stage's first block even where shapes match
      (the seed's `red=True`); otherwise only where stride or width changes (torchvision).
    batch_norm: False drops every BatchNorm layer (seed 002's ResNet-18 without BatchNorm); the
      convolutions keep no bias, as in the PyTorch model the seed edits.
  """
  stage_sizes: Sequence[int]
  filters: Sequence[int]
  num_classes: int
  block: str = "bottleneck"
  preact: bool = False
  stem: str = "imagenet"
  input_norm: bool = False
  project_first: bool = False
  bottleneck_ratio: float = 0.25
  batch_norm: bool = True
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  include_top: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if len(self.filters) != len(self.stage_sizes) + 1:
      raise ValueError(f"ResNet needs len(filters) == len(stage_sizes) + 1, got {self.filters} "
                       f"and {self.stage_sizes}")
    if self.block not in BLOCKS:
      raise ValueError(f"unknown ResNet block {self.block!r}; choose from {sorted(BLOCKS)}")
    conv = functools.partial(Conv, use_bias=False, padding="SAME", dtype=self.dtype)
    norm = functools.partial(BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=self.bn_epsilon, dtype=self.dtype)
    if not self.batch_norm:
      norm = lambda name: (lambda y: y)  # noqa: E731
    act = nn.relu
    block_cls = BLOCKS[self.block]
    if self.block == "bottleneck":
      block_cls = functools.partial(block_cls, ratio=self.bottleneck_ratio)

    if self.input_norm:
      x = norm(name="input_bn")(x)
    x = self._stem(x, conv, norm, act)
    width = self.filters[0]
    for i, size in enumerate(self.stage_sizes):
      for j in range(size):
        strides = 2 if i > 0 and j == 0 else 1
        out = self.filters[i + 1]
        project = j == 0 and (self.project_first or strides != 1 or width != out)
        x = block_cls(out, conv=conv, norm=norm, act=act, strides=strides, project=project,
                      preact=self.preact, name=f"stage{i + 1}_block{j + 1}")(x)
        width = out
      self.sow("intermediates", f"stage{i + 1}", x)
    if self.preact:
      x = act(norm(name="final_bn")(x))
    return pooled_classifier(self, x, train=train)

  def _stem(self, x, conv, norm, act):
    if self.stem == "cifar":
      x = conv(self.filters[0], (3, 3), name="stem_conv")(x)
      return x if self.preact else act(norm(name="stem_bn")(x))
    if self.stem == "tiny_imagenet":
      x = act(norm(name="stem_bn")(conv(self.filters[0], (5, 5), name="stem_conv")(x)))
      x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
      return max_pool(x, (3, 3), strides=(2, 2), padding="VALID")
    if self.stem == "imagenet":
      x = conv(self.filters[0], (7, 7), (2, 2), padding=((3, 3), (3, 3)), name="stem_conv")(x)
      x = act(norm(name="stem_bn")(x))
      return max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    raise ValueError(f"unknown ResNet stem {self.stem!r}; choose cifar, tiny_imagenet or imagenet")


# The seed's networks (2020-12-12): pre-activation bottlenecks, BN on the input, projection on each
# stage's first block, Keras BN settings of the seed (momentum 0.9, epsilon 2e-5).
SeedResNet = functools.partial(ResNet, block="bottleneck", preact=True, input_norm=True,
                               project_first=True, bn_momentum=0.9, bn_epsilon=2e-5)


@register_model(input_shape=(32, 32, 3), num_classes=10, reference="seed 2020-12-12, rebuilt in Keras 3")
def resnet_cifar(*, num_classes, **kw):
  """Seed 2020-12-12 CIFAR-10 ResNet: stages (9, 9, 9), filters (64, 64, 128, 256)."""
  kw = {"stage_sizes": (9, 9, 9), "filters": (64, 64, 128, 256), "stem": "cifar", **kw}
  return SeedResNet(num_classes=num_classes, **kw)


@register_model(input_shape=(64, 64, 3), num_classes=200, reference="seed 2020-12-12, rebuilt in Keras 3")
def resnet_tiny(*, num_classes, **kw):
  """Seed 2020-12-12 Tiny-ImageNet ResNet: stages (3, 4, 6), filters (64, 128, 256, 512)."""
  kw = {"stage_sizes": (3, 4, 6), "filters": (64, 128, 256, 512), "stem": "tiny_imagenet", **kw}
  return SeedResNet(num_classes=num_classes, **kw)


_TV = "torchvision docs"


def _torchvision(num_classes, overrides, stage_sizes, block):
  filters = (64, 64, 128, 256, 512) if block == "basic" else (64, 256, 512, 1024, 2048)
  kw = {"stage_sizes": stage_sizes, "filters": filters, "block": block, **overrides}
  return ResNet(num_classes=num_classes, **kw)


@register_model(input_shape=(224, 224, 3), num_classes=1000, reference=_TV)
def resnet18(*, num_classes, **kw):
  return _torchvision(num_classes, kw, (2, 2, 2, 2), "basic")


@register_model(input_shape=(224, 224, 3), num_classes=1000, reference=_TV)
def resnet34(*, num_classes, **kw):
  return _torchvision(num_classes, kw, (3, 4, 6, 3), "basic")


@register_model(input_shape=(224, 224, 3), num_classes=1000, reference=_TV)
def resnet50(*, num_classes, **kw):
  return _torchvision(num_classes, kw, (3, 4, 6, 3), "bottleneck")


@register_model(input_shape=(224, 224, 3), num_classes=1000, reference=_TV)
def resnet101(*, num_classes, **kw):
  return _torchvision(num_classes, kw, (3, 4, 23, 3), "bottleneck")


@register_model(input_shape=(224, 224, 3), num_classes=1000, reference=_TV)
def resnet152(*, num_classes, **kw):
  return _torchvision(num_classes, kw, (3, 8, 36, 3), "bottleneck")
