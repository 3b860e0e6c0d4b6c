"""Runs many command lines of cnnzoo's entry points in one Python process, as `python -m MODULE`
would, for the bad-input tests: the heavy imports happen once, then each case runs in a forked
child with its own argv, working directory and stdout / stderr files.

  python tests/cli_batch.py < cases.json > results.json

cases: [{"module": "experiments.main", "argv": [...], "cwd": DIR}]; results: [{"rc", "stdout", "stderr"}].
"""

import json
import os
import runpy
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def preload():
  """Imports what every entry point imports (no JAX backend is started, so forking is safe)."""
  import absl.flags  # noqa: F401
  import flax.linen  # noqa: F401
  import h5py  # noqa: F401
  import jax  # noqa: F401
  import ml_collections  # noqa: F401
  import optax  # noqa: F401
  import orbax.checkpoint  # noqa: F401
  import sklearn.model_selection  # noqa: F401
  import tensorflow_datasets  # noqa: F401
  import cnnzoo.training.loop  # noqa: F401
  import cnnzoo.data.builders  # noqa: F401


def run_case(case, out_dir, index):
  out, err = (os.path.join(out_dir, f"{index}.{n}") for n in ("out", "err"))
  pid = os.fork()
  if pid == 0:  # the child: becomes `python -m MODULE ARGV...`
    code = 0
    try:
      os.chdir(case.get("cwd", ROOT))
      for fd, path in ((1, out), (2, err)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
      sys.argv = [case["module"], *case["argv"]]
      runpy.run_module(case["module"], run_name="__main__", alter_sys=True)
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 -- as the interpreter would: traceback, status 1
      import traceback
      traceback.print_exc()
      code = 1
    finally:
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(code)
  _, status = os.waitpid(pid, 0)
  with open(out) as fo, open(err) as fe:
    return {"rc": os.waitstatus_to_exitcode(status), "stdout": fo.read(), "stderr": fe.read()}


def main():
  cases = json.load(sys.stdin)
  preload()
  with tempfile.TemporaryDirectory() as out_dir:
    results = [run_case(case, out_dir, i) for i, case in enumerate(cases)]
  json.dump(results, sys.stdout)


if __name__ == "__main__":
  main()
