"""Test setup: CPU only, Keras on the JAX backend, the repo root importable (for configs/)."""

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
