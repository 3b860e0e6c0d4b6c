"""The training loop: the offline default's accuracy, no retracing, 8 devices = 1 device, smoke
runs of every config, and one-line errors for user mistakes."""

import glob
import json
import os

import jax
import numpy as np
import pytest

from conftest import ROOT, devices_env, quiet, run_cli
from cnnzoo.training import loop


def test_lenet_digits_reaches_97_percent_from_the_cli(tmp_path):
  """The README's first command, unchanged but for the workdir, with JAX_PLATFORMS unset: on a
  machine without a GPU cnnzoo must pick the CPU without the CUDA plugin's traceback."""
  proc = run_cli(["--config=configs/lenet_digits.py", f"--workdir={tmp_path}"],
                 drop_env=("JAX_PLATFORMS", "XLA_FLAGS"))  # the user's environment, not the suite's
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
  assert results["hardware"].startswith("1 x ") and results["hardware"].endswith("(1 process)")
  assert f"test: loss {results['test_loss']:.4f}  accuracy {results['test_accuracy']:.4f}" in proc.stdout
  assert "Traceback" not in proc.stderr and "cuInit" not in proc.stderr


@pytest.mark.parametrize("per_call", [1, 0])
def test_no_retracing_after_the_first_step(tiny_digits, per_call):
  tiny_digits.steps_per_dispatch = per_call  # a call a step, or (auto, no bar) an epoch a call
  run = loop.build(tiny_digits)
  bar = loop.monitor.ProgressBar(False)
  state = run.state
  sizes = []
  train = run.train_step if per_call == 1 else run.train_chunk
  for epoch in range(2):
    state, _, _ = loop.train_epoch(run, state, epoch, bar, log_every=10)
    loop.evaluate(run, state, run.val_loader)  # 180 examples: the last batch is padded
    loop.evaluate(run, state, run.test_loader)
    sizes.append((train.jitted._cache_size(), run.eval_step.jitted._cache_size()))
  # one train compilation; one evaluation compilation per device-resident split (val and test
  # images differ in number, so in shape), none added by the second epoch
  assert run.train_loader.on_device and sizes == [(1, 2), (1, 2)]
  assert (run.train_chunk is None) == (per_call == 1)
  if per_call == 0:
    assert run.train_chunk.size == run.train_loader.steps_per_epoch == 39


class RecordingBar:
  """A progress bar that records the steps of each update."""
  enabled = True

  def __init__(self):
    self.updates = []

  def update(self, steps, **_):
    self.updates.append(steps)


def trained(config, per_call: int, epochs: int, bar=None):
  """(parameters and BatchNorm statistics as one vector, each epoch's metric sums, the run)."""
  config.steps_per_dispatch = per_call
  run = loop.build(config)
  state, sums = run.state, []
  for epoch in range(epochs):
    state, s, _ = loop.train_epoch(run, state, epoch, bar or loop.monitor.ProgressBar(False), log_every=10)
    sums.append({k: np.asarray(v).item() for k, v in s.items()})
  tree = jax.device_get((state.params, state.batch_stats, state.step))
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)]), sums, run


@pytest.mark.parametrize("name", ["lenet_digits", "minivggnet_cifar10"])
def test_an_epoch_as_one_compiled_loop_trains_bitwise_like_a_call_a_step(name):
  """config.steps_per_dispatch: 1 (a call a step), 0 (auto: here, progress off, the whole epoch as
  one lax.fori_loop) and 7 (calls of 7 steps and a shorter last one, one compilation) give the
  same parameters, BatchNorm statistics, step and epoch sums, bit for bit. MiniVGGNet adds
  BatchNorm, dropout and random crops and flips. On 2 AMD EPYC cores this failed before the
  convolutions' backward pass was written in one form for both (conv.input_grad): inside a loop
  body XLA:CPU compiled its own to other sums (LeNet drifted 4e-8 in 39 steps, MiniVGGNet 1e-7 in 4).
  Both run in a child process with XLA's fusion emitters on, as users run, and LLVM at -O0 (faster
  to compile): with the suite's two flags together (-O0 and XLA's elemental emitters) XLA rounds
  some sums differently inside the loop body: Keras' Adam update of LeNet's conv2 kernel from the
  second step on (7e-6 apart after an epoch, 2026-11-29), MiniVGGNet's BatchNorm in Keras'
  arithmetic (x * inv + shift, 2026-12-02). At the users' flags (none), or either flag alone, the
  bits are equal (checked by hand 2026-12-02: MiniVGGNet 44 s a run at the users' flags, 27 s at -O0)."""
  import subprocess
  import sys
  from conftest import lenet_env
  code = f"import test_training; test_training.check_loop_bitwise({name!r}); print('ok')"
  env = lenet_env(CNNZOO_TEST_XLA_FLAGS="0", PYTHONPATH=ROOT, xla_flags="--xla_backend_optimization_level=0")
  child = subprocess.run([sys.executable, "-c", code], cwd=os.path.join(ROOT, "tests"), capture_output=True,
                         text=True, timeout=600, env=env)
  assert child.returncode == 0 and child.stdout.strip().endswith("ok"), child.stderr[-3000:]


def check_loop_bitwise(name):
  """The test above, in this process."""
  import importlib
  config = lambda: quiet(importlib.import_module(f"configs.{name}").get_config())
  epochs = 2 if name == "lenet_digits" else 1
  if name == "minivggnet_cifar10":
    def config(base=config):
      c = base()
      c.data.name, c.data.image_size, c.data.val_fraction, c.data.augment = "digits", 16, 0.1, "crop_flip"
      c.data.batch_size, c.data.eval_batch_size = 128, 128  # 9 steps: calls of 7 and 2
      return c
  reference, reference_sums, _ = trained(config(), 1, epochs)
  for per_call in (0, 7):
    got, sums, run = trained(config(), per_call, epochs)
    assert run.train_chunk.size == (run.train_loader.steps_per_epoch if per_call == 0 else 7)
    assert np.array_equal(got, reference) and sums == reference_sums
    assert run.train_chunk.jitted._cache_size() == 1  # the short last call reuses the compilation
  # batches streamed from the host (HDF5 splits larger than data.max_on_device_gb): stacked 7 at a
  # time through the same loop, the bits of a call a step on the same streamed batches
  def streamed(base=config):
    c = base()
    c.data.on_device = "no"
    return c
  one, one_sums, run = trained(streamed(), 1, epochs)
  assert not run.train_loader.on_device and run.train_chunk is None
  got, sums, run = trained(streamed(), 7, epochs)
  assert run.train_chunk.size == 7 and run.train_chunk.source is None
  assert np.array_equal(got, one) and sums == one_sums
  if name != "lenet_digits":
    return
  # with the progress bar on (auto): a call per monitor.log_every_steps, the bar moved after each
  # (LeNet's run: the bar's calls are the same for every model)
  c = config()
  c.monitor.progress, c.monitor.log_every_steps = True, 4
  bar = RecordingBar()
  got, sums, run = trained(c, 0, 1, bar)
  steps = run.train_loader.steps_per_epoch
  assert bar.updates == [4] * (steps // 4) + ([steps % 4] if steps % 4 else [])
  assert np.array_equal(got, reference if epochs == 1 else trained(config(), 1, 1)[0])


def test_auto_steps_per_dispatch(tiny_digits, monkeypatch):
  """One call a step where a loop would not pay: batches from the host, and XLA's own convolution
  backward pass on the CPU (17 s instead of 0.3 s a MiniVGGNet step inside a loop body)."""
  from cnnzoo.kernels import dispatch, settings
  from cnnzoo.training import build as build_lib
  run = loop.build(tiny_digits)
  auto = lambda kernels=run.kernels: loop.steps_per_dispatch(tiny_digits, run.train_loader, run.mesh, kernels)
  assert auto() == 39  # the progress bar off: the whole epoch
  tiny_digits.monitor.progress = True
  assert auto() == 20  # monitor.log_every_steps
  assert auto(dispatch.resolve(settings.Settings(kernel_grad="xla"), "cpu", 1)) == 1
  monkeypatch.setattr(run.train_loader, "on_device", False)  # streamed: host batches stacked K at a time
  assert auto() == 20
  batch_bytes = run.train_loader.split.images[:run.train_loader.batch_size].nbytes
  monkeypatch.setattr(build_lib, "STREAMED_CHUNK_BYTES", 5 * batch_bytes + 1)  # five batches' images
  assert auto() == 5



INIT_LEVELS = """
import sys
import jax, numpy as np, optax
from cnnzoo import models
from cnnzoo.training import state as state_lib
assert state_lib.init_compiler_options() == {"xla_backend_optimization_level": 1}, state_lib.init_compiler_options()
for name, shape, kernel_init in (("lenet5", (32, 32, 1), "flax"), ("lenet5", (32, 32, 1), "he_normal")):
  model = models.create_model(name, num_classes=10)
  fast = state_lib.create(model, optax.adam(1e-3), shape, 3, kernel_init=kernel_init)
  state_lib.init_compiler_options = lambda: None  # XLA's default level, -O2
  slow = state_lib.create(model, optax.adam(1e-3), shape, 3, kernel_init=kernel_init)
  state_lib.init_compiler_options = lambda: {"xla_backend_optimization_level": 1}
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(slow)):
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), (name, kernel_init)
print("ok")
"""


def test_the_initial_state_compiled_at_O1_draws_the_bits_of_O2(tmp_path):
  """state.create compiles at LLVM -O1 on the CPU (3x faster for the random draws): the same bits as
  XLA's default level, truncated-normal draws included (-O0 draws others). At XLA's default flags, as
  a user runs; with a level in XLA_FLAGS (the suite's -O0) that level wins."""
  import subprocess
  import sys
  from conftest import lenet_env
  from cnnzoo.training import state as state_lib
  assert state_lib.init_compiler_options() is None  # the suite's XLA_FLAGS set -O0
  script = tmp_path / "init_levels.py"
  script.write_text(INIT_LEVELS)
  child = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=dict(lenet_env(), PYTHONPATH=ROOT),
                         capture_output=True, text=True, timeout=600)
  assert child.returncode == 0 and child.stdout.strip() == "ok", child.stderr[-2000:]

MULTI_DEVICE = """
import json, sys
import jax
import numpy as np
from configs import minivggnet_cifar10
from cnnzoo.training import loop
c = minivggnet_cifar10.get_config()  # BatchNorm + dropout: global-batch statistics, sharded RNG
c.data.name = "digits"; c.data.val_fraction = 0.1; c.data.batch_size = 32; c.data.eval_batch_size = 64
c.optim.lr = 1e-3
# flax's initializers, not the config's glorot_uniform: from glorot's start on digits (zero background,
# so near-empty channels whose BatchNorm variance is tiny) 8 devices' first update differs from 1
# device's by 0.8% of its norm (reduction order, amplified by 1/sqrt(var + eps)); from flax's, 5e-6.
c.model.kernel_init = "flax"
run = loop.build(c)
flat = lambda params: np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(params))])
state, losses, params = run.state, [], [flat(run.state.params)]
for i, batch in zip(range(5), run.train_loader.epoch(0)):
  state, m = run.train_step(state, batch)
  losses.append(float(m["loss"]) / 32)
  if i == 0:
    params.append(flat(state.params))
np.savez(sys.argv[1], before=params[0], after=params[1])
print(json.dumps({"devices": jax.device_count(), "losses": losses,
                  "val": loop.evaluate(run, state, run.val_loader)}))
"""


def run_devices(n, tmp_path, forkserver):
  script = tmp_path / "multi_device.py"
  script.write_text(MULTI_DEVICE)
  child = forkserver.run([str(tmp_path / f"{n}.npz")], devices_env(n), path=script)
  assert child.returncode == 0, child.stderr[-2000:]
  return json.loads(child.stdout.strip().splitlines()[-1]), np.load(tmp_path / f"{n}.npz")


def test_eight_devices_give_the_same_losses_as_one(tmp_path, forkserver):
  """8 devices sum the same batch in another order than 1 device, so they agree to float32
  reassociation, not bitwise. From equal weights, the first step is compared tightly: its loss
  (a forward pass) within a few ulps (rel 1e-6 = 8 eps), and its update within 1e-3 of the
  update's norm. Wrong rows, per-device BatchNorm statistics, other dropout masks or gradients
  not averaged over all devices move them by far more (a gradient scaled by 9/8 by 12.5%).

  Later steps are compared loosely (rel 1e-2) because they are not a smooth function of those
  ulps: where two inputs of a max-pool window are within an ulp, the argmax (the pixel that gets
  the gradient) can flip. Measured on AMD EPYC with the suite's -O0 flags: step 4 moved by
  1.4e-4 and step 5 by 1.4e-3 relative, while weights nudged by 1e-7 moved step 4 by 3e-7 (an
  earlier version of this test used that nudge as its tolerance and failed)."""
  (one, p1), (eight, p8) = run_devices(1, tmp_path, forkserver), run_devices(8, tmp_path, forkserver)
  assert (one["devices"], eight["devices"]) == (1, 8)
  assert np.array_equal(p1["before"], p8["before"])  # the same initial weights
  assert eight["losses"][0] == pytest.approx(one["losses"][0], rel=1e-6)
  update = p1["after"] - p1["before"]
  assert np.linalg.norm(p8["after"] - p1["after"]) <= 1e-3 * np.linalg.norm(update)
  assert eight["losses"][1:] == pytest.approx(one["losses"][1:], rel=1e-2), (one, eight)
  assert eight["val"]["loss"] == pytest.approx(one["val"]["loss"], rel=1e-2)
  assert one["val"]["count"] == eight["val"]["count"] == 180


CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if not os.path.basename(p).startswith(("_", "base")))


def variants() -> list[tuple[str, str]]:
  """(config, ARG) of every journal run a config file selects with `configs/NAME.py:ARG`."""
  import importlib
  return [(name, arg) for name in CONFIGS for arg in getattr(importlib.import_module(f"configs.{name}"), "VARIANTS", ())]


def smoke_run(name: str, arg: str, tmp_path) -> None:
  """`configs/NAME.py:ARG,smoke` as experiments.main runs it, with its checks."""
  import importlib
  config = quiet(importlib.import_module(f"configs.{name}").get_config(",".join(filter(None, (arg, "smoke")))))
  assert config.data.name == "synthetic"
  if config.features.use:  # extraction + logistic regression (cnnzoo/transfer/pipeline.py)
    from cnnzoo.transfer import pipeline
    results = pipeline.run(config, str(tmp_path), echo=lambda line: None)
    assert results["kind"] == "features_logreg" and results["test_count"] == config.data.synthetic_sizes[2]
    assert 0 <= results["test_accuracy"] <= 1
    assert sorted(os.listdir(tmp_path / "features")) == ["test_features.h5", "train_features.h5", "val_features.h5"]
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "finished"
    said = []  # the same command again reuses the features files and fits the regression again
    again = pipeline.run(config, str(tmp_path), echo=said.append)
    assert sum("already there (same model, layer and data): reused" in line for line in said) == 3
    assert again["test_accuracy"] == results["test_accuracy"]
    return
  if config.ensemble.members:  # trained as experiments.main does: members, then their ensemble
    from cnnzoo.evaluation.ensemble import train_ensemble
    out = train_ensemble(config, str(tmp_path), echo=lambda line: None)
    assert out["ensemble_of"] == config.ensemble.members == 2 and out["count"] == config.data.synthetic_sizes[2]
    assert [m["workdir"] for m in out["members"]] == [str(tmp_path / f"member_{k}") for k in range(2)]
    assert (tmp_path / "ensemble_eval_test" / "confusion_matrix.png").exists()
    return
  results = loop.train_and_evaluate(config, str(tmp_path))
  history = json.loads((tmp_path / "history.json").read_text())
  assert len(history) == config.num_epochs == max(2, len(config.stages))
  assert all(jax.numpy.isfinite(h["loss"]) for h in history)
  assert results["test_count"] == config.data.synthetic_sizes[2]
  if len(config.stages) > 1:  # one epoch per stage in :smoke
    assert [h["stage"] for h in history] == list(range(1, len(config.stages) + 1))


# config files whose `:smoke` run another test makes in full already (as a command, on files in the
# real formats, with its checks and more): running it here too would only compile it again
SMOKE_RUN_ELSEWHERE = {
    "vgg16_flowers17_finetune": "test_finetune.py::test_the_two_phase_recipe_resumes_in_phase_2_after_a_kill",
}


@pytest.mark.parametrize("name", [c for c in CONFIGS if c not in SMOKE_RUN_ELSEWHERE])
def test_every_config_smoke_runs(name, tmp_path):
  smoke_run(name, "", tmp_path)


def test_the_smoke_runs_made_elsewhere_exist():
  for name, test in SMOKE_RUN_ELSEWHERE.items():
    module, function = test.split("::")
    with open(os.path.join(ROOT, "tests", module)) as f:
      source = f.read()
    assert f"def {function}(" in source and f"configs/{name}.py:smoke" in source, (name, test)


@pytest.mark.parametrize("name,arg", variants())
def test_every_journal_variant_traces(name, arg):
  """Every `configs/NAME.py:ARG` builds (data, model, optimizer, stages) and every stage's train
  step traces (jax.eval_shape: shapes, the schedule and the trainable set, nothing compiled).
  Their smoke runs take minutes together (each compiles its own step):
  CNNZOO_ALL_SMOKE=1 python -m pytest tests/test_training.py -k variant_smoke"""
  import importlib
  config = quiet(importlib.import_module(f"configs.{name}").get_config(f"{arg},smoke"))
  assert config.journal.run and config.journal.seed, "every journal run says what it reproduces"
  if config.features.use:
    from cnnzoo.transfer import pipeline
    extractor = pipeline._extractor(config, 3)
    from cnnzoo.transfer import features
    assert features.check_layer(extractor, 3) > 0
    return
  run = loop.build(config, abstract=True)
  batch = next(run.train_loader.epoch(0))
  for stage in run.stages:
    step = run.train_step_for(stage)
    state = run.state.replace(tx=stage.tx, opt_state=jax.eval_shape(stage.tx.init, run.state.params))
    new_state, metrics = jax.eval_shape(step.jitted, state, batch, step.source)
    assert jax.tree.structure(new_state.params) == jax.tree.structure(run.state.params)
    assert metrics["loss"].shape == ()


@pytest.mark.skipif(not os.environ.get("CNNZOO_ALL_SMOKE"), reason="minutes: set CNNZOO_ALL_SMOKE=1")
@pytest.mark.parametrize("name,arg", variants())
def test_every_journal_variant_smoke_runs(name, arg, tmp_path):
  smoke_run(name, arg, tmp_path)
