"""The first networks of the journal: ShallowNet and LeNet-5.

Seed 2020-11-10 (ShallowNet: one conv layer and a softmax classifier) and seed 2020-11-11 /
the LeNet notes (LeNet-5 on 32x32 inputs; the Keras notebook's form on 28x28 MNIST).
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnzoo.models.layers import Conv
from cnnzoo.models.pooling import max_pool
from cnnzoo.models.registry import register_model


class ShallowNet(nn.Module):
  """conv 3x3 (same) -> ReLU -> flatten -> dense classes (seed 2020-11-10)."""
  num_classes: int
  filters: int = 32
  include_top: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no dropout or BatchNorm
    x = Conv(self.filters, (3, 3), padding="SAME", dtype=self.dtype, name="conv1")(x)
    x = nn.relu(x)
    x = x.reshape((x.shape[0], -1))
    self.sow("intermediates", "features", x)
    if not self.include_top:
      return x
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


class LeNet(nn.Module):
  """LeNet-5 with ReLU and max pooling: C1 conv6 5x5, S2, C3 conv16 5x5, S4, F5 120, F6 84, output.

  Valid convolutions, as in LeCun et al. 1998; C5 is a dense layer over the flattened S4 maps,
  which is the same thing on a 32x32 input (5x5x16 -> 120: 48,120 params, seed LeNet notes).
  """
  num_classes: int
  widths: tuple[int, ...] = (6, 16)
  hidden: tuple[int, ...] = (120, 84)
  include_top: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    for i, width in enumerate(self.widths):
      x = Conv(width, (5, 5), padding="VALID", dtype=self.dtype, name=f"conv{i + 1}")(x)
      x = nn.relu(x)
      x = max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    self.sow("intermediates", "features", x)
    if not self.include_top:
      return x
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(width, dtype=self.dtype, name=f"fc{i + 1}")(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


@register_model(input_shape=(32, 32, 3), num_classes=3, reference="arithmetic; seed code rebuilt in Keras 3")
def shallownet(*, num_classes, **kw):
  """Seed 2020-11-10: the animals ShallowNet on 32x32x3."""
  return ShallowNet(num_classes=num_classes, **kw)


@register_model(input_shape=(32, 32, 1), num_classes=10, reference="LeNet-5 with ReLU/max-pool: 61,706; Keras 3")
def lenet5(*, num_classes, **kw):
  """LeNet-5 on its 32x32x1 input."""
  return LeNet(num_classes=num_classes, **kw)


@register_model(input_shape=(28, 28, 1), num_classes=10, reference="seed LeNet Keras notebook: 44,426; Keras 3")
def lenet5_keras(*, num_classes, **kw):
  """The seed's Keras notebook LeNet on 28x28x1 MNIST (valid convs, so F5 sees 4x4x16)."""
  return LeNet(num_classes=num_classes, **kw)
