"""Exact resume under kill -9: a run killed again and again at random points of each phase
(compiling, mid-epoch, evaluating, writing a checkpoint), then rerun to the end, ends bitwise
equal to an uninterrupted run.

The default suite runs 4 trials (one per phase). The documented stress run:

  CNNZOO_KILL_TRIALS=20 python -m pytest tests/test_kill.py -q -s -n 0

prints one line per trial (phase, delay, epochs on disk) and the verdict.
"""

import os
import random
import signal
import subprocess
import threading
import time

import pytest

from conftest import ROOT, lenet_cli, lenet_env, read_json, without_timing

TRIALS = int(os.environ.get("CNNZOO_KILL_TRIALS", "4"))
PHASES = ("compile", "train", "evaluate", "save")
MAX_DELAY = {"compile": 1.0, "train": 0.4, "evaluate": 0.05, "save": 0.05}  # seconds after the phase starts


def kill_in_phase(argv, phase, nth, delay, env, timeout=300):
  """Starts `argv`, SIGKILLs it `delay` s after it logs `cnnzoo phase: PHASE` for the `nth` time;
  True if it did."""
  proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  hit, seen = threading.Event(), []

  def watch():
    for line in proc.stderr:  # drain everything (orbax logs at INFO too) so the pipe never fills
      if f"cnnzoo phase: {phase} " in line:
        seen.append(line)
        if len(seen) == nth:
          hit.set()

  threading.Thread(target=watch, daemon=True).start()
  deadline = time.time() + timeout
  while not hit.is_set() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.001)
  killed = False
  if hit.is_set():
    time.sleep(delay)
    if proc.poll() is None:
      proc.send_signal(signal.SIGKILL)
      killed = True
  proc.wait()
  return killed


@pytest.mark.xdist_group("lenet_reference")  # shares the uninterrupted run with the tmpfs test
def test_kill_9_at_random_points_then_rerun_is_bitwise_exact(tmp_path, lenet_reference):
  epochs = 2 * TRIALS + 2  # a trial moves the run on by two epochs at most: every trial finds work
  reference = lenet_reference(epochs)
  workdir = str(tmp_path / "killed")
  argv = lenet_cli(workdir, epochs, "--verbosity=0")
  env = lenet_env()
  rng = random.Random(int(os.environ.get("CNNZOO_KILL_SEED", "0")))
  killed = []
  for trial in range(TRIALS):
    phase = PHASES[trial % len(PHASES)]
    nth = 1 if phase == "compile" else rng.choice([1, 2])  # the process's first or second epoch
    delay = rng.uniform(0, MAX_DELAY[phase])
    did = kill_in_phase(argv, phase, nth, delay, env)
    on_disk = sorted(os.listdir(os.path.join(workdir, "checkpoints"))) if did else []
    print(f"trial {trial + 1}: {phase} #{nth} + {delay * 1000:.0f} ms: {'killed' if did else 'ended first'}; "
          f"checkpoints {on_disk}")
    killed.append(did)
  assert sum(killed) >= 0.75 * TRIALS, killed
  final = subprocess.run(argv[:-1], cwd=ROOT, env=env, capture_output=True, text=True)
  assert final.returncode == 0, final.stderr[-2000:]
  assert read_json(reference, "results.json") == read_json(workdir, "results.json")  # params_sha256 too
  assert without_timing(read_json(reference, "history.json")) == without_timing(read_json(workdir, "history.json"))
  assert not [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if "tmp" in n]
  print(f"{sum(killed)} of {TRIALS} kills landed; the rerun is bitwise equal to the uninterrupted run")
