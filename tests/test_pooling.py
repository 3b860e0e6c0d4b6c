"""cnnzoo/models/pooling.py: max pooling whose gradient is built from strided slices.

The forward pass is flax's, so it must be bitwise equal. The gradient must be JAX's own
(select_and_scatter_add: each window's gradient goes to its first maximum in row-major order):
- with integer images full of ties and integer cotangents every sum is exact, so any difference
  (a tie sent to another position, a tap misplaced) shows as a bitwise mismatch, overlapping or not;
- with float images, non-overlapping windows give every position at most one term: bitwise equal;
  overlapping windows add up to ceil(k/s)^2 terms in another order, so each entry is within
  (terms - 1) * 2^-24 * sum(|terms|) <= 8 * 9 * 2^-24 * max|g| of XLA's."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from cnnzoo.models.pooling import max_pool

CASES = [  # shape, window, strides, padding, overlapping
    ((4, 8, 8, 3), (2, 2), (2, 2), "VALID", False),  # LeNet, VGG, MiniVGGNet
    ((3, 7, 9, 2), (2, 2), (2, 2), "VALID", False),  # odd sizes: the last row / column is dropped
    ((3, 11, 11, 4), (3, 3), (2, 2), "VALID", True),  # AlexNet, Inception
    ((3, 12, 12, 4), (3, 3), (2, 2), ((1, 1), (1, 1)), True),  # the ResNet stem
    ((3, 9, 9, 4), (3, 3), (2, 2), ((0, 1), (0, 1)), True),  # GoogLeNet's ceil-mode pools
    ((2, 8, 8, 5), (3, 3), (1, 1), "SAME", True),  # the Inception-module branch
    ((2, 6, 6, 3), (2, 2), (1, 1), "VALID", True),
]


def grads(x, g, window, strides, padding):
  ours = jax.jit(lambda x, g: jax.vjp(lambda x: max_pool(x, window, strides, padding), x)[1](g)[0])
  xla = jax.jit(lambda x, g: jax.vjp(lambda x: nn.max_pool(x, window, strides, padding), x)[1](g)[0])
  return np.asarray(ours(x, g)), np.asarray(xla(x, g))


@pytest.mark.parametrize("shape,window,strides,padding,overlapping", CASES)
def test_forward_and_gradient_are_jaxs(shape, window, strides, padding, overlapping):
  rng = np.random.default_rng(0)
  ties = rng.integers(0, 3, shape).astype(np.float32)  # most windows hold their maximum twice
  y = np.asarray(nn.max_pool(ties, window, strides, padding))
  np.testing.assert_array_equal(np.asarray(max_pool(ties, window, strides, padding)), y)
  ours, xla = grads(ties, rng.integers(-4, 5, y.shape).astype(np.float32), window, strides, padding)
  np.testing.assert_array_equal(ours, xla)

  x = rng.standard_normal(shape).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(max_pool(x, window, strides, padding)),
                                np.asarray(nn.max_pool(x, window, strides, padding)))
  g = rng.standard_normal(y.shape).astype(np.float32)
  ours, xla = grads(x, g, window, strides, padding)
  if overlapping:
    np.testing.assert_allclose(ours, xla, rtol=0, atol=8 * 9 * 2.0 ** -24 * np.abs(g).max())
  else:
    np.testing.assert_array_equal(ours, xla)
  assert np.count_nonzero(ours) == np.count_nonzero(xla) > 0
