"""XLA's convolution with cnnzoo's own backward pass: the form XLA:CPU computes fast, in a loop
body too.

XLA:CPU's kernel gradient of a convolution is slow where the channels are few (several times its
forward pass; the measurements: benchmarks/README.md, "Measurements behind the code's choices").
The gradient as a sum over chunks of a few images of (patches^T @ output gradient) -- each chunk's
patch matrix small enough to stay in cache, one matmul per chunk, the chunks in a lax.scan -- is the
faster form there. So `conv` has its own VJP: the forward pass is XLA's, the input gradient is
`input_grad` (XLA's own sum, written in the form XLA:CPU hands to YNNPACK inside a loop body too),
and the kernel gradient is `im2col_kernel_grad`. The values differ from XLA's kernel gradient by
float32 reassociation only (~1e-6 relative: another summation order). One form everywhere is also
what makes an epoch run as one compiled loop (config.steps_per_dispatch) give the per-step loop's
bits: XLA's own backward pass compiles to other sums (and 2-3x slower code) inside a loop body than
at a program's top level. Every convolution takes this kernel gradient, small and wide ones too, for
the same reason.

It serves, on one CPU device, the convolutions oneDNN's handlers do not take (bfloat16, unequal
strides) and every one under CNNZOO_CPU_CONV=ynnpack / eigen (kernels/dispatch.py chooses).
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

CHUNK_BYTES = 4 << 20  # the patch matrix of one chunk: about the size of a core's L2 + L3 share
NHWC = ("NHWC", "HWIO", "NHWC")


def conv(x, w, strides, pads, precision=None):
  """The NHWC/HWIO convolution of `x` with `w` (`pads` ((top, bottom), (left, right))), XLA's
  forward pass with `input_grad` and `im2col_kernel_grad` as its VJP."""
  return _conv(x, w, tuple(strides), pads, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, w, strides, pads, precision):
  return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=NHWC, precision=precision)


def _conv_fwd(x, w, strides, pads, precision):
  return _conv(x, w, strides, pads, precision), (x, w)


def _conv_bwd(strides, pads, precision, residuals, dy):
  x, w = residuals
  return (input_grad(dy, w, x.shape[1:3], strides, pads, precision).astype(x.dtype),
          im2col_kernel_grad(x, dy, w.shape, strides, pads, precision).astype(w.dtype))


def input_grad(dy, w, in_hw, strides, pads, precision=None):
  """d(loss)/d(input) (N, H, W, cin) of an NHWC/HWIO convolution of an `in_hw` input: the
  transposed convolution, written as a plain NHWC/HWIO convolution of the stride-dilated output
  gradient with the spatially flipped kernel, its in/out channels swapped (a copy of the kernel).

  The sum is the one XLA's VJP builds (the same products in the same order: bitwise equal at the
  top level of a program), but XLA's form -- a reversed kernel read with dimension labels
  `01oi` -- is turned into a YNNPACK convolution only in a program's entry computation. Inside a
  loop body (an epoch as one `lax.fori_loop`, training.build's steps_per_dispatch) it is left to
  XLA:CPU's generic emitter, 2-3x slower (benchmarks/README.md, "Measurements behind the code's
  choices"); this form runs as fast in both and gives both the same bits."""
  kh, kw = w.shape[:2]
  flipped = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
  pad = []
  for size, k, s, (lo, _), out in zip(in_hw, (kh, kw), strides, pads, dy.shape[1:3]):
    low = k - 1 - lo  # the dilated gradient padded so that each input position sees every tap
    pad.append((low, size - (out - 1) * s - 1 - low + k - 1))
  return lax.conv_general_dilated(dy, flipped, (1, 1), pad, lhs_dilation=tuple(strides), dimension_numbers=NHWC,
                                  precision=precision)


_conv.defvjp(_conv_fwd, _conv_bwd)


def im2col_kernel_grad(x, dy, kernel_shape, strides, pads, precision=None):
  """d(loss)/d(kernel) (kh, kw, cin, cout) of an NHWC/HWIO convolution, from its input `x` and
  output gradient `dy`: sum over chunks of images of patches(chunk)^T @ dy(chunk), in float32."""
  kh, kw, cin, cout = kernel_shape
  n, ho, wo = dy.shape[:3]
  # a 1x1 kernel's patch matrix is the input itself (strided): no copy to keep in cache, one matmul
  per = n if kh == kw == 1 else images_per_chunk(n, ho * wo * kh * kw * cin * 4)

  def chunk_grad(xc, dyc):
    xc = jnp.pad(xc, ((0, 0), pads[0], pads[1], (0, 0)))
    taps = [lax.slice(xc, (0, i, j, 0), (xc.shape[0], i + (ho - 1) * strides[0] + 1, j + (wo - 1) * strides[1] + 1, cin),
                      (1, strides[0], strides[1], 1)) for i in range(kh) for j in range(kw)]
    patches = (taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)).reshape(-1, kh * kw * cin)
    return lax.dot_general(patches, dyc.reshape(-1, cout), (((0,), (0,)), ((), ())), precision=precision,
                           preferred_element_type=jnp.float32)

  if per == n:
    grad = chunk_grad(x, dy)
  else:
    chunks = (x.reshape(n // per, per, *x.shape[1:]), dy.reshape(n // per, per, *dy.shape[1:]))
    grad = lax.scan(lambda acc, c: (acc + chunk_grad(*c), None),
                    jnp.zeros((kh * kw * cin, cout), jnp.float32), chunks)[0]
  return grad.reshape(kh, kw, cin, cout)


def images_per_chunk(n: int, patch_bytes_per_image: int) -> int:
  """The largest divisor of the batch `n` whose patch matrix stays within CHUNK_BYTES (at least 1)."""
  limit = max(1, CHUNK_BYTES // max(1, patch_bytes_per_image))
  return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def reference_kernel_grad(x, w, dy, strides, pads):
  """XLA's own kernel gradient (lax.conv_general_dilated's VJP), for tests and benchmarks."""
  return jax.vjp(lambda w: lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=NHWC), w)[1](dy)[0]
