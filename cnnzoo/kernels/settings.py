"""Which convolution kernels the CPU runs, as the environment asks: parsed and checked here only.

CNNZOO_CPU_CONV: auto (the default: oneDNN's on one CPU device where its handlers load, else XLA's),
onednn (oneDNN's or an error), ynnpack (XLA:CPU's default, YNNPACK), eigen (XLA:CPU with Eigen's
convolutions). CNNZOO_CONV_KERNEL_GRAD: auto (cnnzoo's own backward pass on one CPU device), im2col
(everywhere), xla (nowhere: XLA's own VJP, which also turns oneDNN off).

Imports no JAX: `build.start()` reads the settings before an entry point imports JAX.
"""

import dataclasses
import os

from cnnzoo.errors import ConfigError

CPU_CONV_ENV = "CNNZOO_CPU_CONV"
KERNEL_GRAD_ENV = "CNNZOO_CONV_KERNEL_GRAD"
# XLA:CPU flags each choice needs (oneDNN comes through FFI calls: no flag)
CPU_CONV_FLAGS = {"auto": (), "onednn": (), "ynnpack": (),
                  "eigen": ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)}
KERNEL_GRADS = ("auto", "xla", "im2col")


@dataclasses.dataclass(frozen=True)
class Settings:
  """The kernel settings of a process (see the module docstring); a ConfigError if one is unknown."""
  cpu_conv: str = "auto"
  kernel_grad: str = "auto"

  def __post_init__(self):
    if self.cpu_conv not in CPU_CONV_FLAGS:
      raise ConfigError(f"{CPU_CONV_ENV} must be {', '.join(CPU_CONV_FLAGS)}, not {self.cpu_conv!r}")
    if self.kernel_grad not in KERNEL_GRADS:
      raise ConfigError(f"{KERNEL_GRAD_ENV} must be {', '.join(KERNEL_GRADS[:-1])} or {KERNEL_GRADS[-1]}, "
                        f"not {self.kernel_grad!r}")

  @property
  def wants_onednn(self) -> bool:
    """Whether oneDNN's kernels are asked for (auto or onednn, cnnzoo's backward pass not off)."""
    return self.cpu_conv in ("auto", "onednn") and self.kernel_grad != "xla"

  @property
  def xla_flags(self) -> tuple[str, ...]:
    return CPU_CONV_FLAGS[self.cpu_conv]


def from_env(environ=None) -> Settings:
  """The settings in `environ` (os.environ by default); unset or empty variables mean auto."""
  environ = os.environ if environ is None else environ
  return Settings(environ.get(CPU_CONV_ENV) or "auto", environ.get(KERNEL_GRAD_ENV) or "auto")
