"""Building cnnzoo's oneDNN convolution handlers (cnnzoo/models/onednn_conv.cc) on this machine.

The handlers are XLA FFI functions compiled against jaxlib's FFI headers and the pip-installed
oneDNN (`onednn-cpu-gomp`, which ships `libdnnl.so.3` without headers), with the machine's C++
compiler ($CXX, g++ or c++; else `pip install ziglang`'s clang) into ~/.cache/cnnzoo/onednn
(CNNZOO_ONEDNN_CACHE moves it), once per source, jax and oneDNN version.

This module imports no JAX: experiments/main.py calls `start()` before its main() imports JAX, so
a first run compiles the handlers (2-3 s with g++) on the second core while Python imports JAX and
builds the model, and `build()` then only waits for what is left.
"""

import atexit
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "onednn_conv.cc")
INSTALL = "pip install onednn-cpu-gomp==2023.2.0"


class Unavailable(Exception):
  """Why oneDNN's handlers cannot be used here (one line, saying what to install)."""


def library_path() -> str:
  """Where oneDNN's library is: $CNNZOO_DNNL_LIB, else the wheel's place in this environment."""
  return os.environ.get("CNNZOO_DNNL_LIB") or os.path.join(sys.prefix, "lib", "libdnnl.so.3")


def _jaxlib_include() -> str:
  """jax.ffi.include_dir(), found without importing JAX."""
  spec = importlib.util.find_spec("jaxlib")
  return os.path.join(list(spec.submodule_search_locations)[0], "include")


def target(dnnl: str) -> str:
  """The compiled handlers' path for this source, jax and oneDNN library."""
  with open(SOURCE, "rb") as f:
    key = hashlib.sha256(f.read() + importlib.metadata.version("jax").encode()
                         + os.path.realpath(dnnl).encode()).hexdigest()[:16]
  cache = os.environ.get("CNNZOO_ONEDNN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cnnzoo", "onednn")
  return os.path.join(cache, key, "libcnnzoo_onednn.so")


def _compiler() -> list[str]:
  for name in (os.environ.get("CXX"), "g++", "c++"):
    if name and shutil.which(name):
      return [shutil.which(name)]
  if importlib.util.find_spec("ziglang"):  # pip install ziglang: a C++ compiler (clang) from PyPI
    return [sys.executable, "-m", "ziglang", "c++"]
  raise Unavailable("no C++ compiler to build its handlers; install g++ or set CXX, or pip install ziglang")


_PENDING = {}  # target -> (the compiler's process, its temporary output, the command)


def _launch(dnnl: str, out: str):
  compiler = _compiler()  # before anything is written: without one, nothing is left behind
  os.makedirs(os.path.dirname(out), exist_ok=True)
  for name in os.listdir(os.path.dirname(out)):  # partial files of builds killed an hour or more ago
    path = os.path.join(os.path.dirname(out), name)
    try:
      if name.startswith("tmp") and name.endswith(".so") and time.time() - os.path.getmtime(path) > 3600:
        os.unlink(path)
    except OSError:  # another process removed it first
      pass
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(out))
  os.close(fd)
  lib_dir = os.path.dirname(os.path.realpath(dnnl))
  cmd = [*compiler, "-O2", "-shared", "-fPIC", "-std=c++17", "-w", f"-I{_jaxlib_include()}", SOURCE, "-o", tmp,
         f"-L{lib_dir}", f"-l:{os.path.basename(dnnl)}", f"-Wl,-rpath,{lib_dir}"]
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  _PENDING[out] = (proc, tmp, cmd)


def start() -> None:
  """Starts compiling the handlers in the background where a run on this machine will want them
  and they are not built yet: CNNZOO_CPU_CONV auto (the default) or onednn, no NVIDIA GPU, oneDNN
  installed, a compiler present. Anything missing is left for `build()` to report."""
  if os.environ.get("CNNZOO_CPU_CONV", "auto") not in ("auto", "onednn", ""):
    return
  platforms = os.environ.get("JAX_PLATFORMS", "")
  if ("cpu" not in platforms.split(",")) if platforms else os.path.exists("/dev/nvidia0"):
    return
  dnnl = library_path()
  try:
    out = target(dnnl)
    if os.path.exists(dnnl) and not os.path.exists(out) and out not in _PENDING:
      _launch(dnnl, out)
  except (Unavailable, OSError):
    pass


def build() -> str:
  """The compiled handlers (waiting for `start()`'s compile, or compiling now); Unavailable if they
  cannot be built here."""
  dnnl = library_path()
  if not os.path.exists(dnnl):
    raise Unavailable(f"no {dnnl}; {INSTALL} or set CNNZOO_DNNL_LIB")
  out = target(dnnl)
  if os.path.exists(out) and out not in _PENDING:
    return out
  try:
    if out not in _PENDING:
      _launch(dnnl, out)
    proc, tmp, cmd = _PENDING.pop(out)
    _, err = proc.communicate()
    if proc.returncode:
      os.unlink(tmp)
      last = (err.strip().splitlines() or ["(no output)"])[-1]
      raise Unavailable(f"compiling {SOURCE} with {' '.join(cmd[:2])} failed: {last}")
    os.replace(tmp, out)  # two processes building at once both end with a whole file
  except OSError as e:
    raise Unavailable(f"cannot write its handlers to {os.path.dirname(out)} ({e.strerror}); set "
                      "CNNZOO_ONEDNN_CACHE to a writable directory") from None
  return out


@atexit.register
def _abandon() -> None:
  """A process that ends before it needed the handlers (a user error, another platform) stops its
  compile and leaves no partial file behind."""
  for proc, tmp, _ in _PENDING.values():
    proc.kill()
    proc.wait()
    if os.path.exists(tmp):
      os.unlink(tmp)
  _PENDING.clear()
