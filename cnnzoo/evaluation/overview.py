"""Many runs at a glance: one row per run directory (`python -m experiments.runs`), and their
curves overlaid in one figure (`--plot`).

A run's state comes from its files: status.json (written by train_and_evaluate: running,
finished, diverged, stopped), whether a process still holds its lock, and its newest checkpoint:
- running: a process holds the workdir's lock;
- finished: results.json is there and every planned epoch is done;
- diverged: the loss became NaN / Inf (rerun with a lower rate from the last good checkpoint);
- damaged checkpoint: the newest checkpoint's metadata does not read;
- interrupted: anything else with a checkpoint (killed, Ctrl-C, a full disk): the same command resumes.
A folder that is not a cnnzoo run (or one from a cnnzoo without these files) is listed as unreadable.
"""

import dataclasses
import errno
import fcntl
import json
import math
import os

from cnnzoo import numbers

STATUS_NAME = "status.json"
RUN_FILES = ("config.json", "history.json", STATUS_NAME)


@dataclasses.dataclass
class RunRow:
  path: str
  config: str = ""
  model: str = ""
  dataset: str = ""
  epochs: int = 0
  planned: int = 0
  best_val_accuracy: float | None = None
  best_epoch: int | None = None
  test_accuracy: float | None = None
  seconds: float = 0.0
  state: str = ""
  detail: str = ""  # the resume command, the divergence, what does not read
  history: list = dataclasses.field(default_factory=list, repr=False)


def find_runs(root: str) -> list[str]:
  """Run directories below `root` (itself included), sorted; an ensemble's members count as runs.
  A top-level folder with no run inside is returned too (the table lists it as unreadable)."""
  found = []
  for directory, subdirs, files in os.walk(root):
    subdirs[:] = sorted(d for d in subdirs if d != "checkpoints" and not d.startswith("."))
    if any(f in files for f in RUN_FILES) or "checkpoints" in os.listdir(directory):
      found.append(directory)
  is_run = root in found  # a run directory given itself: its checkpoints/, eval_test/ ... are not runs
  top = [os.path.join(root, d) for d in sorted(os.listdir(root))] if os.path.isdir(root) and not is_run else []
  for directory in top:
    if os.path.isfile(os.path.join(directory, "evaluation.json")):  # experiments.evaluate's output
      continue
    if os.path.isdir(directory) and not any(f == directory or f.startswith(directory + os.sep) for f in found):
      found.append(directory)
  return sorted(found)


def _read_json(path: str, kind=dict):
  """A run's JSON file, refused (ValueError) unless it holds a `kind` (a hand-edited file)."""
  with open(path) as f:
    value = json.load(f)
  if not isinstance(value, kind):
    raise ValueError(f"{os.path.basename(path)} holds a JSON {type(value).__name__}, not "
                     f"{'an object' if kind is dict else 'a list'}")
  return value


def _lock_held(workdir: str) -> bool:
  path = os.path.join(workdir, ".lock")
  if not os.path.exists(path):
    return False
  fd = os.open(path, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    return False
  except OSError as e:
    return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
  finally:
    os.close(fd)  # releases the shared lock at once


def _newest_checkpoint_problem(workdir: str) -> tuple[int | None, str | None]:
  """(newest epoch on disk, why its checkpoint does not read or None): the files orbax needs to
  open it and its metadata, checked without restoring the arrays."""
  directory = os.path.join(workdir, "checkpoints")
  epochs = sorted(int(n) for n in os.listdir(directory) if numbers.is_count(n)) if os.path.isdir(directory) else []
  if not epochs:
    return None, None
  newest = os.path.join(directory, str(epochs[-1]))
  for part in ("meta/metadata", "_CHECKPOINT_METADATA"):
    try:
      value = _read_json(os.path.join(newest, part))
      if not isinstance(value, dict):
        return epochs[-1], f"{part} is not a JSON object"
    except (OSError, ValueError) as e:
      return epochs[-1], f"{part}: {e.strerror if isinstance(e, OSError) else 'not JSON'}"
  if not os.path.exists(os.path.join(newest, "state", "manifest.ocdbt")):
    return epochs[-1], "state/manifest.ocdbt is missing"
  return epochs[-1], None


def describe(workdir: str, root: str = "") -> RunRow:
  """The row of one run directory; never raises for what it finds on disk."""
  row = RunRow(os.path.relpath(workdir, root) if root else workdir)
  try:
    return _describe(workdir, row)
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    row = RunRow(row.path)  # nothing half-read
    row.state, row.detail = "unreadable", f"{type(e).__name__}: {e}"
    return row


def _describe(workdir: str, row: RunRow) -> RunRow:
  files = set(os.listdir(workdir))
  if not files & {*RUN_FILES, "checkpoints"}:
    row.state, row.detail = "unreadable", "not a cnnzoo run directory (no config.json, history.json or checkpoints)"
    return row
  if "config.json" not in files:
    row.state, row.detail = "unreadable", "no config.json (a run from an older cnnzoo, or not cnnzoo's)"
    return row
  config = _read_json(os.path.join(workdir, "config.json"))
  row.model, row.planned = config["model"]["name"], int(config["num_epochs"])
  row.dataset = config["data"]["name"]
  if "dataset.json" in files:
    row.dataset = _read_json(os.path.join(workdir, "dataset.json")).get("name", row.dataset)
  status = _read_json(os.path.join(workdir, STATUS_NAME)) if STATUS_NAME in files else {}
  if not isinstance(status, dict) or not isinstance(status.get("config", ""), str):
    raise ValueError(f"{STATUS_NAME} is not cnnzoo's (its config is not a config file's name)")
  row.config = status.get("config", "") or f"({row.model})"
  history = _read_json(os.path.join(workdir, "history.json"), list) if "history.json" in files else []
  if not all(isinstance(h, dict) and isinstance(h.get("epoch"), int) for h in history):
    raise ValueError("history.json is not a list of epochs ({\"epoch\": N, ...} each)")
  row.history, row.epochs = history, len(history)
  row.seconds = sum(h.get("seconds") or 0.0 for h in history)
  scored = [h for h in history if isinstance(h.get("val_accuracy"), (int, float)) and math.isfinite(h["val_accuracy"])]
  if scored:
    best = max(scored, key=lambda h: h["val_accuracy"])
    row.best_val_accuracy, row.best_epoch = best["val_accuracy"], best["epoch"]
  results = _read_json(os.path.join(workdir, "results.json")) if "results.json" in files else None
  if results is not None:
    row.test_accuracy = results.get("test_accuracy")
    if not isinstance(row.test_accuracy, (int, float, type(None))):
      raise ValueError(f"results.json's test_accuracy is {row.test_accuracy!r}, not a number")
  newest, problem = _newest_checkpoint_problem(workdir)
  resume = status.get("command", "")
  if _lock_held(workdir):
    row.state, row.detail = "running", f"pid {status.get('pid', '?')}"
  elif status.get("state") == "diverged":
    row.state, row.detail = "diverged", status.get("message", "")
  elif problem is not None:
    row.state, row.detail = "damaged checkpoint", f"epoch {newest}: {problem}"
  elif results is not None and status.get("state", "finished") == "finished" and row.epochs >= row.planned:
    row.state = "finished"
  elif results is not None and status.get("state") == "finished":
    row.state, row.detail = "finished", "stopped early"
  else:
    row.state = "interrupted"
    row.detail = (f"resume: {resume}" if resume else "resume: rerun its command") + (
        f" (newest checkpoint: epoch {newest})" if newest else " (no checkpoint yet)")
  return row


def _fmt(value, spec):
  return "-" if value is None else format(value, spec)


def format_table(rows: list[RunRow]) -> str:
  """The runs as an aligned text table, a detail line under the rows that need one."""
  heads = ["run", "config", "model", "dataset", "epochs", "best val_acc", "test_acc", "wall", "state"]
  lines = [[r.path, r.config, r.model, r.dataset, f"{r.epochs}/{r.planned}" if r.planned else "-",
            f"{_fmt(r.best_val_accuracy, '.4f')} @{r.best_epoch}" if r.best_epoch else "-",
            _fmt(r.test_accuracy, ".4f"), _duration(r.seconds) if r.seconds else "-", r.state] for r in rows]
  widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(heads)]
  out = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip()]
  for row, line in zip(rows, lines):
    out.append("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    if row.detail and row.state != "finished":
      out.append(f"    {row.detail}")
  return "\n".join(out)


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else (
      f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")


def plot(rows: list[RunRow], path: str) -> None:
  """Loss, accuracy and learning rate of `rows` per epoch, one colour per run, in one PNG."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
  for i, row in enumerate(r for r in rows if r.history):
    color = f"C{i % 10}"
    epochs = [h["epoch"] for h in row.history]
    get = lambda key: [h.get(key) if isinstance(h.get(key), (int, float)) else float("nan") for h in row.history]
    axes[0].plot(epochs, get("loss"), color=color, label=f"{row.path} train")
    axes[0].plot(epochs, get("val_loss"), color=color, linestyle="--", label=f"{row.path} val")
    axes[1].plot(epochs, get("accuracy"), color=color, label=f"{row.path} train")
    axes[1].plot(epochs, get("val_accuracy"), color=color, linestyle="--", label=f"{row.path} val")
    axes[2].plot(epochs, get("lr"), color=color, label=row.path)
  for ax, title in zip(axes, ("loss", "accuracy", "learning rate")):
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
  axes[2].set_yscale("log")
  axes[2].legend(fontsize=8)
  axes[1].legend(fontsize=7, ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
