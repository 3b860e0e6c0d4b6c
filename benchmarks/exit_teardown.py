"""What cnnzoo.cli.exit_now saves: the interpreter's module teardown after a finished command.

  python -m benchmarks.exit_teardown [--rounds=3] [--config=configs/lenet_digits.py]

Runs the README's first command (`experiments.main --config=...` into a fresh workdir) `--rounds`
times each way, alternated: ending as every entry point does (cli.exit_now: threads joined, atexit
handlers run, streams flushed, then os._exit) and ending as a plain interpreter would
(SystemExit: the same, then every module torn down). Prints the seconds from the moment the command
is done to the moment its process has ended, and the whole command's wall time. exit_now is worth
keeping while the plain teardown costs noticeably more; when the two columns meet, remove it
(cnnzoo/cli.py). A timing: run it on an otherwise idle machine.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

_ROUNDS = flags.DEFINE_integer("rounds", 3, "Alternated rounds of each ending.")
_CONFIG = flags.DEFINE_string("config", "configs/lenet_digits.py", "The command's config.")

# the child: the entry point, with cli.exit_now wrapped to print when the command is done and,
# for `plain`, replaced by a SystemExit (what exit_now would otherwise skip)
_CHILD = """
import runpy, sys, time
from cnnzoo import cli
kept, ending = cli.exit_now, sys.argv[1]
def done(code):
  print("DONE", time.time(), flush=True)
  if ending == "plain":
    raise SystemExit(code)
  kept(code)
cli.exit_now = done
sys.argv = ["experiments.main", "--config=" + sys.argv[2], "--workdir=" + sys.argv[3]]
runpy.run_module("experiments.main", run_name="__main__")
"""


def one(ending: str, config: str, workdir: str) -> tuple[float, float]:
  """(teardown seconds, whole command seconds) of one run."""
  began = time.time()
  proc = subprocess.run([sys.executable, "-c", _CHILD, ending, config, workdir], capture_output=True, text=True,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=False)
  ended = time.time()
  done = [line for line in proc.stdout.splitlines() if line.startswith("DONE ")]
  if proc.returncode != 0 or not done:
    raise SystemExit(f"the command failed ({ending}, rc {proc.returncode}): {proc.stderr.strip()[-500:]}")
  return ended - float(done[-1].split()[1]), ended - began


def main(argv):
  del argv
  rows = {"exit_now": [], "plain": []}
  with tempfile.TemporaryDirectory() as tmp:
    for r in range(_ROUNDS.value):
      for ending in rows:
        rows[ending].append(one(ending, _CONFIG.value, os.path.join(tmp, f"{ending}{r}")))
  print("| ending | teardown, s (median) | each round | whole command, s (median) |")
  print("|---|---:|---|---:|")
  for ending, runs in rows.items():
    teardown, whole = [t for t, _ in runs], [w for _, w in runs]
    print(f"| {ending} | {statistics.median(teardown):.3f} | {' / '.join(f'{t:.3f}' for t in teardown)} | "
          f"{statistics.median(whole):.2f} |")


if __name__ == "__main__":
  app.run(main)
