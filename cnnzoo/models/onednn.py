"""oneDNN's convolutions on the CPU (`CNNZOO_CPU_CONV=onednn`): the forward pass, input gradient and
kernel gradient of every plain NHWC/HWIO convolution as XLA FFI calls into oneDNN 3.2.

XLA:CPU's convolutions (YNNPACK by default, Eigen) run 2-3.5x slower than oneDNN's brgemm / JIT
kernels on the zoo's shapes (`python -m benchmarks.onednn_probe`), and they were most of the gap to
PyTorch (issue 11.2). oneDNN comes from PyPI (`pip install onednn-cpu-gomp==2023.2.0`: oneDNN 3.2,
CPU only, GNU OpenMP; `libdnnl.so.3` without headers); the FFI handlers are
`onednn_conv.cc`, compiled on first use against jaxlib's FFI headers with the machine's C++ compiler
($CXX, g++ or c++; else `pip install ziglang`'s) into ~/.cache/cnnzoo/onednn (CNNZOO_ONEDNN_CACHE
moves it). Each handler reads XLA's buffers in place: no copies, no Python per call.

The sums are oneDNN's (float32, another order than XLA's: ~1e-6 relative, tests/test_onednn.py). Every
epoch-loop size shares one program; one call a step can round the optimizer's update differently
(Keras' Adam: 7e-6 apart after a LeNet epoch; SGD bitwise). One CPU device only, as conv.own_backward().
"""

import ctypes
import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from cnnzoo.errors import ConfigError

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onednn_conv.cc")
TARGETS = {"forward": "CnnzooOnednnConvForward", "input_grad": "CnnzooOnednnConvInputGrad",
           "kernel_grad": "CnnzooOnednnConvKernelGrad"}
INSTALL = "pip install onednn-cpu-gomp==2023.2.0"


def library_path() -> str:
  """Where oneDNN's library is: $CNNZOO_DNNL_LIB, else the wheel's place in this environment."""
  return os.environ.get("CNNZOO_DNNL_LIB") or os.path.join(sys.prefix, "lib", "libdnnl.so.3")


def _compiler() -> list[str]:
  for name in (os.environ.get("CXX"), "g++", "c++"):
    if name and shutil.which(name):
      return [shutil.which(name)]
  if importlib.util.find_spec("ziglang"):  # pip install ziglang: a C++ compiler (clang) from PyPI
    return [sys.executable, "-m", "ziglang", "c++"]
  raise ConfigError("CNNZOO_CPU_CONV=onednn compiles a small C++ file on first use and found no C++ compiler: "
                    "install g++ (or set CXX), or pip install ziglang")


def _build(dnnl: str) -> str:
  """The compiled handlers for this source, jaxlib and oneDNN (cached; built atomically on a miss)."""
  include = jax.ffi.include_dir()
  with open(SOURCE, "rb") as f:
    key = hashlib.sha256(f.read() + jax.__version__.encode() + os.path.realpath(dnnl).encode()).hexdigest()[:16]
  cache = os.environ.get("CNNZOO_ONEDNN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cnnzoo", "onednn")
  target = os.path.join(cache, key, "libcnnzoo_onednn.so")
  if os.path.exists(target):
    return target
  compiler = _compiler()  # before anything is written: without one, nothing is left behind
  os.makedirs(os.path.dirname(target), exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(target))
  os.close(fd)
  lib_dir = os.path.dirname(os.path.realpath(dnnl))
  cmd = [*compiler, "-O2", "-shared", "-fPIC", "-std=c++17", "-w", f"-I{include}", SOURCE, "-o", tmp,
         f"-L{lib_dir}", f"-l:{os.path.basename(dnnl)}", f"-Wl,-rpath,{lib_dir}"]
  proc = subprocess.run(cmd, capture_output=True, text=True)
  if proc.returncode:
    os.unlink(tmp)
    last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    raise ConfigError(f"CNNZOO_CPU_CONV=onednn: compiling {SOURCE} failed ({' '.join(cmd[:2])}): {last}")
  os.replace(tmp, target)  # two processes building at once both end with a whole file
  return target


@functools.lru_cache(maxsize=None)
def load() -> None:
  """Builds (once per machine) and registers the FFI handlers; a one-line ConfigError if it cannot."""
  dnnl = library_path()
  if not os.path.exists(dnnl):
    raise ConfigError(f"CNNZOO_CPU_CONV=onednn needs oneDNN: no {dnnl}; {INSTALL} (or set CNNZOO_DNNL_LIB)")
  try:
    lib = ctypes.cdll.LoadLibrary(_build(dnnl))
  except OSError as e:  # e.g. libgomp.so.1 missing: onednn-cpu-gomp needs GNU OpenMP (apt install libgomp1)
    raise ConfigError(f"CNNZOO_CPU_CONV=onednn: cannot load oneDNN ({e})") from None
  for symbol in TARGETS.values():
    jax.ffi.register_ffi_target(symbol, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")


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
