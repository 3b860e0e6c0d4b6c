"""The JAX runtime a command starts on: the platform (the CPU where there is no GPU, XLA's flags
checked before XLA reads them), the persistent compilation cache, the processes of a multi-host
run, and the hardware string results.json records. Entry points call choose_platform, then
initialize_distributed, then check_platform, before anything else touches a device."""

import os
import sys

import jax

from cnnzoo.errors import ConfigError, UserError

CACHE_ENV = "CNNZOO_XLA_CACHE"
DEFAULT_CACHE = os.path.join("~", ".cache", "cnnzoo", "xla")
MIN_CACHED_COMPILE_SECONDS = 0.1  # programs that compile faster are not worth a cache file


def use_compilation_cache() -> str | None:
  """Turns on JAX's persistent compilation cache, so that a second run of a config, a resume or an
  evaluation loads its compiled programs instead of compiling them again: in ~/.cache/cnnzoo/xla,
  or $CNNZOO_XLA_CACHE ("" turns it off); JAX_COMPILATION_CACHE_DIR, if set, wins. Returns the
  folder in use. Programs that compile in at least MIN_CACHED_COMPILE_SECONDS are stored (JAX's
  default is 1 s, which left the README's first command compiling its two evaluation programs on
  every run: benchmarks/README.md, "Measurements behind the code's choices")."""
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return os.environ["JAX_COMPILATION_CACHE_DIR"]
  path = os.environ.get(CACHE_ENV, DEFAULT_CACHE)
  if not path:
    return None
  path = os.path.expanduser(path)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:  # a read-only home: run without the cache rather than fail
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_CACHED_COMPILE_SECONDS)
  return path


def _gpu_present() -> bool:
  return os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia/version")


def add_xla_flags(flags) -> str:
  """Appends `flags` to $XLA_FLAGS, each unless the user's XLA_FLAGS already sets that flag (theirs
  wins). XLA reads XLA_FLAGS when JAX starts its backend: call this before the first device query.
  Returns the new XLA_FLAGS."""
  value = os.environ.get("XLA_FLAGS", "")
  for flag in flags:
    if flag.split("=")[0] + "=" not in value:
      value = f"{value} {flag}".strip()
  os.environ["XLA_FLAGS"] = value
  return value


def choose_platform(cpu_xla_flags=()) -> None:
  """Uses the CPU when no NVIDIA GPU is present and the user has not set JAX_PLATFORMS, turns on
  the persistent compilation cache (use_compilation_cache) and, where the CPU is the platform, adds
  `cpu_xla_flags` (cli.choose_platform passes the kernels' flags: kernels/settings.py).

  The jax[cuda12] plugin prints a long traceback when it finds no GPU; asking for the CPU up front
  avoids it. On a GPU machine (a /dev/nvidia0 or /proc/driver/nvidia exists) nothing changes.
  Must run before the first device query.
  """
  check_xla_flags(use_compilation_cache())
  platforms = os.environ.get("JAX_PLATFORMS") or jax.config.jax_platforms
  if platforms and platforms != jax.config.jax_platforms:  # set after JAX was imported: honour it
    jax.config.update("jax_platforms", platforms)
  if platforms:
    if "cpu" in platforms.split(","):
      add_xla_flags(cpu_xla_flags)
    return
  if _gpu_present():
    return
  add_xla_flags(cpu_xla_flags)
  jax.config.update("jax_platforms", "cpu")


def check_xla_flags(cache_dir: str | None) -> None:
  """A user's XLA_FLAGS that XLA does not know would end the process in XLA's C++ (one log line,
  exit 1) when the backend starts; checked first in a child process, once per value of XLA_FLAGS
  and jaxlib version (a marker file in the compilation cache's folder remembers a good value), so
  that it is one `error:` line instead."""
  import hashlib
  import subprocess
  import sys
  import tempfile
  import jaxlib
  value = os.environ.get("XLA_FLAGS", "").strip()
  if not value:
    return
  key = hashlib.sha256(f"{jaxlib.__version__}\n{value}".encode()).hexdigest()[:20]
  marker = os.path.join(cache_dir or tempfile.gettempdir(), "cnnzoo-xla-flags-ok", key)
  if os.path.exists(marker):
    return
  child = subprocess.run([sys.executable, "-c", "import jax; jax.devices('cpu')"], capture_output=True, text=True,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=300, check=False)
  complaint = next((line for line in child.stderr.splitlines() if "XLA_FLAGS" in line), None)
  if child.returncode != 0 and complaint:
    raise UserError(f"XLA_FLAGS={value!r}: {complaint.split('] ', 1)[-1].strip()}; correct or unset XLA_FLAGS "
                    "(XLA's flags: https://openxla.org/xla/flags_guidance)")
  if child.returncode == 0:
    try:
      os.makedirs(os.path.dirname(marker), exist_ok=True)
      open(marker, "w").close()
    except OSError:  # a read-only cache folder: check again next time
      pass


def check_platform() -> None:
  """Starts JAX's backend (after choose_platform and initialize_distributed): a JAX_PLATFORMS that
  names a platform this machine lacks (`gpu` without a GPU or without jax[cuda12]) is one line."""
  try:
    jax.devices()
  except (RuntimeError, AssertionError) as e:  # AssertionError: no installed backend has that name
    asked = os.environ.get("JAX_PLATFORMS") or jax.config.jax_platforms
    reason = (str(e).strip().splitlines() or ["no installed JAX backend has that name"])[-1]
    reason = reason.split(" (set JAX_PLATFORMS")[0]
    raise UserError(f"JAX cannot start the platform JAX_PLATFORMS={asked!r} asks for ({reason}); unset "
                    "JAX_PLATFORMS to use what this machine has, or install jax[cuda12] where a GPU is") from None


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins a multi-process run (one process per host); a no-op for a single process.

  With no arguments JAX reads the cluster from its environment (SLURM, TPU, Kubernetes...).
  """
  given = {"--coordinator_address": coordinator_address, "--num_processes": num_processes,
           "--process_id": process_id}
  if not any(v is not None for v in given.values()):
    return
  missing = [k for k, v in given.items() if v is None]
  if missing:
    raise ConfigError(f"a multi-process run needs --coordinator_address, --num_processes and --process_id "
                      f"together; {missing[0]} is missing")
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ConfigError(f"--process_id={process_id} must be in 0..{num_processes - 1} (--num_processes="
                      f"{num_processes})")
  if ":" not in coordinator_address:
    raise ConfigError(f"--coordinator_address={coordinator_address}: expected HOST:PORT")
  jax.distributed.initialize(coordinator_address, num_processes, process_id)


def hardware(cpu_note: str = "") -> str:
  """What a run ran on, for results.json and RESULTS.md: "2 x NVIDIA H100 80GB HBM3 (1 process)" or,
  on the CPU, the processor's model name and core count, then `cpu_note` (which convolutions:
  kernels.dispatch.Kernels.note())."""
  devices = jax.devices()
  kind = devices[0].device_kind
  if devices[0].platform == "cpu":
    name = "cpu"
    try:
      with open("/proc/cpuinfo") as f:
        name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
      pass
    kind = f"{name}, {os.cpu_count()} cores{cpu_note}"
  return f"{len(devices)} x {kind} ({jax.process_count()} process{'es' if jax.process_count() > 1 else ''})"


def say(message: str, *, file=None) -> None:
  """Prints `message` on process 0 only (the other processes of a multi-host run are silent)."""
  if jax.process_index() == 0:
    print(message, file=file or sys.stdout, flush=True)


def warn(message: str) -> None:
  """One `warning: ...` line on stderr (process 0)."""
  say(f"warning: {message}", file=sys.stderr)
