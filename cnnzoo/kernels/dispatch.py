"""Which backend computes each convolution: chosen once per process, never re-read while tracing.

A backend (in the manner of xformers' dispatch) has a name, says why it is unavailable on this
machine ('' when it is available) and why it does not take a given convolution ('' when it does),
and computes the convolution. `resolve` turns the kernel settings (kernels/settings.py) and the
platform into a `Kernels`: the backends in order of preference, each convolution going to the
first that takes it; `lax` (XLA's convolution and its own VJP, unchanged) takes every one and is
always last.

- one CPU device: `onednn` (where its handlers load and CNNZOO_CPU_CONV is auto or onednn), `xla`
  (XLA's convolution with cnnzoo's backward pass, kernels/xla.py), `lax`;
- several devices or a GPU: `lax` (CNNZOO_CONV_KERNEL_GRAD=im2col puts `xla` first). Not `xla` over
  several CPU devices: its scan over chunks of a sharded batch puts collectives inside a loop body,
  and XLA:CPU's 8 forced host devices on 2 cores then time out in their all-reduce rendezvous
  (tests/test_training.py's 8-device run).

`default()` resolves once, from the environment and JAX's devices, when a run is built or the
first convolution is traced; a run binds its programs to the kernels it was built with (`bound`,
training/build.py; results.json records their name); `use()` puts another choice in force for the
tracing inside it (tests, XLA's cost analysis).
"""

import contextlib
import contextvars
import dataclasses
import functools
from typing import Callable

import jax
from jax import lax

from cnnzoo.errors import ConfigError
from cnnzoo.kernels import onednn, settings as settings_lib, xla


@dataclasses.dataclass(frozen=True)
class Backend:
  """One way to compute a plain NHWC/HWIO convolution `conv(x, w, strides, pads, precision)`."""
  name: str
  unavailable: Callable[[], str]  # why it cannot run here; '' when it can
  unsupported: Callable[..., str]  # (x_dtype, w_dtype, strides) -> why it does not take it; '' when it does
  conv: Callable


def _lax_conv(x, w, strides, pads, precision=None):
  return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=xla.NHWC, precision=precision)


LAX = Backend("lax", lambda: "", lambda *_: "", _lax_conv)
XLA = Backend("xla", lambda: "", lambda *_: "", xla.conv)
ONEDNN = Backend("onednn", onednn.why_not, onednn.unsupported,
                 lambda x, w, strides, pads, precision=None: onednn.conv(x, w, tuple(strides), pads))


@dataclasses.dataclass(frozen=True)
class Kernels:
  """The backends a process uses, in order of preference (the last, `lax`, takes everything)."""
  backends: tuple[Backend, ...]
  settings: settings_lib.Settings = settings_lib.Settings()
  fallback: str = ""  # why oneDNN's were not taken under auto, where they would have been

  @property
  def name(self) -> str:
    """The first backend's name: what results.json records."""
    return self.backends[0].name

  def backend_for(self, x_dtype, w_dtype, strides) -> Backend:
    return next(b for b in self.backends if not b.unsupported(x_dtype, w_dtype, strides))

  def note(self, why: bool = False) -> str:
    """For a run's devices line and results.json's hardware (CPU runs): ", oneDNN convolutions",
    ", XLA's convolutions" (`why`: with why not oneDNN's where auto fell back) or ", Eigen
    convolutions"."""
    if self.settings.cpu_conv == "eigen":
      return ", Eigen convolutions"
    if self.name == "onednn":
      return ", oneDNN convolutions"
    return f", XLA's convolutions (not oneDNN's: {self.fallback})" if why and self.fallback else ", XLA's convolutions"

  def for_forward(self, preference: str) -> "Kernels":
    """The kernels of a model's forward-only programs, by its registry entry's `forward_kernels`:
    "" these, "xla" XLA's (where they are measured faster for that model)."""
    return self.without_ffi() if preference == "xla" else self

  def without_ffi(self) -> "Kernels":
    """The same choice with XLA's forms in place of FFI calls: for XLA's cost analysis (FLOPs),
    which counts nothing inside an FFI call."""
    return dataclasses.replace(self, backends=tuple(b for b in self.backends if b is not ONEDNN))


def resolve(settings: settings_lib.Settings, platform: str, device_count: int) -> Kernels:
  """The backends for `settings` on `device_count` devices of `platform`; a ConfigError where
  CNNZOO_CPU_CONV=onednn asks for oneDNN's and they cannot load."""
  grad = settings.kernel_grad
  if grad == "im2col" or (grad == "auto" and platform == "cpu" and device_count == 1):
    backends = (XLA, LAX)
  else:
    backends = (LAX,)
  if platform != "cpu" or not settings.wants_onednn or (device_count != 1 and settings.cpu_conv == "auto"):
    return Kernels(backends, settings)
  why = ONEDNN.unavailable()  # builds and loads the handlers (once per machine / process)
  if why and settings.cpu_conv == "onednn":
    raise ConfigError(f"CNNZOO_CPU_CONV=onednn: {why}")
  if device_count != 1:  # onednn asked for over several devices: checked, not used, and said so
    return Kernels(backends, settings, f"they run on one CPU device, and this process has {device_count}")
  return Kernels(backends, settings, why) if why else Kernels((ONEDNN, *backends), settings)


@functools.cache
def default() -> Kernels:
  """This process's kernels: the environment's settings on JAX's devices, resolved once."""
  return resolve(settings_lib.from_env(), jax.default_backend(), jax.device_count())


_ACTIVE: contextvars.ContextVar[Kernels | None] = contextvars.ContextVar("cnnzoo_kernels", default=None)


@contextlib.contextmanager
def use(kernels: Kernels):
  """Convolutions traced inside take `kernels` instead of `default()`."""
  token = _ACTIVE.set(kernels)
  try:
    yield kernels
  finally:
    _ACTIVE.reset(token)


def bound(kernels: Kernels, fn: Callable) -> Callable:
  """`fn` that runs (and so is traced, inside jax.jit) with `kernels` in force, wherever it is
  first called: how a run passes its kernels to its programs."""
  @functools.wraps(fn)
  def with_kernels(*args, **kwargs):
    with use(kernels):
      return fn(*args, **kwargs)
  return with_kernels


def active() -> Kernels:
  """The kernels in force: `use()`'s, else `default()`."""
  return _ACTIVE.get() or default()


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
  """lax.conv_general_dilated, the drop-in of flax's `nn.Conv(conv_general_dilated=...)`: plain
  NHWC/HWIO convolutions go to the first backend of `active()` that takes them; grouped, dilated,
  other layouts and empty outputs stay lax.conv_general_dilated."""
  kernels = active()
  plain = (lhs.ndim == 4 and feature_group_count == 1 and batch_group_count == 1
           and all(d == 1 for d in (lhs_dilation or (1, 1))) and all(d == 1 for d in (rhs_dilation or (1, 1)))
           and preferred_element_type is None
           and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
           == lax.conv_dimension_numbers(lhs.shape, rhs.shape, xla.NHWC))
  if not plain or kernels.backends == (LAX,):
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                    dimension_numbers, feature_group_count, batch_group_count,
                                    precision, preferred_element_type)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  kh, kw = rhs.shape[:2]
  out = [(size + lo + hi - k) // s + 1 for size, (lo, hi), k, s in zip(lhs.shape[1:3], pads, (kh, kw), window_strides)]
  if any(p < 0 for pair in pads for p in pair) or min(out) < 1:
    return _lax_conv(lhs, rhs, tuple(window_strides), pads, precision)
  backend = kernels.backend_for(lhs.dtype, rhs.dtype, window_strides)
  return backend.conv(lhs, rhs, tuple(window_strides), pads, precision)
