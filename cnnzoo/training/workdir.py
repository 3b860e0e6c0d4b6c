"""The run directory: one run at a time (a lock), and config.json with the history of its changes."""

import contextlib
import errno
import fcntl
import os

import jax

from cnnzoo.errors import UserError

LOCK_NAME = ".lock"


class WorkdirBusyError(UserError):
  """Another process is training in the same workdir."""


def check_writable(workdir: str) -> None:
  """Refuses a workdir that is a file, or that sits below one, before anything is written."""
  path = os.path.abspath(workdir)
  while path and not os.path.exists(path):
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"--workdir={workdir}: {path} is a file, not a directory; choose another --workdir")
  if os.path.isdir(path) and not os.access(path, os.W_OK | os.X_OK):
    raise UserError(f"--workdir={workdir}: {path} is not writable; choose another --workdir")


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
  os.makedirs(workdir, exist_ok=True)
  fd = os.open(os.path.join(workdir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
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
    yield
  finally:
    os.close(fd)  # releases the lock


def write_config(config, workdir: str, start_epoch: int) -> None:
  """Writes config.json; a resumed run with changed values keeps the old file beside it
  (`config.until_epochN.json`)."""
  path = os.path.join(workdir, "config.json")
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  old = None
  if os.path.exists(path):
    with open(path) as f:
      old = f.read()
    if old == text:
      return
  tmp = path + ".tmp"
  try:  # the new file first: a full disk leaves config.json as it was
    with open(tmp, "w") as f:
      f.write(text)
    if old is not None:
      keep, n = os.path.join(workdir, f"config.until_epoch{start_epoch}.json"), 1
      while os.path.exists(keep):
        keep, n = os.path.join(workdir, f"config.until_epoch{start_epoch}.{n}.json"), n + 1
      os.link(path, keep)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
