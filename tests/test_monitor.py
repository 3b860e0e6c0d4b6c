"""history.png: drawn for the first epoch, at most once per plot_min_seconds after, and at the end,
on a background thread whose errors close() raises."""

import os

import pytest

from cnnzoo.training import monitor


def record(epoch):
  return {"epoch": epoch, "loss": 1.0 / epoch, "val_loss": 1.1 / epoch, "accuracy": 0.1 * epoch,
          "val_accuracy": 0.09 * epoch}


def test_history_plot_coalesces_redraws_and_draws_the_last_epoch_at_close(tmp_path, monkeypatch):
  drawn = []
  plot = monitor.HistoryPlot(str(tmp_path), "t", min_seconds=3600)
  real = plot._plot
  monkeypatch.setattr(plot, "_plot", lambda history: (drawn.append(len(history)), real(history)))
  history = []
  for epoch in range(1, 6):
    history = history + [record(epoch)]
    plot(history)
  plot.flush()
  assert drawn == [1]  # the first epoch; the next four fall within the hour
  plot.close()
  assert drawn == [1, 5] and os.path.getsize(tmp_path / "history.png") > 10_000
  plot.close()  # nothing pending: no redraw
  assert drawn == [1, 5]
  every = monitor.HistoryPlot(str(tmp_path), "t", min_seconds=0)
  calls = []
  monkeypatch.setattr(every, "_plot", lambda history: calls.append(len(history)))
  for n in range(1, 4):
    every(history[:n])
    every.flush()
  assert calls == [1, 2, 3]


def test_a_failed_background_draw_is_raised_by_close(tmp_path):
  """A draw that fails on the background thread (a full disk, a folder gone) reaches the loop at
  close(), where the run's own error handling reports it."""
  import pytest
  plot = monitor.HistoryPlot(str(tmp_path / "missing"), "t", min_seconds=3600)
  plot([record(1)])
  plot.flush()
  with pytest.raises(OSError):
    plot.close()
  assert not list(tmp_path.iterdir())


TENSORBOARD_WITHOUT_TORCH = """
import importlib.util, os, sys
from cnnzoo.training import monitor
writer = monitor.TensorBoard(sys.argv[1])
writer([{"epoch": 1, "loss": 0.5, "accuracy": 0.75}])
writer.close()
print("torch" in sys.modules, importlib.util.find_spec("torch") is not None,
      any(n.startswith("events.out.tfevents") for n in os.listdir(sys.argv[1])))
"""


def test_tensorboard_events_are_written_without_importing_pytorch(tmp_path):
  """tensorboardX imports torch where it is installed (2.1 s of a 10 s first command); the writer
  keeps it out, and the events are written either way."""
  import subprocess
  import sys
  proc = subprocess.run([sys.executable, "-c", TENSORBOARD_WITHOUT_TORCH, str(tmp_path)], capture_output=True,
                        text=True, timeout=300, check=True)
  imported, installed, written = proc.stdout.split()
  assert imported == "False" and written == "True", proc.stdout
  if installed == "False":
    pytest.skip("PyTorch is not installed here: nothing to keep out (the events were written)")
