"""Checks on the folders a command will write, made before anything is written."""

import contextlib
import os

from cnnzoo.errors import UserError


def check_writable(path: str, flag: str) -> None:
  """Refuses an output folder `path` (given as `flag`) that is empty, a file, below a file, or in
  a folder this user cannot write."""
  if not path:
    raise UserError(f"{flag} is empty: give a folder")
  existing = os.path.abspath(path)
  while not os.path.exists(existing):
    parent = os.path.dirname(existing)
    if parent == existing:
      break
    existing = parent
  if os.path.exists(existing) and not os.path.isdir(existing):
    raise UserError(f"{flag}={path}: {existing} is a file, not a directory; choose another {flag}")
  if os.path.isdir(existing) and not os.access(existing, os.W_OK | os.X_OK):
    raise UserError(f"{flag}={path}: {existing} is not writable; choose another {flag}")


@contextlib.contextmanager
def atomic(path: str, suffix: str = ".tmp"):
  """Yields a temporary path beside `path` to write; renamed to `path` when the block succeeds,
  removed when it fails: `path` is never half-written, and a failed write (a full disk) leaves the
  previous file as it was."""
  tmp = path + suffix
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
