"""Test setup: CPU only, Keras on the JAX backend, the repo root importable (for configs/)."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# the suite's command lines run as started (cnnzoo.cli.use_tcmalloc re-executes an entry point under
# tcmalloc where it is installed; tests/test_runs.py checks that on its own)
os.environ.setdefault("LD_PRELOAD", "")
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One persistent XLA compilation cache for the session and every subprocess it starts: the suite
# compiles the same LeNet programs in dozens of runs (CLI subprocesses, resumes, kills), and a
# cached executable is the same machine code, so results stay bitwise equal. Fresh per session.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import tempfile
  _OWN_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnzoo-xla-cache-")
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
  # a size limit turns on JAX's file lock around cache reads and writes: the xdist workers and
  # their subprocesses share the cache, and an unlocked read of an entry being written warns
  os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(8 << 30)
# The suite is compile-bound (dozens of models, a few steps each): XLA's CPU backend compiles with
# LLVM at -O0 (10-30% faster to compile, 10-30% slower to run). Same programs, same fusions (LLVM
# only), so every bitwise comparison is between runs with the same flags. The README's own first
# command runs with the default flags (test_lenet_digits_reaches_97_percent_from_the_cli).
# XLA's fusion emitters (MLIR) take 2-3x the CPU time of its older elemental emitters to compile a
# train step (DeeperGoogLeNet 15.2 -> 5.5 CPU-s, ResNet-20 5.8 -> 3.0, MiniVGGNet 3.5 -> 1.1) for
# steps 1.1-2x slower: the suite compiles far more than it runs.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
if os.environ.get("CNNZOO_TEST_XLA_FLAGS") != "0":  # 0: a child process that checks users' flags
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the XLA:CPU flags cnnzoo's entry points add ($CNNZOO_CPU_CONV=eigen: Eigen's convolutions; none
# by default): in-process tests compute as the command lines do
from cnnzoo import runtime  # noqa: E402
from cnnzoo.kernels import settings as kernel_settings  # noqa: E402
runtime.add_xla_flags(kernel_settings.from_env().xla_flags)

import pytest  # noqa: E402


def quiet(config):
  """Turns off the plot, TensorBoard and progress bar of a config (faster tests)."""
  config.monitor.plot = False
  config.monitor.tensorboard = False
  config.monitor.progress = False
  return config


@pytest.fixture
def tiny_digits():
  """LeNet on digits, 2 epochs, synchronous checkpoints: the config most training tests use."""
  from configs import lenet_digits
  c = quiet(lenet_digits.get_config())
  c.num_epochs = 2
  c.checkpoint.async_save = False
  return c


def data_cfg(**fields):
  """config.data with `fields`, filled with its dataset's and augmentation's settings."""
  from configs import base
  from cnnzoo.data.dataset import resolve_data
  c = base.get_config()
  c.data.update(fields)
  resolve_data(c)
  return c.data


def aug_cfg(augment, **settings):
  """data_cfg of `augment` with those of `settings` it takes (or config.data's own fields)."""
  from cnnzoo.data.dataset import AUGMENTATIONS, DATA_FIELDS
  taken = set(AUGMENTATIONS.get(augment).settings) | set(DATA_FIELDS)
  return data_cfg(augment=augment, **{k: v for k, v in settings.items() if k in taken})


def run_cli(args, env_extra=None, timeout=600, drop_env=()):
  """Runs `python -m experiments.main ARGS` from the repo root; returns the CompletedProcess."""
  import subprocess
  env = {k: v for k, v in dict(os.environ, **(env_extra or {})).items() if k not in drop_env}
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def cli_batch(cases) -> list[dict]:
  """Runs command lines of cnnzoo's entry points one after another as forks of this worker's
  preloaded fork server (the heavy imports once per worker, each case a real process) and returns
  one {"rc", "stdout", "stderr"} per case. A case: {"module": "experiments.main", "argv": [...],
  "cwd": DIR, "env": {...} (optional: the child's whole environment)}."""
  server = fork_server()
  results = []
  for case in cases:
    child = server.run(case["argv"], env=case.get("env"), cwd=case.get("cwd", ROOT), module=case["module"])
    results.append({"rc": child.returncode, "stdout": child.stdout, "stderr": child.stderr})
  return results


def devices_env(n: int) -> dict:
  """The environment of a subprocess that sees `n` CPU devices (and the suite's XLA flags)."""
  return dict(os.environ, JAX_PLATFORMS="cpu",
              XLA_FLAGS=f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count={n}")


def fast_keras():
  """Imports keras with NumPy drawing the initial weights of the models the tests build.

  Keras' JAX backend draws each initial weight with an eager jax.random call, which compiles one
  XLA program per weight shape: 39 s to build InceptionV3 on 2 cores, 3 s with NumPy. The tests
  only count those weights or overwrite them (`randomize`), so where they come from does not
  matter. Keras' optimizers, layers and the forward pass are untouched.
  """
  import jax.numpy as jnp
  import keras
  import numpy as np
  from keras.src.backend.jax import random as backend_random
  if getattr(backend_random, "_cnnzoo_numpy", False):
    return keras
  rng = np.random.default_rng(0)
  cast = lambda x, dtype: jnp.asarray(x.astype(dtype or "float32"))
  backend_random.normal = lambda shape, mean=0.0, stddev=1.0, dtype=None, seed=None: cast(
      rng.normal(mean, stddev, shape), dtype)
  backend_random.truncated_normal = lambda shape, mean=0.0, stddev=1.0, dtype=None, seed=None: cast(
      np.clip(rng.normal(mean, stddev, shape), mean - 2 * stddev, mean + 2 * stddev), dtype)
  backend_random.uniform = lambda shape, minval=0.0, maxval=1.0, dtype=None, seed=None: cast(
      rng.uniform(minval, maxval, shape), dtype)
  backend_random._cnnzoo_numpy = True
  return keras


def lenet_env(**extra) -> dict:
  """The environment of the LeNet CLI runs (kill -9, disk full, multihost and their shared
  references): the default XLA optimization level. Their programs come from the shared cache
  after the first compile, and at -O0 a LeNet step runs 1.9x slower (15.8 vs 8.5 ms)."""
  flags = os.environ["XLA_FLAGS"].replace(TEST_XLA_FLAGS, "").strip()
  return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"{flags} {extra.pop('xla_flags', '')}".strip(), **extra)


def lenet_cli(workdir, epochs, *extra):
  """argv (from the first flag on) of a quiet LeNet-on-digits run of `experiments.main` (the kill /
  disk-full / multihost tests); run it with `forkserver.run(argv, lenet_env())`."""
  return ["--config=configs/lenet_digits.py", f"--workdir={workdir}",
          f"--config.num_epochs={epochs}", "--config.monitor.plot=False", "--config.monitor.progress=False",
          "--config.monitor.tensorboard=False", *extra]


class Child:
  """A command line started by the fork server: `pid`, `wait()`, `kill()`, `stdout`, `stderr`."""

  def __init__(self, server, key, out, err):
    self.server, self.key, self.out, self.err = server, key, out, err
    self.pid = server.reply(key, "pid")
    self.returncode = None

  def poll(self):
    with self.server.cond:
      self.returncode = self.server.replies.get((self.key, "rc"))
    return self.returncode

  def wait(self, timeout=600):
    self.returncode = self.server.reply(self.key, "rc", timeout)
    return self.returncode

  def kill(self, signum=None):
    import signal
    os.kill(self.pid, signal.SIGKILL if signum is None else signum)

  def wait_for(self, text, count=1, timeout=300) -> bool:
    """Waits until stderr holds `text` `count` times (True), or the child ends first (False)."""
    import time
    deadline = time.time() + timeout
    with open(self.err) as err:
      seen = ""
      while seen.count(text) < count and self.poll() is None and time.time() < deadline:
        seen += err.read()
        time.sleep(0.001)
      seen += err.read()
    return seen.count(text) >= count

  @property
  def stdout(self):
    with open(self.out) as f:
      return f.read()

  @property
  def stderr(self):
    with open(self.err) as f:
      return f.read()


class ForkServer:
  """tests/cli_batch.py --serve: starts command lines as forks of one process that has imported
  JAX, flax, orbax and scikit-learn already (about 4 s a fresh interpreter spends per run). The
  children are real processes running the real entry points: they can be killed with -9."""

  def __init__(self, directory):
    import subprocess
    import threading
    self.directory, self.count, self.replies = directory, 0, {}
    self.cond = threading.Condition()
    self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "cli_batch.py"), "--serve"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                 env=dict(os.environ, JAX_PLATFORMS="cpu",  # a script: its folder is not ROOT
                                          PYTHONPATH=os.pathsep.join(filter(None, (ROOT, os.environ.get("PYTHONPATH"))))))
    threading.Thread(target=self._read, daemon=True).start()

  def _read(self):
    import json
    for line in self.proc.stdout:
      reply = json.loads(line)
      with self.cond:
        self.replies[(reply["id"], "pid" if "pid" in reply else "rc")] = reply.get("pid", reply.get("rc"))
        self.cond.notify_all()

  def reply(self, key, kind, timeout=600):
    with self.cond:
      if not self.cond.wait_for(lambda: (key, kind) in self.replies or self.proc.poll() is not None, timeout):
        raise TimeoutError(f"child {key} gave no {kind} in {timeout} s")
      if (key, kind) not in self.replies:
        raise RuntimeError(f"the fork server ended (status {self.proc.poll()})")
      return self.replies[(key, kind)]

  def start(self, argv, env=None, cwd=ROOT, module="experiments.main", path=None) -> Child:
    """Starts `python -m MODULE ARGV` (argv as for subprocess, from the first flag on), or
    `python PATH ARGV` with `path`."""
    import json
    self.count += 1
    key = self.count
    out, err = (os.path.join(self.directory, f"{key}.{n}") for n in ("out", "err"))
    request = {"id": key, "module": module, "argv": list(argv), "cwd": str(cwd), "out": out, "err": err}
    if path is not None:
      request["path"] = str(path)
    if env is not None:
      request["env"] = dict(env)
    self.proc.stdin.write(json.dumps(request) + "\n")
    self.proc.stdin.flush()
    return Child(self, key, out, err)

  def run(self, argv, env=None, cwd=ROOT, module="experiments.main", path=None) -> Child:
    child = self.start(argv, env, cwd, module, path)
    child.wait()
    return child

  def close(self):
    import shutil
    self.proc.stdin.close()
    self.proc.wait(timeout=600)
    shutil.rmtree(self.directory, ignore_errors=True)


_SERVER = []  # this worker's fork server, started on first use


def fork_server() -> "ForkServer":
  """The worker's one ForkServer (the `forkserver` fixture and cli_batch share it)."""
  if not _SERVER:
    import tempfile
    _SERVER.append(ForkServer(tempfile.mkdtemp(prefix="cnnzoo-forkserver-")))
  return _SERVER[0]


@pytest.fixture(scope="session")
def forkserver():
  return fork_server()


_REFERENCES = {}


@pytest.fixture(scope="session")
def lenet_reference(tmp_path_factory, forkserver):
  """`reference(epochs[, env])` -> workdir of an uninterrupted CLI run of that many epochs (run once
  per session and environment and shared: the kill -9 and disk-full tests compare their reruns
  with it bitwise). `env`: lenet_env() by default."""
  def reference(epochs, env=None):
    env = lenet_env() if env is None else env
    key = (epochs, env["XLA_FLAGS"])
    if key not in _REFERENCES:
      workdir = str(tmp_path_factory.mktemp(f"reference{epochs}"))
      run = forkserver.run(lenet_cli(workdir, epochs), env)
      assert run.returncode == 0, run.stderr[-3000:]
      _REFERENCES[key] = workdir
    return _REFERENCES[key]

  return reference


def read_json(workdir, name):
  import json
  with open(os.path.join(workdir, name)) as f:
    return json.load(f)


def without_timing(history):
  """History records without their wall-clock fields (the rest is bitwise reproducible)."""
  return [{k: v for k, v in h.items() if k not in ("seconds", "img_per_sec", "data_seconds")} for h in history]


def pytest_sessionfinish(session):
  """The worker's fork server ends with its session; the session's compilation cache goes when the
  session does (the xdist workers inherit it)."""
  if _SERVER:
    _SERVER.pop().close()
  if _OWN_CACHE and not hasattr(session.config, "workerinput"):
    import shutil
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)
