"""A fork server for the tests' command lines: `python tests/cli_batch.py --serve` imports what
cnnzoo's entry points import once, then runs each requested command line in a forked child, as
`python -m MODULE ARGV` would, with its own argv, working directory, environment and stdout /
stderr files. conftest's `forkserver` fixture and `cli_batch` drive it (one per xdist worker): each
child skips the ~4 s of imports a fresh `python -m experiments.main` spends, and is a real process
that can be killed with -9.
"""

import json
import os
import runpy
import select
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # on PYTHONPATH (conftest starts it so)


def preload():
  """Imports what every entry point imports (no JAX backend is started, so forking is safe)."""
  import absl.flags  # noqa: F401
  import flax.linen  # noqa: F401
  import h5py  # noqa: F401
  import jax  # noqa: F401
  import ml_collections  # noqa: F401
  import optax  # noqa: F401
  import orbax.checkpoint  # noqa: F401
  import sklearn.datasets  # noqa: F401
  import sklearn.metrics  # noqa: F401
  import sklearn.model_selection  # noqa: F401
  import tensorflow_datasets  # noqa: F401
  import cnnzoo.training.loop  # noqa: F401
  import cnnzoo.data.builders  # noqa: F401


def start(case, out: str, err: str) -> int:
  """Forks a child that becomes `python -m MODULE ARGV...` (in `cwd`, with `env` if given, its
  stdout / stderr in the files `out` / `err`); returns its pid."""
  for path in (out, err):  # there before the caller hears the pid (it may read them at once)
    open(path, "w").close()
  pid = os.fork()
  if pid:
    return pid
  code = 0  # the child
  try:
    import signal
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal (xdist ignores it)
    os.chdir(case.get("cwd", ROOT))
    if "env" in case:  # read by JAX when the child starts its backend (XLA_FLAGS: device count)
      os.environ.clear()
      os.environ.update(case["env"])
    for fd, path in ((1, out), (2, err)):
      f = os.open(path, os.O_WRONLY | os.O_APPEND)
      os.dup2(f, fd)
      os.close(f)
    if "path" in case:  # `python PATH ARGV...`
      sys.argv = [case["path"], *case["argv"]]
      sys.path.insert(0, os.path.dirname(os.path.abspath(case["path"])))
      runpy.run_path(case["path"], run_name="__main__")
    else:
      sys.argv = [case["module"], *case["argv"]]
      runpy.run_module(case["module"], run_name="__main__", alter_sys=True)
  except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
  except BaseException:  # noqa: BLE001 -- as the interpreter would: traceback, status 1
    import traceback
    traceback.print_exc()
    code = 1
  finally:
    from cnnzoo.kernels import build
    build.abandon()  # as the interpreter's atexit would: os._exit skips it
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve():
  """`--serve`: one JSON request per stdin line, {"id", "module", "argv", "cwd", "env", "out",
  "err"}; answers {"id", "pid"} on stdout when its child starts and {"id", "rc"} when it ends.
  Children run concurrently (multihost); the caller may kill them. Ends at EOF, after the last child.
  One thread only: forking a process that has other threads risks locks held by them."""
  preload()
  running, pending = {}, b""

  def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()

  eof = False
  while not eof or running:
    if not eof and select.select([0], [], [], 0.005)[0]:
      data = os.read(0, 65536)
      eof = not data
      pending += data
      while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        request = json.loads(line)
        pid = start(request, request["out"], request["err"])
        running[pid] = request["id"]
        reply({"id": request["id"], "pid": pid})
    elif eof:
      time.sleep(0.005)
    for pid in list(running):
      done, status = os.waitpid(pid, os.WNOHANG)
      if done:
        reply({"id": running.pop(pid), "rc": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
  if sys.argv[1:] != ["--serve"]:
    sys.exit("usage: python tests/cli_batch.py --serve")
  serve()
