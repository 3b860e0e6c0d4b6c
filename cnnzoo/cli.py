"""Entry-point plumbing shared by experiments/*.py: user mistakes become one line on stderr and
exit status 2, never a traceback.

`run(main)` is absl's `app.run` with a flag parser that reports a bad flag, a misspelt
`--config.FIELD` or a config file that fails to load in one line, and a `main` whose UserErrors
are printed the same way. Anything else is a bug and keeps its traceback.
"""

import os
import re
import signal
import sys

from absl import app, flags

from cnnzoo import configfile
from cnnzoo.configfile import last_line
from cnnzoo.errors import Terminated, UserError
from cnnzoo.kernels import build as onednn_build
from cnnzoo.kernels import settings as kernel_settings

EXIT_USER_ERROR = 2


def fail(message: str, status: int = EXIT_USER_ERROR) -> None:
  """Prints `error: MESSAGE` (one line) on stderr and exits with `status` (2: bad input)."""
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
  sys.exit(status)


def _config_file_problem(argv) -> str | None:
  """Why the `--config=FILE[:ARG]` of `argv` cannot load, or None. Checked before the overrides
  are applied, which would otherwise fail on a config that is not there with a confusing error."""
  spec = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")), None)
  if spec is None:
    return None
  path = spec.split(":", 1)[0]
  if not os.path.isfile(path):
    return f"cannot load the config: {path} is not a file"
  try:
    with open(path, "rb") as f:
      source = f.read()
    compile(source.decode("utf-8"), path, "exec")
  except OSError as e:
    return f"cannot load the config: {path}: {e.strerror or e}"
  except UnicodeDecodeError as e:
    line = source[:e.start].count(b"\n") + 1
    return f"cannot load the config: {path} line {line} is not UTF-8 text (byte {source[e.start]:#04x}); save it as UTF-8"
  except SyntaxError as e:
    return f"cannot load the config: {path} line {e.lineno}: {e.msg}"
  return None


def _flagfile_loop(argv) -> str | None:
  """The line for a --flagfile that includes itself (directly or through others), or None: absl
  would warn twice and go on without it."""
  def walk(path, chain):
    real = os.path.realpath(path)
    if real in chain:
      return " -> ".join([*chain.values(), path])
    try:
      with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line.strip() for line in f]
    except OSError:
      return None  # absl names a missing or unreadable flagfile itself
    chain = {**chain, real: path}
    for line in lines:
      if line.startswith("--flagfile="):
        loop = walk(line.split("=", 1)[1], chain)
        if loop:
          return loop
    return None

  for arg in argv[1:]:
    if arg.startswith("--flagfile="):
      loop = walk(arg.split("=", 1)[1], {})
      if loop:
        return f"--flagfile: the flag files include each other in a loop ({loop}); remove the --flagfile line that closes it"
  return None


def _parse_flags(argv):
  problem = _config_file_problem(argv) or _flagfile_loop(argv)
  if problem:
    fail(problem)
  try:  # a flag file's --config.FIELD lines are overrides too: expanded before they are taken off
    argv = flags.FLAGS.read_flags_from_files(argv, force_gnu=False)
  except flags.Error as e:  # a flag file that cannot be read
    fail(f"--flagfile: {last_line(e).removeprefix('ERROR:: ')}")
  argv, configfile.OVERRIDES[:] = configfile.split_overrides(argv)
  spec = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")), None)
  if spec is not None:  # the config file's own folder is importable while it loads, and later
    folder = os.path.dirname(os.path.abspath(spec.split(":", 1)[0]))
    if folder not in sys.path:
      sys.path.append(folder)
  whole, sys.argv = sys.argv, argv  # ml_collections reads --config.* overrides from sys.argv itself
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:  # unknown flag, bad value, or a config file whose get_config raised
    fail(last_line(e))
  except (AttributeError, KeyError) as e:  # ml_collections: --config.X.Y names no field
    text = str(e)
    if "get_config" in text:
      fail(f"cannot load the config: the file has no get_config() function ({last_line(e)})")
    hint = re.search(r'Did you mean \\*"(\w+)\\*" instead of \\*"(\w+)\\*"', text)
    overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    name = re.search(r"(\w+)", text)
    bad = hint.group(2) if hint else name.group(1) if name else None
    flag = next((o for o in overrides if bad in o.split(".")), "a --config.FIELD flag")
    fail(f"{flag}: no such config field {bad!r}" + (f"; did you mean {hint.group(1)!r}?" if hint else ""))
  except (TypeError, ValueError) as e:  # ml_collections: a value of the wrong type for its field
    fail(last_line(e))
  except Exception as e:  # noqa: BLE001 -- the config file's own get_config() raised: the user's code
    fail(f"cannot load the config: {type(e).__name__}: {last_line(e)}")
  finally:
    sys.argv = whole


def quiet_logs() -> None:
  """Unless `--verbosity` is given: absl logs at ERROR and above only, and none from orbax, which
  logs a traceback per background thread when a checkpoint write fails (a full disk); the run
  reports such a failure itself in one line."""
  from absl import logging
  if flags.FLAGS["verbosity"].present:
    return
  logging.set_verbosity(logging.ERROR)  # orbax and tfds log chatter at INFO / WARNING
  logging.get_absl_handler().addFilter(lambda record: "/orbax/" not in record.pathname)


TCMALLOC = ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
            "/usr/lib64/libtcmalloc_minimal.so.4")  # Debian / Ubuntu (libtcmalloc-minimal4), Fedora / RHEL


def start_compute() -> None:
  """What a command that computes does first, before it imports JAX: run under tcmalloc
  (use_tcmalloc), then start compiling oneDNN's handlers in the background (kernels/build.py)."""
  use_tcmalloc()
  onednn_build.start()


def use_tcmalloc() -> None:
  """Re-executes this command (os.execv: the same process id, flags and environment) with tcmalloc
  preloaded, where it is installed and LD_PRELOAD is not set. Under glibc's malloc XLA:CPU's large
  per-call temporaries go back to the OS after each call and are page-faulted in again by the next
  (tens of thousands of minor faults a step); tcmalloc keeps them, which is most of the cost of one
  call a step (benchmarks/README.md, "Memory allocators"). Setting LD_PRELOAD, even to "", keeps
  the process as it starts."""
  if "LD_PRELOAD" in os.environ or not sys.platform.startswith("linux"):
    return
  lib = next((path for path in TCMALLOC if os.path.exists(path)), None)
  if lib is None:
    return
  os.environ["LD_PRELOAD"] = lib
  sys.stdout.flush()
  os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def choose_platform() -> None:
  """runtime.choose_platform with the XLA:CPU flags the kernel settings need (CNNZOO_CPU_CONV=eigen
  has one; a bad value is one line)."""
  from cnnzoo import runtime  # lazy: it imports JAX, which an entry point imports after its flags parse
  runtime.choose_platform(kernel_settings.from_env().xla_flags)


def run(main, positional: bool = False) -> None:
  """`app.run(main)` with one-line user errors (see the module docstring). Positional arguments
  are refused unless `positional` (experiments.predict takes image files)."""

  for stream in (sys.stdout, sys.stderr):  # a name the terminal's encoding lacks is escaped, never a traceback
    if hasattr(stream, "reconfigure"):
      stream.reconfigure(errors="backslashreplace")

  def guarded(argv):
    if len(argv) > 1 and not positional:
      fail(f"unexpected arguments: {' '.join(argv[1:])} (every option is a --flag=value)")
    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # under nohup a closed terminal stops nothing
      signal.signal(signal.SIGHUP, _terminate)  # else it stops the run as SIGTERM does
    sys.unraisablehook = _deliver_again
    try:
      return main(argv)
    except UserError as e:
      fail(str(e), e.exit_code)
    except Terminated as e:  # SIGTERM or SIGHUP, handled as Ctrl-C is
      print(f"terminated ({e.signal_name})", file=sys.stderr)
      sys.exit(e.exit_code)
    except KeyboardInterrupt:  # Ctrl-C: what was interrupted has said what it kept
      print("interrupted", file=sys.stderr)
      sys.exit(130)
    except BrokenPipeError:  # `... | head`: the reader has what it wanted; no traceback
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
      sys.exit(0)
    except MemoryError:
      fail(OUT_OF_MEMORY, 1)
    except OSError as e:  # the file system said no: a path, a permission, a full disk
      fail(os_error_line(e))
    except RuntimeError as e:  # XLA out of device / host memory
      line = platform_error_line(e)
      if line is None:
        raise
      fail(*line)

  try:
    app.run(guarded, flags_parser=_parse_flags)
  except SystemExit as e:
    exit_now(e.code)


OUT_OF_MEMORY = ("out of memory: the images, batch or model this asks for do not fit in this machine's memory; "
                 "lower --config.data.image_size / batch_size (--size for build_dataset, --input_size for summarize)")


def os_error_line(e: OSError) -> str:
  """An OSError as one line naming the path at fault: `PATH: No space left on device`."""
  where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
  return f"{where}: {e.strerror or e}" if where else f"{e.strerror or e}"


def platform_error_line(e: RuntimeError):
  """(line, status) for XLA running out of memory (a RuntimeError of JAX's), or None: any other
  RuntimeError is a bug and keeps its traceback."""
  text = str(e)
  if "RESOURCE_EXHAUSTED" in text or "Out of memory" in text:
    return OUT_OF_MEMORY, 1
  return None


def _terminate(signum, frame) -> None:
  """SIGTERM's and SIGHUP's handler: raises Terminated (a KeyboardInterrupt) where the main thread
  is, so what Ctrl-C cleans up (partial files, status.json, the checkpoint being written) is
  cleaned up too."""
  del frame
  signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
  raise Terminated(signum, signal.Signals(signum).name)


def _deliver_again(unraisable) -> None:
  """sys.unraisablehook: a Ctrl-C or SIGTERM whose exception was raised inside a finalizer (a
  weakref callback run by the garbage collector) is swallowed there by Python, and the command
  would go on as if nothing had come; the signal is sent again a moment later, when the main
  thread is back in ordinary code."""
  if not isinstance(unraisable.exc_value, KeyboardInterrupt):
    sys.__unraisablehook__(unraisable)
    return
  import threading
  signum = unraisable.exc_value.signum if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
  if signum != signal.SIGINT:
    signal.signal(signum, _terminate)
  threading.Timer(0.01, signal.raise_signal, (signum,)).start()


def exit_now(code) -> None:
  """Ends the process as the interpreter would at exit -- other non-daemon threads joined, the
  atexit handlers run (orbax's, JAX's distributed shutdown), stdout and stderr flushed -- without
  then tearing down every imported module one by one: after a training run that teardown (JAX's
  client, TensorFlow Datasets, scikit-learn, matplotlib) does nothing a finished command needs and
  costs a noticeable share of a short one (benchmarks/exit_teardown.py measures it: when it no longer
  does, end with SystemExit instead). The one private call of cnnzoo, contained here; the suite's
  test_the_cli_exit_does_what_the_interpreter_does_at_exit fails if it stops doing its job.
  `code`: as SystemExit's (None is 0; a string is printed and exits 1)."""
  import atexit
  import threading
  if code is None:
    status = 0
  elif isinstance(code, int):
    status = code
  else:
    print(code, file=sys.stderr)
    status = 1
  for thread in threading.enumerate():
    if thread is not threading.current_thread() and not thread.daemon:
      thread.join()
  atexit._run_exitfuncs()  # noqa: SLF001 -- what the interpreter runs at exit, run now
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach the reader
      pass
  os._exit(status)
