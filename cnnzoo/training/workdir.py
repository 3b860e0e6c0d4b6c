"""The run directory: one run at a time (a lock), and config.json with the history of its changes."""

import contextlib
import errno
import fcntl
import os
import re
import sys
import time

import jax
import numpy as np

from cnnzoo import extensions, paths
from cnnzoo.errors import RunStopped, Terminated, UserError
from cnnzoo.training import components
from cnnzoo.training.checkpoint import finished_epochs

LOCK_NAME = ".lock"
MEAN_IMAGE = "mean_image.npy"  # normalize="pixel_mean": the training split's mean image, for predict


class WorkdirBusyError(UserError):
  """Another process is training in the same workdir."""


def default_workdir(config_spec: str) -> str:
  """The run directory of a command without --workdir: `runs/NAME` for `--config=.../NAME.py`,
  `runs/NAME-ARG` for `NAME.py:ARG` (a `,` in ARG becomes `-`), below the current directory."""
  path, _, arg = config_spec.partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  arg = re.sub(r"[^\w.=-]+", "-", arg).strip("-")
  return os.path.join("runs", f"{name}-{arg}" if arg else name)


@contextlib.contextmanager
def lock(workdir: str):
  """Holds an exclusive lock on `workdir` (process 0 of a run) while the body runs.

  The lock is an flock on `workdir/.lock`: the kernel drops it when its process ends, however it
  ends, so a run killed with -9 never blocks the next one. The file stays (deleting it would let
  two runs lock two different files); it holds the pid of the last run that took it.
  """
  if jax.process_index() != 0:  # the other processes of a multi-host run share process 0's lock
    yield
    return
  created = _missing_parents(workdir)
  if not os.path.exists(os.path.join(workdir, "checkpoints")):
    created.append(os.path.abspath(os.path.join(workdir, "checkpoints")))
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_NAME)
  created += [] if os.path.lexists(path) else [path]
  try:  # O_NOFOLLOW: a .lock that is a symlink would have the run truncate the file it points to
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
  except OSError as e:
    if e.errno != errno.ELOOP:
      raise
    raise UserError(f"{path} is a symbolic link ({os.readlink(path)}), not the run's lock file: remove it "
                    "(a run writes its lock there) and rerun") from None
  refused = False
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
        raise
      holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
      raise WorkdirBusyError(f"{workdir} is in use by another run (pid {holder}); wait for it to end "
                             "or choose another --workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    try:
      yield
    except UserError as e:
      refused = not isinstance(e, RunStopped)
      raise
  finally:
    if refused:  # a refused run leaves the folder as it found it
      for made in reversed(created):
        _remove_if_empty(made)
    os.close(fd)  # releases the lock


def _missing_parents(path: str) -> list[str]:
  """`path` and its parents that do not exist yet, outermost first."""
  missing, path = [], os.path.abspath(path)
  while not os.path.exists(path):
    missing.append(path)
    path = os.path.dirname(path)
  return missing[::-1]


def _remove_if_empty(path: str) -> None:
  try:
    if os.path.isdir(path):
      os.rmdir(path)  # only if empty: never removes what a run wrote
    else:
      os.remove(path)
  except OSError:
    pass


def write_run_files(workdir: str, config_json: str, ds, start_epoch: int) -> None:
  """config.json (`config_json`, the run's Description holds it), dataset.json (what predict needs
  of the data `ds`) and, for normalize=pixel_mean, the mean image; process 0 writes, the other
  processes share the folder."""
  if jax.process_index() != 0:
    return
  write_config(config_json, workdir, start_epoch)
  paths.write_json(os.path.join(workdir, "dataset.json"), {
      "name": ds.name, "class_names": list(ds.class_names), "image_shape": list(ds.image_shape),
      "mean": list(ds.mean) if ds.mean is not None else None,
      "std": list(ds.std) if ds.std is not None else None})
  if ds.mean_image is not None:  # predict subtracts the same image
    with paths.atomic(os.path.join(workdir, MEAN_IMAGE), ".tmp.npy") as tmp:
      np.save(tmp, ds.mean_image)


def write_config(text: str, workdir: str, start_epoch: int) -> None:
  """Writes config.json (`text`: the config as config_json gives it); a resumed run with changed
  values keeps the old file beside it (`config.until_epochN.json`)."""
  path = os.path.join(workdir, "config.json")
  old = None
  if os.path.exists(path):
    with open(path) as f:
      old = f.read()
    if old == text:
      return
  with paths.atomic(path) as tmp:  # the new file first: a full disk leaves config.json as it was
    with open(tmp, "w") as f:
      f.write(text)
    if old is not None:
      keep, n = os.path.join(workdir, f"config.until_epoch{start_epoch}.json"), 1
      while os.path.exists(keep):
        keep, n = os.path.join(workdir, f"config.until_epoch{start_epoch}.{n}.json"), n + 1
      os.link(path, keep)


def config_json(config) -> str:
  """config.json's text of a config."""
  return config.to_json_best_effort(indent=2, sort_keys=True)


def read_config(workdir: str):
  """The resolved config a run wrote (config.json) as a ConfigDict (JSON lists back to tuples)."""
  import json
  import ml_collections
  path = os.path.join(workdir, "config.json")
  if not os.path.isdir(workdir):
    raise UserError(f"--workdir={workdir}: no such directory")
  if not os.path.isfile(path):
    raise UserError(f"{workdir} has no config.json: not a run directory of experiments.main")
  try:
    with open(path) as f:
      raw = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read {path}: {e}") from None
  tuples = lambda x: (tuple(tuples(v) for v in x) if isinstance(x, list) else
                      {k: tuples(v) for k, v in x.items()} if isinstance(x, dict) else x)
  if not isinstance(raw, dict) or "model" not in raw or "data" not in raw:
    raise UserError(f"{path} is not a cnnzoo config (no model / data sections)")
  config = ml_collections.ConfigDict(tuples(raw))
  # the run's own modules (a model, dataset, ... of the user's) before anything asks a registry
  extensions.import_modules(config.get("imports", ()), config.get("import_dirs", ()), where=f"{path}: imports")
  components.prune(config)
  return config


class Status:
  """status.json of a workdir (process 0): what `experiments.runs` reports. A run killed with -9
  leaves "running" with no process holding the lock: the table shows it as interrupted."""

  def __init__(self, workdir: str, command: dict | None):
    self.path, self.command = os.path.join(workdir, "status.json"), dict(command or {})
    try:  # what the run said before this process: a refused resume puts it back
      with open(self.path, "rb") as f:
        self.previous = f.read()
    except OSError:
      self.previous = None

  def restore(self) -> None:
    """Puts back the status.json this process found: a resume refused before its first epoch
    leaves the run as it was."""
    if jax.process_index() != 0 or self.previous is None:
      return
    try:
      with paths.atomic(self.path, ".tmp.json") as tmp, open(tmp, "wb") as f:
        f.write(self.previous)
    except OSError:  # a full disk: the refusal's own message is the one to show
      pass

  def write(self, state: str, message: str = "") -> None:
    if jax.process_index() != 0:
      return
    record = {"state": state, "pid": os.getpid(), "time": time.strftime("%Y-%m-%d %H:%M:%S"), **self.command}
    if message:
      record["message"] = message
    try:
      paths.write_json(self.path, record)
    except OSError:  # a full disk: the run's own error says so; the table reads the rest
      pass


@contextlib.contextmanager
def recorded(workdir: str, command, directory: str, ckpt):
  """status.json around a run: `running`, then `finished`, `diverged` / `stopped` (RunStopped; a full
  disk becomes one), `failed`, or `interrupted` (Ctrl-C, SIGTERM), or as it was when a resume is
  refused; on the way out the checkpoint being written is waited for, and an interrupted run says
  which checkpoint is kept."""
  failed, interrupted, signal_name = True, False, "Ctrl-C"
  status = Status(workdir, command)
  before = finished_epochs(directory)
  try:
    status.write("running")
    yield
    failed = False
    status.write("finished")
  except RunStopped as e:
    status.write("diverged" if "diverged" in str(e) else "stopped", str(e))
    raise
  except UserError as e:
    if status.previous is not None and finished_epochs(directory) == before:
      status.restore()  # a resume refused (another optimizer, model, data...): the run as it was
    else:
      status.write("failed", str(e))
    raise
  except (OSError, ValueError, RuntimeError) as e:
    reason = paths.disk_error(e)
    if reason is None:
      status.write("failed", f"{type(e).__name__}: {e}")
      raise
    done = finished_epochs(directory)
    stop = RunStopped(f"cannot write to {workdir}: {reason}; " + (
        f"the checkpoint of epoch {done[-1]} is intact: free some space and rerun the same command "
        "to resume from it" if done else "no checkpoint was written: free some space and rerun"))
    status.write("stopped", str(stop))
    raise stop from None
  except KeyboardInterrupt as e:
    signal_name = e.signal_name if isinstance(e, Terminated) else "Ctrl-C"
    status.write("interrupted", signal_name)
    interrupted = True
    raise
  finally:
    try:
      ckpt.close()  # waits for a checkpoint being written
    except Exception:  # noqa: BLE001 -- already failing: the first error is the one to report
      if not failed:
        raise
    if interrupted and jax.process_index() == 0:
      done = finished_epochs(directory)
      print(f"stopped by {signal_name}; " + (f"the checkpoint of epoch {done[-1]} is kept: rerun the same command to "
            "resume from it" if done else "no epoch had finished"), file=sys.stderr, flush=True)
