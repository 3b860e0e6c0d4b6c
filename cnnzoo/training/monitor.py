"""The training monitor: history.json, history.png, TensorBoard scalars and the progress bar.

The seed's TrainingMonitor redrew loss / accuracy curves at each epoch end; here each writer is a
small callable run after every epoch with the whole history, so a resumed run (whose history
comes from its checkpoint) redraws seamlessly. Only process 0 writes.
"""

import os
import sys

import jax

from cnnzoo import paths, progress, runtime
from cnnzoo.training import state as state_lib

PLOTTED = (("loss", "val_loss"), ("accuracy", "val_accuracy"))


class HistoryJson:
  """Writes the full history (one dict per epoch) to `workdir/history.json`."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "history.json")

  def __call__(self, history: list[dict]) -> None:
    paths.write_json(self.path, history)


class HistoryPlot:
  """Redraws loss / val_loss and accuracy / val_accuracy against epoch in `workdir/history.png`.

  A redraw costs ~0.5-1 s of CPU. It runs on a background thread, off the training loop's path;
  epochs shorter than `min_seconds` apart are drawn together at the next one due (the first epoch
  and `close()` always draw; `close()` waits for the thread and draws the last epoch itself, and
  raises what a background draw raised, e.g. a full disk). Only that thread uses matplotlib, through
  its object API (no pyplot state).
  """

  def __init__(self, workdir: str, title: str = "", min_seconds: float = 30.0):
    self.path, self.title, self.min_seconds = os.path.join(workdir, "history.png"), title, min_seconds
    self._last, self._pending, self._thread, self._error = None, None, None, None

  def __call__(self, history: list[dict]) -> None:
    import threading
    import time
    self._pending = history
    busy = self._thread is not None and self._thread.is_alive()
    if not busy and (self._last is None or time.monotonic() - self._last >= self.min_seconds):
      self._last = time.monotonic()
      self._thread = threading.Thread(target=self._draw_in_background, args=(self._take(),), daemon=True,
                                      name="history.png")
      self._thread.start()

  def flush(self) -> None:
    """Waits for a background draw to finish."""
    if self._thread is not None:
      self._thread.join()

  def close(self) -> None:
    self.flush()
    if self._pending is not None:
      self._plot(self._take())
    if self._error is not None:
      error, self._error = self._error, None
      raise error

  def _take(self) -> list[dict]:
    history, self._pending = self._pending, None
    return history

  def _draw_in_background(self, history: list[dict]) -> None:
    try:
      self._plot(history)
    except Exception as e:  # noqa: BLE001 -- raised again by close(), on the loop's thread
      self._error = e

  def _plot(self, history: list[dict]) -> None:
    if not history:
      return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for ax, keys in zip(axes, PLOTTED):
      for key in keys:
        if all(key in h for h in history):
          ax.plot(epochs, [h[key] for h in history], label=key, marker="." if len(epochs) < 30 else None)
      for a, b in zip(history, history[1:]):  # stage boundaries of a multi-stage recipe
        if "stage" in a and a["stage"] != b.get("stage"):
          ax.axvline(a["epoch"] + 0.5, color="grey", linestyle="--", linewidth=0.8)
      ax.set_xlabel("epoch" + (" (dashed: stage boundaries)" if "stage" in history[0] else ""))
      ax.set_ylabel(keys[0])
      ax.grid(alpha=0.3)
      ax.legend()
    fig.suptitle(f"{self.title} (epoch {epochs[-1]})")
    fig.tight_layout()
    with paths.atomic(self.path, ".tmp.png") as tmp:  # one draw at a time: close() waits for the thread first
      fig.savefig(tmp, dpi=90)


def _summary_writer_class():
  """tensorboardX's SummaryWriter, imported without PyTorch: where torch is installed tensorboardX
  imports it (2.1 s on 2 cores) only to accept torch tensors; cnnzoo writes Python floats. A None in
  sys.modules makes its `import torch` fail into its own fallback, and is removed right after."""
  blocked = "torch" not in sys.modules
  if blocked:
    sys.modules["torch"] = None
  try:
    from tensorboardX import SummaryWriter  # lazy: only runs that write TensorBoard events pay for it
  finally:
    if blocked:
      del sys.modules["torch"]
  return SummaryWriter


class TensorBoard:
  """Epoch scalars as TensorBoard events in the workdir."""

  def __init__(self, workdir: str):
    self._writer = _summary_writer_class()(workdir)

  def __call__(self, history: list[dict]) -> None:
    record = history[-1]
    for key, value in record.items():
      if key != "epoch" and isinstance(value, (int, float)):
        self._writer.add_scalar(key, value, record["epoch"])
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


def make_writers(workdir: str, cfg, title: str) -> list:
  """The epoch-end writers `cfg` (the run's description.Monitoring) asks for (none on processes
  other than 0)."""
  if jax.process_index() != 0:
    return []
  writers = [HistoryJson(workdir)]
  if cfg.plot:
    writers.append(HistoryPlot(workdir, title, cfg.plot_min_seconds))
  if cfg.tensorboard:
    writers.append(TensorBoard(workdir))
  return writers


class ProgressBar:
  """A per-epoch bar showing running loss, accuracy and img/s (process 0, if enabled): tqdm on a
  terminal, a plain line at most every 30 s otherwise (cnnzoo/progress.py)."""

  def __init__(self, enabled: bool):
    self.enabled = enabled and jax.process_index() == 0
    self._bar = None

  def start(self, epoch: int, num_epochs: int, total: int) -> None:
    if self.enabled:  # a bar on a terminal; in a log file a line every 30 s (the epoch's line follows)
      self._bar = progress.progress(total, f"epoch {epoch}/{num_epochs}", "step", final=False)

  def update(self, steps: int, **postfix) -> None:
    if self._bar is not None:
      self._bar.update(steps)
      self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None


def format_record(record: dict, keys=("loss", "accuracy", "val_loss", "val_accuracy", "lr")) -> str:
  """One line for an epoch: `epoch 3/20  loss 0.41  accuracy 0.88 ... (2.1 s, 5400 img/s)`; `keys`:
  what it shows (the run's Measures.shown())."""
  parts = [f"{k} {record[k]:.4g}" for k in keys if k in record]
  return (f"epoch {record['epoch']}  " + "  ".join(parts)
          + f"  ({record['seconds']:.1f} s, {record['img_per_sec']:.0f} img/s)")


def print_header(run, start_epoch: int) -> None:
  """What a run prints as it starts (process 0): the model, the devices and kernels, the data."""
  s = run.state
  devices = jax.devices()
  runtime.say(f"model {run.model_name}: {state_lib.count_params(s.params):,} trainable params, "
              f"{state_lib.count_params(s.batch_stats):,} non-trainable")
  note = run.kernels.note(why=True) if devices[0].platform == "cpu" else ""
  runtime.say(f"devices: {len(devices)} x {devices[0].device_kind}{note} ({jax.process_count()} process(es)); "
              f"global batch {run.about.batch_size}, {run.train_loader.steps_per_epoch} steps/epoch")
  ds = run.dataset
  crop, val_views, test_views = run.about.crop
  views = (f"; the model sees {crop}x{crop} crops (train random, val {val_views}, test {test_views})"
           if crop else "")
  runtime.say(f"data {ds.name}: {len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test, "
              f"images {ds.image_shape}, {ds.num_classes} classes{views}")
  if start_epoch:
    runtime.say(f"resuming after epoch {start_epoch} of {run.about.num_epochs}")
