"""Building cnnzoo's oneDNN convolution handlers (onednn_conv.cc, beside this file) on this machine.

The handlers are XLA FFI functions compiled against jaxlib's FFI headers and the pip-installed
oneDNN (`onednn-cpu-gomp`, which ships `libdnnl.so.3` without headers), with the machine's C++
compiler ($CXX, g++ or c++; else `pip install ziglang`'s clang) into ~/.cache/cnnzoo/onednn
(CNNZOO_ONEDNN_CACHE moves it). One build per key: the source, the compiler flags, the compiler's
own version line, the jaxlib version (its FFI headers), and the oneDNN library (its path, size and
modification time; its version is checked again when it loads, kernels/onednn.py). Two processes
starting at once build once: the build runs under a file lock beside its output.

This module imports no JAX: an entry point calls `start()` before it imports JAX, so a first run
compiles the handlers (2-3 s with g++) on the second core while Python imports JAX and builds the
model, and `build()` then only waits for what is left.
"""

import atexit
import dataclasses
import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

from cnnzoo.errors import ConfigError
from cnnzoo.kernels import settings

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onednn_conv.cc")
INSTALL = "pip install onednn-cpu-gomp==2023.2.0"
FLAGS = ("-O2", "-shared", "-fPIC", "-std=c++17", "-w")
LIBRARY = "libcnnzoo_onednn.so"


class Unavailable(Exception):
  """Why oneDNN's handlers cannot be used here (one line, saying what to install)."""


def library_path() -> str:
  """Where oneDNN's library is: $CNNZOO_DNNL_LIB, else the wheel's place in this environment."""
  return os.environ.get("CNNZOO_DNNL_LIB") or os.path.join(sys.prefix, "lib", "libdnnl.so.3")


def _jaxlib_include() -> str:
  """jax.ffi.include_dir(), found without importing JAX."""
  spec = importlib.util.find_spec("jaxlib")
  return os.path.join(list(spec.submodule_search_locations)[0], "include")


def _compiler() -> list[str]:
  for name in (os.environ.get("CXX"), "g++", "c++"):
    if name and shutil.which(name):
      return [shutil.which(name)]
  if importlib.util.find_spec("ziglang"):  # pip install ziglang: a C++ compiler (clang) from PyPI
    return [sys.executable, "-m", "ziglang", "c++"]
  raise Unavailable("no C++ compiler to build its handlers; install g++ or set CXX, or pip install ziglang")


@functools.cache
def _compiler_version(compiler: tuple[str, ...]) -> str:
  """The first line of `compiler --version` (part of the build's key: another compiler, another build)."""
  try:
    out = subprocess.run([*compiler, "--version"], capture_output=True, text=True, timeout=60, check=False).stdout
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return (out.strip().splitlines() or ["unknown"])[0]


def target(dnnl: str) -> str:
  """The compiled handlers' path for this source, flags, compiler, jaxlib and oneDNN library."""
  stat = os.stat(dnnl) if os.path.exists(dnnl) else None
  try:
    compiler = _compiler_version(tuple(_compiler()))
  except Unavailable:  # built handlers stay usable; a build says what is missing
    compiler = "none"
  with open(SOURCE, "rb") as f:
    parts = [hashlib.sha256(f.read()).hexdigest(), " ".join(FLAGS), compiler, importlib.metadata.version("jaxlib"),
             os.path.realpath(dnnl), f"{stat.st_size}:{stat.st_mtime_ns}" if stat else "absent"]
  key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
  cache = os.environ.get("CNNZOO_ONEDNN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cnnzoo", "onednn")
  return os.path.join(cache, key, LIBRARY)


@dataclasses.dataclass
class _Build:
  process: subprocess.Popen
  tmp: str  # the compiler's output, renamed to the target when it succeeds
  command: list
  lock: int  # the file descriptor holding the build's lock


_PENDING: dict[str, _Build] = {}  # target -> the build this process runs


def _lock(out: str, wait: bool) -> int | None:
  """Takes the lock of `out`'s build (None if another process holds it and not `wait`)."""
  os.makedirs(os.path.dirname(out), exist_ok=True)
  fd = os.open(os.path.join(os.path.dirname(out), "build.lock"), os.O_CREAT | os.O_RDWR, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
  except BlockingIOError:
    os.close(fd)
    return None
  return fd


def _unlock(fd: int) -> None:
  fcntl.flock(fd, fcntl.LOCK_UN)
  os.close(fd)


def _launch(dnnl: str, out: str, lock: int) -> None:
  """Starts the compiler (holding `lock`); partial outputs of killed builds are removed first."""
  try:
    compiler = _compiler()
    folder = os.path.dirname(out)
    for name in os.listdir(folder):  # under the lock, any partial file is a killed build's
      if name.startswith("tmp") and name.endswith(".so"):
        os.unlink(os.path.join(folder, name))
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
    os.close(fd)
    lib_dir = os.path.dirname(os.path.realpath(dnnl))
    cmd = [*compiler, *FLAGS, f"-I{_jaxlib_include()}", SOURCE, "-o", tmp, f"-L{lib_dir}",
           f"-l:{os.path.basename(dnnl)}", f"-Wl,-rpath,{lib_dir}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  except BaseException:
    _unlock(lock)
    raise
  _PENDING[out] = _Build(proc, tmp, cmd, lock)


def start() -> None:
  """Starts compiling the handlers in the background where a run on this machine will want them
  and they are not built yet: CNNZOO_CPU_CONV auto (the default) or onednn, no NVIDIA GPU, oneDNN
  installed, a compiler present, no other process building them. Anything missing or wrong is
  left for `build()` (or the settings' check) to report."""
  try:
    if not settings.from_env().wants_onednn:
      return
  except ConfigError:
    return
  platforms = os.environ.get("JAX_PLATFORMS", "")
  if ("cpu" not in platforms.split(",")) if platforms else os.path.exists("/dev/nvidia0"):
    return
  dnnl = library_path()
  try:
    if not os.path.exists(dnnl):
      return
    out = target(dnnl)
    if os.path.exists(out) or out in _PENDING:
      return
    lock = _lock(out, wait=False)
    if lock is None:  # another process is building them: build() waits for its lock
      return
    if os.path.exists(out):
      _unlock(lock)
      return
    _launch(dnnl, out, lock)
  except (Unavailable, OSError):
    pass


def build() -> str:
  """The compiled handlers (waiting for `start()`'s compile or another process's, or compiling
  now); Unavailable if they cannot be built here."""
  dnnl = library_path()
  if not os.path.exists(dnnl):
    raise Unavailable(f"no {dnnl}; {INSTALL} or set CNNZOO_DNNL_LIB")
  out = target(dnnl)
  if os.path.exists(out) and out not in _PENDING:
    return out
  try:
    if out not in _PENDING:
      lock = _lock(out, wait=True)
      if os.path.exists(out):  # another process built them while this one waited
        _unlock(lock)
        return out
      _launch(dnnl, out, lock)
    job = _PENDING.pop(out)
    try:
      _, err = job.process.communicate()
      if job.process.returncode:
        os.unlink(job.tmp)
        last = (err.strip().splitlines() or ["(no output)"])[-1]
        raise Unavailable(f"compiling {SOURCE} with {' '.join(job.command[:2])} failed: {last}")
      os.replace(job.tmp, out)
    finally:
      _unlock(job.lock)
  except OSError as e:
    raise Unavailable(f"cannot write its handlers to {os.path.dirname(out)} ({e.strerror}); set "
                      "CNNZOO_ONEDNN_CACHE to a writable directory") from None
  return out


@atexit.register
def abandon() -> None:
  """A process that ends before it needed the handlers (a user error, another platform) stops its
  compile, leaves no partial file behind and releases the lock."""
  for job in _PENDING.values():
    job.process.kill()
    job.process.wait()
    if os.path.exists(job.tmp):
      os.unlink(job.tmp)
    _unlock(job.lock)
  _PENDING.clear()
