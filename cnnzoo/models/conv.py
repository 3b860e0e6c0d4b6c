"""A 2-D convolution whose kernel gradient XLA:CPU computes fast: `conv_general_dilated`, the
drop-in `nn.Conv(conv_general_dilated=...)` that every cnnzoo model's `layers.Conv` uses.

XLA:CPU lowers the kernel gradient of a convolution to one Eigen convolution with the batch as
the contraction and the whole image as the "kernel", which is slow for the small channel counts of
CIFAR-sized networks: 1,041 ms for MiniVGGNet's 32x32 32->32 layer at batch 128 on a 2-core AMD
EPYC, where its forward pass takes 52 ms (benchmarks/README.md). The same gradient as a sum over
chunks of a few images of (patches^T @ output gradient) -- each chunk's patch matrix small enough
to stay in cache, one matmul per chunk, the chunks in a lax.scan -- takes 54 ms.

So on the CPU the forward pass and the input gradient stay XLA's, and the kernel gradient of a
convolution of at least MIN_FLOPS, and of every 1x1 convolution, is `im2col_kernel_grad` (smaller
ones keep XLA's: as fast there). The values differ from XLA's by float32 reassociation only
(~1e-6 relative: another summation order). Other backends (cuDNN on a GPU) and the cases this does not cover
(grouped or dilated convolutions, other layouts) and runs over several devices use
lax.conv_general_dilated unchanged.
`KERNEL_GRAD = "xla"` (or CNNZOO_CONV_KERNEL_GRAD=xla) turns it off everywhere.
"""

import functools
import os

import jax
import jax.numpy as jnp
from jax import lax

from cnnzoo.errors import ConfigError

KERNEL_GRAD = os.environ.get("CNNZOO_CONV_KERNEL_GRAD", "auto")  # auto (im2col on the CPU) | xla | im2col
CHUNK_BYTES = 4 << 20  # the patch matrix of one chunk: about the size of a core's L2 + L3 share
# auto: below this many kernel-gradient FLOPs XLA's own is as fast or faster (LeNet's 30 MFLOP
# conv2 on a batch of 32: 0.65 ms vs 2.0 ms) and compiles faster; above it im2col wins (75 MFLOP:
# 1.7 vs 2.1 ms to 3.6 vs 1.5 ms depending on the shape; 604 MFLOP: 27 vs 10 ms)
# 1x1 convolutions always: their im2col form is a (strided) reshape and one matmul, 3-10x faster
# than XLA's at every size measured (ResNet-20's 34 MFLOP projections: 4.6 vs 0.4 ms alone; inside
# the whole step XLA also transposed the block's input to batch-last for it, 125 of 570 ms)
MIN_FLOPS = 100e6
POINTWISE_ALWAYS = True  # False: 1x1 convolutions follow MIN_FLOPS too (for A/B benchmarks)
_NHWC = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
  """lax.conv_general_dilated, with the kernel gradient of plain NHWC/HWIO convolutions computed
  by `im2col_kernel_grad` where that is the faster form (the CPU)."""
  plain = (lhs.ndim == 4 and feature_group_count == 1 and batch_group_count == 1
           and all(d == 1 for d in (lhs_dilation or (1, 1))) and all(d == 1 for d in (rhs_dilation or (1, 1)))
           and preferred_element_type is None
           and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
           == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))
  if not plain or not _use_im2col():
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                    dimension_numbers, feature_group_count, batch_group_count,
                                    precision, preferred_element_type)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  kh, kw, cin, cout = rhs.shape
  out = [(size + lo + hi - k) // s + 1 for size, (lo, hi), k, s in zip(lhs.shape[1:3], pads, (kh, kw), window_strides)]
  flops = 2 * lhs.shape[0] * out[0] * out[1] * kh * kw * cin * cout
  pointwise = kh == kw == 1 and POINTWISE_ALWAYS
  if any(p < 0 for pair in pads for p in pair) or min(out) < 1 or (KERNEL_GRAD == "auto" and flops < MIN_FLOPS
                                                                    and not pointwise):
    return lax.conv_general_dilated(lhs, rhs, window_strides, pads, dimension_numbers=_NHWC, precision=precision)
  return _conv(lhs, rhs, tuple(window_strides), pads, precision)


def check_setting() -> None:
  """CNNZOO_CONV_KERNEL_GRAD / KERNEL_GRAD is one of auto, xla, im2col (checked with the config)."""
  if KERNEL_GRAD not in ("auto", "xla", "im2col"):
    raise ConfigError(f"CNNZOO_CONV_KERNEL_GRAD must be auto, xla or im2col, not {KERNEL_GRAD!r}")


def _use_im2col() -> bool:
  """im2col where it pays: on a single CPU device (auto, for kernel gradients of MIN_FLOPS or
  more), or forced. Not over several devices: the scan over chunks of a batch sharded across
  devices puts collectives inside a loop body, and XLA:CPU's 8 forced host devices on 2 cores
  then time out in their all-reduce rendezvous (tests/test_training.py's 8-device run)."""
  check_setting()
  return KERNEL_GRAD == "im2col" or (KERNEL_GRAD == "auto" and jax.default_backend() == "cpu"
                                     and jax.device_count() == 1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, w, strides, pads, precision):
  return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC, precision=precision)


def _conv_fwd(x, w, strides, pads, precision):
  return _conv(x, w, strides, pads, precision), (x, w)


def _conv_bwd(strides, pads, precision, residuals, dy):
  x, w = residuals
  _, input_vjp = jax.vjp(lambda x: lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC,
                                                            precision=precision), x)
  return input_vjp(dy)[0], im2col_kernel_grad(x, dy, w.shape, strides, pads, precision).astype(w.dtype)


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
  return jax.vjp(lambda w: lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC), w)[1](dy)[0]


