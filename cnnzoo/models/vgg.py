"""VGG-style networks. Seed 2020-11-12: MiniVGGNet on CIFAR-10."""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import BatchNorm, Conv, MaxPool
from cnnzoo.models.pooling import max_pool
from cnnzoo.models.registry import register_model


class MiniVGGNet(nn.Module):
  """[conv-ReLU-BN]x2, pool, dropout; [conv-ReLU-BN]x2, pool, dropout; FC-ReLU-BN, dropout; FC.

  The seed builds it in Keras with conv -> ReLU -> BatchNorm (Keras' BN defaults: momentum 0.99,
  epsilon 1e-3) and dropout 0.25 after each pool, 0.5 before the classifier. `batch_norm=False` is
  the seed's comparison without BatchNorm (the same layers otherwise).
  """
  num_classes: int
  batch_norm: bool = True
  widths: tuple[int, ...] = (32, 64)
  hidden: int = 512
  conv_dropout: float = 0.25
  dropout: float = 0.5
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  include_top: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = functools.partial(Conv, kernel_size=(3, 3), padding="SAME", dtype=self.dtype)
    norm = functools.partial(BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=self.bn_epsilon, dtype=self.dtype)
    if not self.batch_norm:
      norm = lambda name: (lambda y: y)  # noqa: E731
    for i, width in enumerate(self.widths):
      for j in range(2):
        x = conv(width, name=f"block{i + 1}_conv{j + 1}")(x)
        x = norm(name=f"block{i + 1}_bn{j + 1}")(nn.relu(x))
      x = max_pool(x, (2, 2), strides=(2, 2))
      x = nn.Dropout(self.conv_dropout, deterministic=not train)(x)
    x = x.reshape((x.shape[0], -1))
    self.sow("intermediates", "features", x)
    if not self.include_top:
      return x
    x = nn.Dense(self.hidden, dtype=self.dtype, name="fc1")(x)
    x = norm(name="fc1_bn")(nn.relu(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


# forward_kernels: its forward-only programs take 0.68x the speed with oneDNN's convolutions (its
# conv -> ReLU -> BN fuse in XLA's form; `python -m benchmarks.forward_kernels`, benchmarks/README.md)
@register_model(input_shape=(32, 32, 3), num_classes=10, reference="seed 2020-11-12, rebuilt in Keras 3",
                forward_kernels="xla")
def minivggnet(*, num_classes, **kw):
  """Seed 2020-11-12: MiniVGGNet on CIFAR-10 (32x32x3)."""
  return MiniVGGNet(num_classes=num_classes, **kw)


# Simonyan & Zisserman 2015, Table 1: configurations A (11), B (13), D (16), E (19); "M" = max pool.
VGG_CONFIGS = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
VGG_WIDTHS = (64, 128, 256, 512, 512)


class VGG(nn.Module):
  """VGG with `convs_per_block` 3x3 convs per block (widths 64-512), 2x2 max pools, and the
  4096-4096 classifier. Layer names follow Keras' VGG16 (`block1_conv1` ... `fc1`, `fc2`), so
  Keras weight files map one to one. `batch_norm` gives the torchvision `_bn` forms."""
  convs_per_block: Sequence[int]
  num_classes: int
  batch_norm: bool = False
  include_top: bool = True
  pooling: str = "avg"  # without the top: avg | max | none (the 7x7x512 map, e.g. for FCHeadNet)
  dropout: float = 0.5  # in the classifier (the paper and torchvision; Keras' VGG16 has none)
  fc_width: int = 4096  # the two hidden Dense layers of the classifier
  bn_momentum: float = 0.9  # torchvision's BatchNorm2d (momentum 0.1 in its convention)
  bn_epsilon: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    for b, (n, width) in enumerate(zip(self.convs_per_block, VGG_WIDTHS), start=1):
      for c in range(1, n + 1):
        x = Conv(width, (3, 3), padding="SAME", dtype=self.dtype, name=f"block{b}_conv{c}")(x)
        if self.batch_norm:
          x = BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                           epsilon=self.bn_epsilon, dtype=self.dtype, name=f"block{b}_bn{c}")(x)
        x = nn.relu(x)
      x = MaxPool(name=f"block{b}_pool")(x)
      self.sow("intermediates", f"block{b}", x)
    if not self.include_top:  # Keras' pooling= on the convolutional base: avg, max or none (the map)
      x = {"avg": lambda: jnp.mean(x, axis=(1, 2)), "max": lambda: jnp.max(x, axis=(1, 2)),
           "none": lambda: x}[self.pooling]()
      self.sow("intermediates", "features", x)
      return x
    x = x.reshape((x.shape[0], -1))
    for i in (1, 2):
      x = nn.relu(nn.Dense(self.fc_width, dtype=self.dtype, name=f"fc{i}")(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    self.sow("intermediates", "features", x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="predictions")(x).astype(jnp.float32)


def _vgg(depth, batch_norm):
  def builder(*, num_classes, **kw):
    kw = {"convs_per_block": VGG_CONFIGS[depth], **kw}  # fewer convs per block: quick smoke tests
    return VGG(batch_norm=batch_norm, num_classes=num_classes, **kw)
  builder.__name__ = f"vgg{depth}{'_bn' if batch_norm else ''}"
  builder.__doc__ = f"VGG-{depth}{' with BatchNorm' if batch_norm else ''} on 224x224."
  return builder


for _depth in VGG_CONFIGS:
  for _bn in (False, True):
    register_model(input_shape=(224, 224, 3), num_classes=1000,
                   preprocess="caffe" if _depth in (16, 19) and not _bn else "torch",  # keras.applications' VGGs
                   reference="torchvision docs; keras.applications, logits equal in tests" if _depth in (16, 19) and not _bn
                   else "torchvision docs")(_vgg(_depth, _bn))
