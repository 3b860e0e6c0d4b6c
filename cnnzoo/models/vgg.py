"""VGG-style networks. Seed 2020-11-12: MiniVGGNet on CIFAR-10."""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.registry import register_model


class MiniVGGNet(nn.Module):
  """[conv-ReLU-BN]x2, pool, dropout; [conv-ReLU-BN]x2, pool, dropout; FC-ReLU-BN, dropout; FC.

  The seed builds it in Keras with conv -> ReLU -> BatchNorm (Keras' BN defaults: momentum 0.99,
  epsilon 1e-3) and dropout 0.25 after each pool, 0.5 before the classifier.
  """
  num_classes: int
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
    conv = functools.partial(nn.Conv, kernel_size=(3, 3), padding="SAME", dtype=self.dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=self.bn_epsilon, dtype=self.dtype)
    for i, width in enumerate(self.widths):
      for j in range(2):
        x = conv(width, name=f"block{i + 1}_conv{j + 1}")(x)
        x = norm(name=f"block{i + 1}_bn{j + 1}")(nn.relu(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
      x = nn.Dropout(self.conv_dropout, deterministic=not train)(x)
    x = x.reshape((x.shape[0], -1))
    self.sow("intermediates", "features", x)
    if not self.include_top:
      return x
    x = nn.Dense(self.hidden, dtype=self.dtype, name="fc1")(x)
    x = norm(name="fc1_bn")(nn.relu(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


@register_model(input_shape=(32, 32, 3), num_classes=10, reference="seed 2020-11-12 (Keras rebuild in tests)")
def minivggnet(*, num_classes, **kw):
  """Seed 2020-11-12: MiniVGGNet on CIFAR-10 (32x32x3)."""
  return MiniVGGNet(num_classes=num_classes, **kw)
