"""A 2-D convolution whose backward pass XLA:CPU computes fast, in a loop body too:
`conv_general_dilated`, the drop-in `nn.Conv(conv_general_dilated=...)` that every cnnzoo model's
`layers.Conv` uses.

XLA:CPU's kernel gradient of a convolution is slow where the channels are few (several times its
forward pass; the measurements: benchmarks/README.md, "Measurements behind the code's choices").
The gradient as a sum over chunks of a few images of (patches^T @ output gradient) -- each chunk's
patch matrix small enough to stay in cache, one matmul per chunk, the chunks in a lax.scan -- is the
faster form there.

So on the CPU (one device) every plain NHWC/HWIO convolution has its own VJP: the forward pass
is XLA's, the input gradient is `input_grad` (XLA's own sum, written in the form XLA:CPU hands to
YNNPACK inside a loop body too), and the kernel gradient is `im2col_kernel_grad`. The values
differ from XLA's kernel gradient by float32 reassociation only (~1e-6 relative: another summation
order). One form everywhere is also what makes an epoch run as one compiled loop
(config.steps_per_dispatch) give the per-step loop's bits: XLA's own backward pass compiles to
other sums (and 2-3x slower code) inside a loop body than at a program's top level.
By default (CNNZOO_CPU_CONV=auto) the same convolutions (float32, square strides) go to oneDNN's
kernels instead where its handlers load, forward and backward (cnnzoo/models/onednn.py); the forms
here serve the rest (bfloat16, unequal strides) and CNNZOO_CPU_CONV=ynnpack / eigen.
Other backends (cuDNN on a GPU), the cases this does not cover (grouped or dilated convolutions,
other layouts) and runs over several devices use lax.conv_general_dilated unchanged.
`KERNEL_GRAD = "xla"` (or CNNZOO_CONV_KERNEL_GRAD=xla) turns it off everywhere.
"""

import contextlib
import functools
import os

import jax
import jax.numpy as jnp
from jax import lax

from cnnzoo import parallel
from cnnzoo.errors import ConfigError
from cnnzoo.models import onednn

KERNEL_GRAD = os.environ.get("CNNZOO_CONV_KERNEL_GRAD", "auto")  # auto (im2col on the CPU) | xla | im2col
CHUNK_BYTES = 4 << 20  # the patch matrix of one chunk: about the size of a core's L2 + L3 share
# Every convolution takes the im2col kernel gradient, small and wide ones too: one form everywhere
# keeps the epoch loop bitwise equal to the per-step loop, and XLA's form inside a loop body is the
# slower one (the measurements that decided it: benchmarks/README.md, "Measurements behind the
# code's choices").
_NHWC = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
  """lax.conv_general_dilated; on the CPU, plain NHWC/HWIO convolutions get the VJP of `_conv`
  (input gradient `input_grad`, kernel gradient `im2col_kernel_grad`)."""
  plain = (lhs.ndim == 4 and feature_group_count == 1 and batch_group_count == 1
           and all(d == 1 for d in (lhs_dilation or (1, 1))) and all(d == 1 for d in (rhs_dilation or (1, 1)))
           and preferred_element_type is None
           and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
           == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))
  if not plain or not own_backward():
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                    dimension_numbers, feature_group_count, batch_group_count,
                                    precision, preferred_element_type)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  kh, kw = rhs.shape[:2]
  out = [(size + lo + hi - k) // s + 1 for size, (lo, hi), k, s in zip(lhs.shape[1:3], pads, (kh, kw), window_strides)]
  if any(p < 0 for pair in pads for p in pair) or min(out) < 1:
    return lax.conv_general_dilated(lhs, rhs, window_strides, pads, dimension_numbers=_NHWC, precision=precision)
  if not _XLA_ONLY and onednn.supports(window_strides, lhs.dtype, rhs.dtype) and uses_onednn():
    return onednn.conv(lhs, rhs, tuple(window_strides), pads)
  return _conv(lhs, rhs, tuple(window_strides), pads, precision)


_XLA_ONLY = False


@contextlib.contextmanager
def xla_convolutions():
  """Convolutions traced inside take XLA's forms even under CNNZOO_CPU_CONV=onednn: for XLA's cost
  analysis (FLOPs), which counts nothing inside an FFI call."""
  global _XLA_ONLY
  before, _XLA_ONLY = _XLA_ONLY, True
  try:
    yield
  finally:
    _XLA_ONLY = before


def check_setting() -> None:
  """CNNZOO_CONV_KERNEL_GRAD / KERNEL_GRAD is one of auto, xla, im2col (checked with the config), and
  CNNZOO_CPU_CONV is valid; under onednn its handlers load where they will be used."""
  if KERNEL_GRAD not in ("auto", "xla", "im2col"):
    raise ConfigError(f"CNNZOO_CONV_KERNEL_GRAD must be auto, xla or im2col, not {KERNEL_GRAD!r}")
  if parallel.cpu_conv() == "onednn" and KERNEL_GRAD != "xla" and jax.default_backend() == "cpu":
    onednn.load()


def onednn_eligible() -> bool:
  """Whether this process could hand its convolutions to oneDNN: one CPU device, cnnzoo's own
  backward passes not turned off (CNNZOO_CONV_KERNEL_GRAD=xla)."""
  return KERNEL_GRAD != "xla" and jax.default_backend() == "cpu" and jax.device_count() == 1


def uses_onednn() -> bool:
  """Whether this process's plain float32 convolutions go to oneDNN (CNNZOO_CPU_CONV auto or
  onednn, one CPU device, the handlers loaded)."""
  check_setting()
  return onednn_eligible() and onednn.wanted()


def own_backward() -> bool:
  """Whether plain convolutions get `_conv`'s VJP: on a single CPU device (auto), or forced. Not over several
  devices: the scan over chunks of a batch sharded across devices puts collectives inside a loop
  body, and XLA:CPU's 8 forced host devices on 2 cores then time out in their all-reduce
  rendezvous (tests/test_training.py's 8-device run)."""
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
  XLA:CPU's generic emitter: MiniVGGNet's step at batch 64 took 416-474 ms there against 155-270
  ms per dispatch; this form runs as fast in both and gives both the same bits."""
  kh, kw = w.shape[:2]
  flipped = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
  pad = []
  for size, k, s, (lo, _), out in zip(in_hw, (kh, kw), strides, pads, dy.shape[1:3]):
    low = k - 1 - lo  # the dilated gradient padded so that each input position sees every tap
    pad.append((low, size - (out - 1) * s - 1 - low + k - 1))
  return lax.conv_general_dilated(dy, flipped, (1, 1), pad, lhs_dilation=tuple(strides), dimension_numbers=_NHWC,
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
  return jax.vjp(lambda w: lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC), w)[1](dy)[0]


def cpu_conv_note(why: bool = False) -> str:
  """Which kernels a run on this process's CPU devices convolves with, for results.json and (`why`:
  with why not oneDNN's where auto fell back to XLA's) its devices line: ", oneDNN convolutions",
  ", XLA's convolutions" or ", Eigen convolutions"."""
  choice = parallel.cpu_conv()
  if choice == "eigen":
    return ", Eigen convolutions"
  if uses_onednn():
    return ", oneDNN convolutions"
  reason = onednn.why_not() if why and choice == "auto" and onednn_eligible() else ""
  return f", XLA's convolutions (not oneDNN's: {reason})" if reason else ", XLA's convolutions"
