"""Test setup: CPU only, Keras on the JAX backend, the repo root importable (for configs/)."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
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
# LLVM at -O0, 35-70% faster to compile, 10-30% slower to run. Same programs, same fusions (LLVM
# only), so every bitwise comparison is between runs with the same flags. The README's own first
# command runs with the default flags (test_lenet_digits_reaches_97_percent_from_the_cli).
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

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


def run_cli(args, env_extra=None, timeout=600, drop_env=()):
  """Runs `python -m experiments.main ARGS` from the repo root; returns the CompletedProcess."""
  import subprocess
  env = {k: v for k, v in dict(os.environ, **(env_extra or {})).items() if k not in drop_env}
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


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
  """argv for a quiet LeNet-on-digits run of `experiments.main` (the kill / disk-full tests);
  run it with `lenet_env()`."""
  return [sys.executable, "-m", "experiments.main", "--config=configs/lenet_digits.py", f"--workdir={workdir}",
          f"--config.num_epochs={epochs}", "--config.monitor.plot=False", "--config.monitor.progress=False",
          "--config.monitor.tensorboard=False", *extra]


_REFERENCES = {}


@pytest.fixture(scope="session")
def lenet_reference(tmp_path_factory):
  """`reference(epochs)` -> workdir of an uninterrupted CLI run of that many epochs (run once per
  session and shared: the kill -9 and disk-full tests compare their reruns with it bitwise)."""
  import subprocess

  def reference(epochs):
    if epochs not in _REFERENCES:
      workdir = str(tmp_path_factory.mktemp(f"reference{epochs}"))
      subprocess.run(lenet_cli(workdir, epochs), cwd=ROOT, check=True, capture_output=True, env=lenet_env())
      _REFERENCES[epochs] = workdir
    return _REFERENCES[epochs]

  return reference


def read_json(workdir, name):
  import json
  with open(os.path.join(workdir, name)) as f:
    return json.load(f)


def without_timing(history):
  """History records without their wall-clock fields (the rest is bitwise reproducible)."""
  return [{k: v for k, v in h.items() if k not in ("seconds", "img_per_sec", "data_seconds")} for h in history]


def pytest_sessionfinish(session):
  """The session's compilation cache goes when the session does (the xdist workers inherit it)."""
  if _OWN_CACHE and not hasattr(session.config, "workerinput"):
    import shutil
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)
