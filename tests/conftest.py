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
