"""Max pooling with a fast gradient: `max_pool` is flax's `nn.max_pool` (the same forward, the
same call), with its gradient computed from one strided slice per window tap instead of XLA's
`select_and_scatter`, which XLA:CPU runs 10-40x slower (the measurements: benchmarks/README.md,
"Measurements behind the code's choices").

The gradient is the one JAX gives (select_and_scatter_add with a >= select): each window sends
its output gradient to its first maximum in row-major window order. Windows that do not overlap
(stride >= window: LeNet, VGG, MiniVGGNet) give bitwise the same gradients; overlapping ones
(3x3 stride 2) add a position's contributions in another order, a last-bit difference.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def max_pool(inputs, window_shape, strides=None, padding="VALID"):
  """flax.linen.max_pool(inputs, window_shape, strides, padding) for NHWC images."""
  window_shape = tuple(window_shape)
  strides = tuple(strides) if strides is not None else (1,) * len(window_shape)
  if inputs.ndim != 4 or len(window_shape) != 2:
    return nn.max_pool(inputs, window_shape, strides, padding)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(inputs.shape[1:3], window_shape, strides, padding)
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  return _max_pool(inputs, window_shape, strides, pads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x, window, strides, pads):
  return nn.max_pool(x, window, strides, pads)


def _max_pool_fwd(x, window, strides, pads):
  return nn.max_pool(x, window, strides, pads), x


def _first_max(taps):
  """The index of each window's first maximum among `taps` (row-major window order), found with
  strict comparisons on x itself: never by comparing x with the forward's output, which XLA
  may compute in another fusion (a cross-program equality that failed inside a train step)."""
  best, index = taps[0], jnp.zeros(taps[0].shape, jnp.int32)
  for k, tap in enumerate(taps[1:], start=1):
    greater = tap > best
    best = jnp.where(greater, tap, best)
    index = jnp.where(greater, k, index)
  return index


def _max_pool_bwd(window, strides, pads, x, g):
  n, h, w, c = x.shape
  (kh, kw), (sh, sw), (ho, wo) = window, strides, g.shape[1:3]
  zero = jnp.zeros((), g.dtype)
  if (kh, kw) == (sh, sw) and not any(p for pair in pads for p in pair):  # tiles: one elementwise pass
    tiles = x[:, :ho * kh, :wo * kw].reshape(n, ho, kh, wo, kw, c)
    index = _first_max([tiles[:, :, i, :, j] for i in range(kh) for j in range(kw)])
    dx = jnp.stack([jnp.where(index == k, g, zero) for k in range(kh * kw)], axis=3)
    dx = dx.reshape(n, ho, wo, kh, kw, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, ho * kh, wo * kw, c)
    return (jnp.pad(dx, ((0, 0), (0, h - ho * kh), (0, w - wo * kw), (0, 0))),)
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-jnp.inf)
  spans = [(i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1) for i in range(kh) for j in range(kw)]
  taps = [lax.slice(xp, (0, k // kw, k % kw, 0), (n, *span, c), (1, sh, sw, 1)) for k, span in enumerate(spans)]
  index = _first_max(taps)
  dx = jnp.zeros(xp.shape, g.dtype)
  for k, span in enumerate(spans):  # back to the tap's positions: interior padding spreads values `stride` apart
    i, j = k // kw, k % kw
    dx = dx + lax.pad(jnp.where(index == k, g, zero), zero,
                      ((0, 0, 0), (i, xp.shape[1] - span[0], sh - 1), (j, xp.shape[2] - span[1], sw - 1), (0, 0, 0)))
  return (dx[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w],)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
