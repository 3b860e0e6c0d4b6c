"""The training loop: the offline default's accuracy, no retracing, 8 devices = 1 device, smoke
runs of every config, and one-line errors for user mistakes."""

import glob
import json
import os
import subprocess
import sys

import jax
import pytest

from conftest import ROOT, quiet, run_cli
from cnnzoo.training import loop


def test_lenet_digits_reaches_97_percent_from_the_cli(tmp_path):
  """The README's first command, unchanged but for the workdir, with JAX_PLATFORMS unset: on a
  machine without a GPU cnnzoo must pick the CPU without the CUDA plugin's traceback."""
  proc = run_cli(["--config=configs/lenet_digits.py", f"--workdir={tmp_path}"], drop_env=("JAX_PLATFORMS",))
  assert proc.returncode == 0, proc.stderr[-2000:]
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["test_accuracy"] >= 0.97 and results["test_count"] == 360
  history = json.loads((tmp_path / "history.json").read_text())
  assert [h["epoch"] for h in history] == list(range(1, 21))
  assert {"epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "img_per_sec"} <= set(history[0])
  assert (tmp_path / "history.png").stat().st_size > 10_000
  assert glob.glob(str(tmp_path / "events.out.tfevents.*"))
  assert json.loads((tmp_path / "config.json").read_text())["model"]["name"] == "lenet5"
  assert "model lenet5: 61,706 trainable params" in proc.stdout
  assert f"test: loss {results['test_loss']:.4f}  accuracy {results['test_accuracy']:.4f}" in proc.stdout
  assert "Traceback" not in proc.stderr and "cuInit" not in proc.stderr


def test_no_retracing_after_the_first_step(tiny_digits):
  run = loop.build(tiny_digits)
  bar = loop.monitor.ProgressBar(False)
  state = run.state
  sizes = []
  for epoch in range(2):
    state, _, _ = loop.train_epoch(run, state, epoch, bar, log_every=10)
    loop.evaluate(run, state, run.val_loader)  # 180 examples: the last batch is padded
    loop.evaluate(run, state, run.test_loader)
    sizes.append((run.train_step.jitted._cache_size(), run.eval_step.jitted._cache_size()))
  # one train compilation; one evaluation compilation per device-resident split (val and test
  # images differ in number, so in shape), none added by the second epoch
  assert run.train_loader.on_device and sizes == [(1, 2), (1, 2)]


MULTI_DEVICE = """
import json, sys
import jax
from configs import minivggnet_cifar10
from cnnzoo.training import loop
c = minivggnet_cifar10.get_config()  # BatchNorm + dropout: global-batch statistics, sharded RNG
c.data.name = "digits"; c.data.val_fraction = 0.1; c.data.batch_size = 32; c.data.eval_batch_size = 64
c.optim.lr = 1e-3  # float reassociation differences grow with every step; keep them small
run = loop.build(c)

def train(state):
  losses = []
  for i, batch in zip(range(5), run.train_loader.epoch(0)):
    state, m = run.train_step(state, batch)
    losses.append(float(m["loss"]) / 32)
  return state, losses

# the float32 noise floor of this program: the same steps from weights nudged by one part in 1e7
# (a copy of every buffer: the train step donates its input state)
nudged = jax.tree.map(lambda x: x.copy(), run.state)
nudged = nudged.replace(params=jax.tree.map(lambda p: p * (1 + 1e-7), nudged.params))
_, floor = train(nudged)
state, losses = train(run.state)
print(json.dumps({"devices": jax.device_count(), "losses": losses, "floor": floor,
                  "val": loop.evaluate(run, state, run.val_loader)}))
"""


def run_devices(n):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
  proc = subprocess.run([sys.executable, "-c", MULTI_DEVICE], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_devices_give_the_same_losses_as_one():
  """8 devices sum the same batch in another order than 1 device, so they agree to float32
  reassociation, not bitwise. The first step's loss is a forward pass from equal weights: a few
  float32 ulps (rtol 1e-6 = 8 eps). Later steps amplify that by the training dynamics, by a factor
  that depends on the CPU's kernels; the test measures it (steps from weights nudged by 1e-7, the
  float32 noise floor) and allows 10x that drift. A sharding error (wrong rows, per-device
  BatchNorm statistics) moves the losses by > 1e-3 from the first step."""
  one, eight = run_devices(1), run_devices(8)
  assert (one["devices"], eight["devices"]) == (1, 8)
  assert eight["losses"][0] == pytest.approx(one["losses"][0], rel=1e-6)
  for a, b, nudged in zip(one["losses"][1:], eight["losses"][1:], one["floor"][1:]):
    assert abs(a - b) <= 10 * abs(a - nudged) + 1e-6 * abs(a), (one, eight)
  drift = max(abs(a - n) for a, n in zip(one["losses"], one["floor"]))
  assert abs(one["val"]["loss"] - eight["val"]["loss"]) <= 10 * drift + 1e-6 * one["val"]["loss"]
  assert abs(one["val"]["loss"] - eight["val"]["loss"]) < 1e-3  # far below a sharding error
  assert one["val"]["count"] == eight["val"]["count"] == 180


CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if not os.path.basename(p).startswith(("_", "base")))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_smoke_runs(name, tmp_path):
  import importlib
  config = quiet(importlib.import_module(f"configs.{name}").get_config("smoke"))
  assert config.data.name == "synthetic"
  results = loop.train_and_evaluate(config, str(tmp_path))
  history = json.loads((tmp_path / "history.json").read_text())
  assert len(history) == config.num_epochs == 2
  assert all(jax.numpy.isfinite(h["loss"]) for h in history)
  assert results["test_count"] == 8
