"""Progress that reads well with or without a terminal.

On a terminal: a tqdm bar. Otherwise (nohup, CI, SLURM, a pipe): a plain line at most every
`LOG_SECONDS` and one at the end, with no carriage returns or escape codes, so a log file holds a
readable record instead of thousands of redraws.
"""

import sys
import time

LOG_SECONDS = 30.0


def is_terminal(stream=None) -> bool:
  stream = stream or sys.stdout
  return bool(getattr(stream, "isatty", lambda: False)())


class LogProgress:
  """tqdm's update / set_postfix / close for a log file: `desc: n/total unit (p%)  k v ...`."""

  def __init__(self, total: int, desc: str, unit: str, stream=None, every: float = LOG_SECONDS, final=True):
    self.total, self.desc, self.unit, self.every, self.final = total, desc, unit, every, final
    self.stream = stream or sys.stdout
    self.n, self.postfix, self._t0 = 0, {}, time.monotonic()
    self._last = self._t0

  def update(self, n: int = 1) -> None:
    self.n += n
    now = time.monotonic()
    if now - self._last >= self.every and self.n < self.total:
      self._last = now
      self._write()

  def set_postfix(self, postfix: dict, refresh: bool = False) -> None:
    del refresh
    self.postfix = dict(postfix)

  def _write(self) -> None:
    pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
    extra = "".join(f"  {k} {v}" for k, v in self.postfix.items())
    print(f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}{extra}  [{time.monotonic() - self._t0:.0f} s]",
          file=self.stream, flush=True)

  def close(self) -> None:
    if self.final and self.n:
      self._write()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def progress(total: int, desc: str, unit: str, *, leave: bool = False, final: bool = True, stream=None):
  """A tqdm bar on a terminal, a LogProgress otherwise (`final`: its closing line)."""
  stream = stream or sys.stdout
  if is_terminal(stream):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=stream, dynamic_ncols=True)
  return LogProgress(total, desc, unit, stream, final=final)
