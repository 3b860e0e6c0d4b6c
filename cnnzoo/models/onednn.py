"""oneDNN's convolutions on the CPU (the default, CNNZOO_CPU_CONV=auto; forced with onednn): the forward
pass, input gradient and kernel gradient of every plain NHWC/HWIO convolution as XLA FFI calls into
oneDNN 3.2.

XLA:CPU's convolutions (YNNPACK by default, Eigen) run 2-3.5x slower than oneDNN's brgemm / JIT
kernels on the zoo's shapes (`python -m benchmarks.onednn_probe`), and they were most of the gap to
PyTorch (issue 11.2): with oneDNN's, MiniVGGNet and ResNet-20 train 1.06x and 1.08x PyTorch 2.13's
speed, the zoo 1.3-1.8x faster than with XLA's. oneDNN comes from PyPI (onednn-cpu-gomp, in
requirements-cpu.txt: oneDNN 3.2, CPU only, GNU OpenMP); the FFI handlers are `onednn_conv.cc`,
built once per machine by cnnzoo/native.py. Each handler reads XLA's buffers in place: no copies,
no Python per call.

Under `auto`, a machine where they cannot load (no oneDNN, no compiler, no libgomp) keeps XLA's
convolutions, and the run's devices line says why (`why_not()`); `onednn` makes that an error.
The sums are oneDNN's (float32, another order than XLA's: ~1e-6 relative, tests/test_onednn.py).
One CPU device only, as conv.own_backward().
"""

import ctypes
import functools

import jax
import jax.numpy as jnp
import numpy as np

from cnnzoo import native, parallel
from cnnzoo.errors import ConfigError

TARGETS = {"forward": "CnnzooOnednnConvForward", "input_grad": "CnnzooOnednnConvInputGrad",
           "kernel_grad": "CnnzooOnednnConvKernelGrad"}
INSTALL = native.INSTALL
SOURCE = native.SOURCE


@functools.lru_cache(maxsize=None)
def why_not() -> str:
  """'' once the handlers are built (once per machine) and registered with XLA; else why they
  cannot be, in one line that says what to install."""
  try:
    path = native.build()
  except native.Unavailable as e:
    return str(e)
  try:
    lib = ctypes.cdll.LoadLibrary(path)
  except OSError as e:  # e.g. libgomp.so.1 missing: onednn-cpu-gomp needs GNU OpenMP (apt install libgomp1)
    return f"cannot load it: {e}"
  for symbol in TARGETS.values():
    jax.ffi.register_ffi_target(symbol, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
  return ""


def load() -> None:
  """Builds and registers the handlers; a one-line ConfigError if they cannot be."""
  if why_not():
    raise ConfigError(f"CNNZOO_CPU_CONV=onednn: {why_not()}")


def wanted() -> bool:
  """Whether CPU convolutions go to oneDNN: CNNZOO_CPU_CONV=onednn (a ConfigError if its handlers
  cannot load), or auto where they load."""
  choice = parallel.cpu_conv()
  if choice == "onednn":
    load()
  return choice == "onednn" or (choice == "auto" and not why_not())


def _call(which: str, shape, a, b, strides, pads):
  (top, bottom), (left, right) = pads
  return jax.ffi.ffi_call(TARGETS[which], jax.ShapeDtypeStruct(shape, jnp.float32))(
      a, b, stride=np.int64(strides[0]), pt=np.int64(top), pb=np.int64(bottom), pl=np.int64(left),
      pr=np.int64(right))


def supports(strides, x_dtype, w_dtype) -> bool:
  """Square strides, float32 input and kernel: what the handlers take (others keep conv.py's forms)."""
  return strides[0] == strides[1] and x_dtype == jnp.float32 and w_dtype == jnp.float32


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x, w, strides, pads):
  """The NHWC/HWIO convolution of `x` with `w` (float32; `pads` ((top, bottom), (left, right)))."""
  n, h, wd, _ = x.shape
  kh, kw, _, cout = w.shape
  out = ((h + sum(pads[0]) - kh) // strides[0] + 1, (wd + sum(pads[1]) - kw) // strides[1] + 1)
  return _call("forward", (n, *out, cout), x, w, strides, pads)


def _conv_fwd(x, w, strides, pads):
  return conv(x, w, strides, pads), (x, w)


def _conv_bwd(strides, pads, residuals, dy):
  x, w = residuals
  return (_call("input_grad", x.shape, dy, w, strides, pads),
          _call("kernel_grad", w.shape, x, dy, strides, pads))


conv.defvjp(_conv_fwd, _conv_bwd)
