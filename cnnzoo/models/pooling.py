"""Max pooling with a fast gradient: `max_pool` is flax's `nn.max_pool` (the same forward, the
same call), with its gradient computed from one strided slice per window tap instead of XLA's
`select_and_scatter`, which XLA:CPU runs 4-8x slower than everything else in a train step
(MiniVGGNet's two pools, batch 128: 89 + 44 ms of a ~660 ms step; this form 11 + 6 ms).

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
  y = nn.max_pool(x, window, strides, pads)
  return y, (x, y)


def _max_pool_bwd(window, strides, pads, residuals, g):
  x, y = residuals
  n, h, w, c = x.shape
  (kh, kw), (sh, sw), (ho, wo) = window, strides, y.shape[1:3]
  zero = jnp.zeros((), g.dtype)
  if (kh, kw) == (sh, sw) and not any(p for pair in pads for p in pair):  # tiles: one elementwise pass
    tiles = x[:, :ho * kh, :wo * kw].reshape(n, ho, kh, wo, kw, c)
    taken, hits = jnp.zeros(y.shape, bool), []
    for i in range(kh):
      for j in range(kw):
        hit = (tiles[:, :, i, :, j] == y) & ~taken
        taken = taken | hit
        hits.append(jnp.where(hit, g, zero))
    dx = jnp.stack(hits, axis=3).reshape(n, ho, wo, kh, kw, c).transpose(0, 1, 3, 2, 4, 5)
    return (jnp.pad(dx.reshape(n, ho * kh, wo * kw, c), ((0, 0), (0, h - ho * kh), (0, w - wo * kw), (0, 0))),)
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-jnp.inf)
  taken = jnp.zeros(y.shape, bool)
  dx = jnp.zeros(xp.shape, g.dtype)
  for i in range(kh):  # row-major window order: the first maximum of a window takes its gradient
    for j in range(kw):
      span = (i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1)
      tap = lax.slice(xp, (0, i, j, 0), (n, *span, c), (1, sh, sw, 1))
      hit = (tap == y) & ~taken
      taken = taken | hit
      # back to the tap's positions: interior padding spreads the (ho, wo) values `stride` apart
      dx = dx + lax.pad(jnp.where(hit, g, jnp.zeros((), g.dtype)), jnp.zeros((), g.dtype),
                        ((0, 0, 0), (i, xp.shape[1] - span[0], sh - 1), (j, xp.shape[2] - span[1], sw - 1),
                         (0, 0, 0)))
  return (dx[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w],)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
