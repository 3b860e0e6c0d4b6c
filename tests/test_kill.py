"""Exact resume under kill -9: a run killed again and again at random points of each phase
(compiling, mid-epoch, evaluating, writing a checkpoint), then rerun to the end, ends bitwise
equal to an uninterrupted run.

The default suite runs 4 trials (one per phase). The documented stress run:

  CNNZOO_KILL_TRIALS=20 python -m pytest tests/test_kill.py -q -s -n 0

prints one line per trial (phase, delay, epochs on disk) and the verdict.
"""

import json
import os
import random
import signal
import time

import pytest

from conftest import lenet_cli, lenet_env, read_json, without_timing

TRIALS = int(os.environ.get("CNNZOO_KILL_TRIALS", "4"))
PHASES = ("compile", "train", "evaluate", "save")
MAX_DELAY = {"compile": 1.0, "train": 0.4, "evaluate": 0.05, "save": 0.05}  # seconds after the phase starts


def kill_in_phase(forkserver, argv, phase, nth, delay, env, timeout=300):
  """Starts `argv`, SIGKILLs it `delay` s after it logs `cnnzoo phase: PHASE` for the `nth` time;
  True if it did."""
  child = forkserver.start(argv, env)
  killed = False
  if child.wait_for(f"cnnzoo phase: {phase} ", nth, timeout):
    time.sleep(delay)
    if child.poll() is None:
      child.kill()
      killed = True
  child.wait()
  return killed


@pytest.mark.xdist_group("lenet_reference")  # shares the uninterrupted run with the tmpfs test
def test_kill_9_at_random_points_then_rerun_is_bitwise_exact(tmp_path, lenet_reference, forkserver):
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
    did = kill_in_phase(forkserver, argv, phase, nth, delay, env)
    on_disk = sorted(os.listdir(os.path.join(workdir, "checkpoints"))) if did else []
    print(f"trial {trial + 1}: {phase} #{nth} + {delay * 1000:.0f} ms: {'killed' if did else 'ended first'}; "
          f"checkpoints {on_disk}")
    killed.append(did)
  assert sum(killed) >= 0.75 * TRIALS, killed
  final = forkserver.run(argv[:-1], env)
  assert final.returncode == 0, final.stderr[-2000:]
  assert read_json(reference, "results.json") == read_json(workdir, "results.json")  # params_sha256 too
  assert without_timing(read_json(reference, "history.json")) == without_timing(read_json(workdir, "history.json"))
  assert not [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if "tmp" in n]
  print(f"{sum(killed)} of {TRIALS} kills landed; the rerun is bitwise equal to the uninterrupted run")


@pytest.mark.parametrize("signum, rc, name, last", [(signal.SIGINT, 130, "Ctrl-C", "interrupted"),
                                                     (signal.SIGTERM, 143, "SIGTERM", "terminated (SIGTERM)"),
                                                     (signal.SIGHUP, 129, "SIGHUP", "terminated (SIGHUP)")])
def test_ctrl_c_or_sigterm_keeps_the_last_checkpoint_and_the_same_command_resumes(tmp_path, forkserver, signum, rc,
                                                                                   name, last):
  """Ctrl-C, and SIGTERM (what SLURM and Kubernetes send at a time limit) and SIGHUP (a closed
  terminal) the same way."""
  import re
  from cnnzoo.evaluation import overview
  workdir = str(tmp_path / "run")
  # twelve epochs, Ctrl-C once epoch 2 trains: on a loaded machine the signal may land epochs later
  # than this process saw the line (with four epochs of ~0.25 s a CI run once finished first), so
  # the kept epoch is 1 or later, never the end of the run
  argv = lenet_cli(workdir, 12, "--verbosity=0")
  child = forkserver.start(argv, lenet_env())
  assert child.wait_for("cnnzoo phase: train ", 1)  # epoch 2 trains: epoch 1 is saved
  child.kill(signum)
  if signum == signal.SIGHUP and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    # the suite runs under nohup, and so does its child: a closed terminal is no stop there
    assert child.wait() == 0 and "terminated" not in child.stderr
    assert json.loads(open(os.path.join(workdir, "status.json")).read())["state"] == "finished"
    return
  assert child.wait() == rc
  lines = [l for l in child.stderr.splitlines() if not l.startswith("I") and l.strip()]
  kept = re.fullmatch(rf"stopped by {name}; the checkpoint of epoch (\d+) is kept: rerun the same command to "
                      r"resume from it", lines[-2])
  assert kept and 1 <= int(kept[1]) < 12 and lines[-1] == last, lines
  status = json.loads(open(os.path.join(workdir, "status.json")).read())
  assert (status["state"], status["message"]) == ("interrupted", name)
  assert "Traceback" not in child.stderr
  row = overview.describe(workdir)
  assert (row.state, row.epochs) == ("interrupted", int(kept[1])) and row.detail.startswith("resume: python -m experiments.main")
  if signum != signal.SIGINT:  # the resume after it is the same as after Ctrl-C: tested once
    return
  again = forkserver.run(argv[:-1], lenet_env())
  assert again.returncode == 0 and f"resuming after epoch {kept[1]} of 12" in again.stdout
  assert overview.describe(workdir).state == "finished"


def test_a_signal_swallowed_by_a_finalizer_is_delivered_again():
  """Python ignores an exception raised inside a finalizer (a weakref callback the garbage collector
  runs): a Ctrl-C or SIGTERM landing there would be lost, and the command would go on. cli's
  unraisable hook sends the signal again once the main thread is back in ordinary code."""
  import subprocess
  import sys
  code = """if True:
    import signal, sys, time, weakref
    from cnnzoo import cli
    from cnnzoo.errors import Terminated
    signal.signal(signal.SIGTERM, cli._terminate)
    if sys.argv[1] == "hook":
      sys.unraisablehook = cli._deliver_again
    class Thing:
      pass
    def finalizer(_):
      raise Terminated()  # what the handler does if SIGTERM lands inside a finalizer
    thing = Thing()
    ref = weakref.ref(thing, finalizer)
    del thing
    try:
      time.sleep(3)
      print("lost")
    except Terminated:
      print("delivered")
  """
  from conftest import ROOT
  got = {mode: subprocess.run([sys.executable, "-c", code, mode], cwd=ROOT, capture_output=True, text=True,
                              timeout=60).stdout.strip() for mode in ("hook", "none")}
  assert got == {"hook": "delivered", "none": "lost"}
