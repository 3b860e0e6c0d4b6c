"""oneDNN's convolutions on the CPU (the default, CNNZOO_CPU_CONV=auto; forced with onednn): the forward
pass, input gradient and kernel gradient of every plain NHWC/HWIO float32 convolution as XLA FFI
calls into oneDNN 3.2.

XLA:CPU's convolutions (YNNPACK by default, Eigen) run 2-3.5x slower than oneDNN's brgemm / JIT
kernels on the zoo's shapes (`python -m benchmarks.onednn_probe`; benchmarks/README.md). oneDNN
comes from PyPI (onednn-cpu-gomp, in requirements-cpu.txt: oneDNN 3.2, CPU only, GNU OpenMP); the FFI
handlers are `onednn_conv.cc`, built once per machine by kernels/build.py. Each handler reads XLA's
buffers in place: no copies, no Python per call. The sums are oneDNN's (float32, another order than
XLA's: ~1e-6 relative, tests/test_onednn.py). Where the handlers cannot load (no oneDNN, no
compiler, no libgomp, another oneDNN version) `why_not()` says why in one line.
"""

import ctypes
import functools

import jax
import jax.numpy as jnp
import numpy as np

from cnnzoo.kernels import build

TARGETS = {"forward": "CnnzooOnednnConvForward", "input_grad": "CnnzooOnednnConvInputGrad",
           "kernel_grad": "CnnzooOnednnConvKernelGrad"}
VERSION = (3, 2)  # onednn_conv.cc declares oneDNN 3.2's C API and enum values (the wheel has no headers)


class _Version(ctypes.Structure):  # dnnl_version_t
  _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int), ("hash", ctypes.c_char_p),
              ("cpu_runtime", ctypes.c_uint), ("gpu_runtime", ctypes.c_uint)]


def library_version(dnnl) -> tuple[int, int, int]:
  """oneDNN's own version (dnnl_version()) of a loaded library."""
  dnnl.dnnl_version.restype = ctypes.POINTER(_Version)
  v = dnnl.dnnl_version().contents
  return v.major, v.minor, v.patch


@functools.lru_cache(maxsize=None)
def why_not() -> str:
  """'' once the handlers are built (once per machine), oneDNN's version checked and the handlers
  registered with XLA; else why they cannot be, in one line that says what to install."""
  try:
    path = build.build()
  except build.Unavailable as e:
    return str(e)
  try:
    version = library_version(ctypes.CDLL(build.library_path()))
    if version[:2] != VERSION:
      return (f"{build.library_path()} is oneDNN {'.'.join(map(str, version))}, its handlers are written for "
              f"{'.'.join(map(str, VERSION))}; {build.INSTALL}")
    lib = ctypes.cdll.LoadLibrary(path)
  except OSError as e:  # e.g. libgomp.so.1 missing: onednn-cpu-gomp needs GNU OpenMP (apt install libgomp1)
    return f"cannot load it: {e}"
  for symbol in TARGETS.values():
    jax.ffi.register_ffi_target(symbol, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
  return ""


def _call(which: str, shape, a, b, strides, pads):
  (top, bottom), (left, right) = pads
  return jax.ffi.ffi_call(TARGETS[which], jax.ShapeDtypeStruct(shape, jnp.float32))(
      a, b, stride=np.int64(strides[0]), pt=np.int64(top), pb=np.int64(bottom), pl=np.int64(left),
      pr=np.int64(right))


def unsupported(x_dtype, w_dtype, strides) -> str:
  """Why the handlers do not take a convolution ('' when they do): float32 and square strides only."""
  if x_dtype != jnp.float32 or w_dtype != jnp.float32:
    return f"{jnp.dtype(x_dtype).name} x {jnp.dtype(w_dtype).name}, not float32"
  if strides[0] != strides[1]:
    return f"strides {tuple(strides)} are not square"
  return ""


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
