"""The GPU check: one command to run first on a machine with a GPU (issue 30), under 5 minutes.

  python -m benchmarks.gpu_check                 # on a GPU machine: the full sizes
  python -m benchmarks.gpu_check --quick         # tiny sizes (what it does on a machine without a GPU)

1. Which devices the installed JAX sees (the CUDA build, `pip install -r requirements.txt`, should
   list one "cuda" device per GPU); without a GPU it says so and goes on with tiny sizes on the CPU,
   so the script itself is checked anywhere.
2. The suite's tests that matter on a GPU (models' shapes and counts, optimizers, schedules, steps
   and a multi-device step), run with JAX_PLATFORMS set to the platform found.
3. Train steps of ResNet-20 (32x32) and ResNet-50 (224x224) in float32 and bfloat16 at several
   global batch sizes: images/s after warm-up (the loop's own jitted `train_step`).
4. One whole epoch of CIFAR-size synthetic data (50,000 32x32 images, on device) through the real
   training loop (`experiments.main`'s code path), ResNet-20 v1, bf16: the epoch's seconds.
Then one table. Targets on an H100 / H200 (benchmarks/README.md, "The GPU path"): the ResNet-20
epoch <= 2 s in bf16; ResNet-50 >= 2,500 img/s in bf16.
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from benchmarks import train_throughput  # defines its own flags (--model, --batch_size...): unused here

_QUICK = flags.DEFINE_bool("quick", False, "Tiny sizes (implied where there is no GPU).")
_TESTS = flags.DEFINE_bool("tests", True, "Run the GPU-relevant tests.")
_STEPS = flags.DEFINE_integer("timed_steps", 20, "Timed steps per configuration.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_TESTS = ["tests/test_models.py", "tests/test_optim.py", "tests/test_schedules.py", "tests/test_keras_optim.py"]
FULL = {"resnet20_v1": (256, 1024), "resnet50": (128, 256)}  # 8 compiles: the 5-minute budget
QUICK = {"resnet20_v1": (16,), "resnet50": (2,)}


def devices() -> tuple[str, list]:
  """(platform, device kinds) of what JAX starts here; the CPU where no GPU backend loads."""
  import jax
  try:
    gpus = jax.devices("gpu")
  except RuntimeError:
    gpus = []
  if gpus:
    return "gpu", [d.device_kind for d in gpus]
  from cnnzoo import cli
  cli.choose_platform()
  return "cpu", [d.device_kind for d in jax.devices()]


def run_tests(platform: str, quick: bool) -> str:
  """The GPU-relevant tests on `platform`: their summary line."""
  env = dict(os.environ, JAX_PLATFORMS="cuda" if platform == "gpu" else "cpu")
  argv = [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", *GPU_TESTS[:1 if quick else None]]
  if quick:
    argv += ["-k", "lenet or minivgg"]
  done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
  lines = [line for line in done.stdout.splitlines() if line.strip()]
  return (lines[-1] if lines else done.stderr.strip().splitlines()[-1]) + ("" if done.returncode == 0 else " (FAILED)")


def time_steps(model: str, batch: int, dtype: str, steps: int) -> float:
  """Images per second of the loop's train step for `model` at global `batch` in `dtype`."""
  step, state, data = train_throughput.build(model, batch, dtype)
  _, per_step, _ = train_throughput.time_steps(step, state, data, steps, warmup=3)
  return batch / per_step


def epoch_seconds(quick: bool, dtype: str) -> tuple[float, float]:
  """(seconds of the second epoch, its images/s) of ResNet-20 v1 on CIFAR-size synthetic data
  through the real loop; the first epoch compiles."""
  from configs import base
  from cnnzoo.training import loop
  c = base.get_config()
  c.model.name, c.model.dtype = "resnet20_v1", dtype
  c.data.name = "synthetic"
  c.model.input_shape, c.model.num_classes = (32, 32, 3), 10
  c.data.synthetic_sizes = (512, 64, 64) if quick else (50_000, 1_000, 1_000)
  c.data.batch_size = 32 if quick else 512
  c.optim.name, c.optim.lr, c.optim.momentum = "sgd", 0.1, 0.9
  c.num_epochs = 2
  c.monitor.plot, c.monitor.tensorboard = False, False
  with tempfile.TemporaryDirectory() as workdir, open(os.devnull, "w") as quiet, \
      contextlib.redirect_stdout(quiet):  # the run's own lines and report: only its seconds matter here
    loop.train_and_evaluate(c, workdir)
    with open(os.path.join(workdir, "history.json")) as f:
      second = json.load(f)[-1]
  return second["seconds"], second.get("img_per_sec", float("nan"))


def main(argv):
  del argv
  from absl import logging
  logging.set_verbosity(logging.ERROR)  # orbax's INFO lines
  began = time.perf_counter()
  platform, kinds = devices()
  quick = _QUICK.value or platform != "gpu"
  print(f"devices: {len(kinds)} x {kinds[0]} ({platform})" + ("" if platform == "gpu" else
        " -- no GPU: JAX's CUDA build is not installed or sees no device; tiny sizes on the CPU"))
  rows = []
  if _TESTS.value:
    rows.append(("tests", " ".join(GPU_TESTS[:1] if quick else GPU_TESTS), run_tests(platform, quick)))
  for model, batches in (QUICK if quick else FULL).items():
    for dtype in ("float32", "bfloat16"):
      for batch in batches:
        rate = time_steps(model, batch, dtype, 3 if quick else _STEPS.value)
        rows.append(("train step", f"{model} {dtype} batch {batch}", f"{rate:,.0f} img/s"))
  seconds, rate = epoch_seconds(quick, "bfloat16")
  size = "512 images, batch 32" if quick else "50,000 images, batch 512"
  rows.append(("epoch", f"resnet20_v1 bfloat16, {size}", f"{seconds:.2f} s ({rate:,.0f} img/s)"))
  width = [max(len(r[i]) for r in rows) for i in range(2)]
  print()
  for kind, what, result in rows:
    print(f"{kind.ljust(width[0])}  {what.ljust(width[1])}  {result}")
  print(f"\ntotal {time.perf_counter() - began:.0f} s on {platform}")


if __name__ == "__main__":
  app.run(main)
