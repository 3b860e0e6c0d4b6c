"""Checks on the folders a command will write, made before anything is written, and the atomic
writers every command writes its JSON and text files with."""

import contextlib
import errno
import json
import math
import os
import tempfile

from cnnzoo.errors import UserError


def check_writable(path: str, flag: str) -> None:
  """Refuses an output folder `path` (given as `flag`) that is empty, a file, below a file, or
  that cannot be created and written -- proven by creating it and a file in it (then removing
  what this created), which also catches what a permission test misses: a name longer than the
  file system allows, a read-only or pseudo file system (/proc, /sys), a full inode table."""
  if not path:
    raise UserError(f"{flag} is empty: give a folder")
  target = os.path.abspath(path)
  missing, existing = [], target
  while not os.path.exists(existing):
    parent = os.path.dirname(existing)
    if parent == existing:
      break
    missing.append(existing)
    existing = parent
  if os.path.exists(existing) and not os.path.isdir(existing):
    raise UserError(f"{flag}={path}: {existing} is a file, not a directory; choose another {flag}")
  created = []
  try:
    for attempt in range(3):  # another process (a multi-host run's peer) may create or remove it meanwhile
      for folder in reversed(missing):
        try:
          os.mkdir(folder)
          created.append(folder)
        except FileExistsError:
          pass
      try:
        fd, probe = tempfile.mkstemp(prefix=".cnnzoo-write-test-", dir=target)
        break
      except FileNotFoundError:
        if attempt == 2:
          raise
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    where = e.filename if isinstance(e.filename, str) else target
    raise UserError(f"{flag}={path}: cannot write there ({e.strerror or e}: {where}); choose another {flag}") from None
  finally:
    for folder in reversed(created):
      with contextlib.suppress(OSError):
        os.rmdir(folder)


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


def finite_json(obj):
  """`obj` with every NaN / Inf float replaced by None (JSON has no NaN; `null` reads anywhere)."""
  if isinstance(obj, float):
    return obj if math.isfinite(obj) else None
  if isinstance(obj, dict):
    return {k: finite_json(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [finite_json(v) for v in obj]
  return obj


def write_json(path: str, obj) -> None:
  """Writes strict JSON (non-finite floats as null) to `path` via a temporary file and a rename:
  no half-written file, and a failed write (a full disk) leaves the previous file as it was."""
  with atomic(path) as tmp, open(tmp, "w") as f:
    json.dump(finite_json(obj), f, indent=2, allow_nan=False)


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` via a temporary file and a rename (as write_json)."""
  with atomic(path) as tmp, open(tmp, "w") as f:
    f.write(text)


_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS)


def disk_error(e: BaseException) -> str | None:
  """The OS complaint behind a failed write (full disk, quota, file size limit...), or None."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in _DISK_ERRNOS:
      return str(e.strerror or os.strerror(e.errno))
    for text in ("No space left on device", "File too large", "Disk quota exceeded", "Read-only file system"):
      if text in str(e):
        return text
    e = e.__cause__ or e.__context__
  return None
