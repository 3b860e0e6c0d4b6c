"""ReduceLROnPlateau and EarlyStopping: the same learning rate every epoch and the same stopping
epoch as Keras' own callbacks fed the same metrics, and exact resume with their state."""

import json
import shutil

import numpy as np
import pytest

from conftest import fast_keras, quiet
from cnnzoo.training import callbacks, loop

keras = fast_keras()

SEQUENCES = [
    [1.0, 0.9, 0.95, 0.96, 0.97, 0.89, 0.8999, 0.91, 0.92, 0.93, 0.94, 0.95, 0.7, 0.71, 0.72, 0.73],
    list(np.linspace(1.0, 0.5, 8)) + [0.5] * 10,  # a plateau to the last digit
    [0.5, 0.4, 0.40005, 0.39999, 0.41, 0.3, 0.3, 0.3, 0.2, 0.3, 0.3, 0.3, 0.3],
]


def keras_callback(cls, lr=0.1, **kwargs):
  """(model, callback): Keras' own callback attached to a compiled model, its training begun."""
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
  callback = cls(**kwargs)
  callback.set_model(model)
  callback.on_train_begin()
  return model, callback


@pytest.mark.parametrize("kwargs", [
    dict(factor=0.5, patience=2, cooldown=0, min_lr=0.0, min_delta=1e-4),
    dict(factor=0.2, patience=1, cooldown=2, min_lr=0.005, min_delta=0.0),
    dict(factor=0.5, patience=3, cooldown=1, min_lr=0.0, min_delta=0.02),
])
@pytest.mark.parametrize("sequence", range(len(SEQUENCES)))
def test_plateau_rates_equal_keras(kwargs, sequence):
  values = SEQUENCES[sequence]
  model, theirs = keras_callback(keras.callbacks.ReduceLROnPlateau, monitor="val_loss", **kwargs)
  ours, lr = callbacks.ReduceLROnPlateau("val_loss", **kwargs), 0.1
  expected, got = [], []
  for epoch, v in enumerate(values):
    theirs.on_epoch_end(epoch, {"val_loss": v})
    expected.append(float(np.asarray(model.optimizer.learning_rate)))
    lr = ours.on_epoch_end({"val_loss": v}, lr)
    got.append(lr)
  assert got == expected
  assert len(set(got)) > 1  # the sequence does reduce the rate


def test_plateau_on_accuracy_rises_like_keras_max_mode():
  values = [0.1, 0.3, 0.3, 0.31, 0.31, 0.31, 0.5]
  model, theirs = keras_callback(keras.callbacks.ReduceLROnPlateau, 1.0, monitor="val_accuracy", mode="max",
                                 factor=0.5, patience=1)
  ours, lr = callbacks.ReduceLROnPlateau("val_accuracy", factor=0.5, patience=1), 1.0  # mode auto
  for epoch, v in enumerate(values):
    theirs.on_epoch_end(epoch, {"val_accuracy": v})
    lr = ours.on_epoch_end({"val_accuracy": v}, lr)
    assert lr == float(np.asarray(model.optimizer.learning_rate)), epoch


@pytest.mark.parametrize("kwargs", [dict(patience=0), dict(patience=2), dict(patience=3, min_delta=0.01),
                                    dict(patience=2, start_from_epoch=3), dict(patience=1, baseline=0.85)])
@pytest.mark.parametrize("sequence", range(len(SEQUENCES)))
def test_early_stopping_epoch_equals_keras(kwargs, sequence):
  values = SEQUENCES[sequence]
  model, theirs = keras_callback(keras.callbacks.EarlyStopping, monitor="val_loss", **kwargs)
  ours = callbacks.EarlyStopping("val_loss", **kwargs)
  keras_stop = our_stop = None
  for epoch, v in enumerate(values):
    theirs.on_epoch_end(epoch, {"val_loss": v})
    if model.stop_training and keras_stop is None:
      keras_stop = epoch
    if ours.on_epoch_end(epoch, {"val_loss": v}) and our_stop is None:
      our_stop = epoch
    if keras_stop is not None:
      break
  assert our_stop == keras_stop and ours.best_epoch == theirs.best_epoch


def tiny():
  from configs import lenet_digits
  c = quiet(lenet_digits.get_config())
  c.num_epochs, c.checkpoint.async_save, c.checkpoint.keep = 6, False, 10
  c.schedule.name = "constant"
  c.plateau.use, c.plateau.patience, c.plateau.factor, c.plateau.min_delta = True, 1, 0.5, 1.0
  c.early_stop.use, c.early_stop.patience, c.early_stop.min_delta = True, 2, 1.0
  return c


def test_callbacks_in_training_resume_exactly(tmp_path):
  """min_delta 1.0: no epoch after the first counts as an improvement, so the rate halves after
  epochs 2 and 3 and the run stops after epoch 3 (Keras' rules); a run killed after epoch 2 and
  restarted does the same, bitwise, and a finished run is only tested again."""
  full = loop.train_and_evaluate(tiny(), str(tmp_path))
  history = json.loads((tmp_path / "history.json").read_text())
  assert len(history) == full["epochs"] == 3
  base = history[0]["lr"]
  assert [h["lr"] for h in history] == [base, base, np.float32(base * 0.5)]
  assert history[-1]["callbacks"]["early_stop"]["stopped_epoch"] == 2
  shutil.rmtree(tmp_path / "checkpoints" / "3")
  again = loop.train_and_evaluate(tiny(), str(tmp_path))
  assert again["params_sha256"] == full["params_sha256"]
  assert json.loads((tmp_path / "history.json").read_text())[2]["lr"] == history[2]["lr"]
  once_more = loop.train_and_evaluate(tiny(), str(tmp_path))
  assert once_more["epochs"] == 3 and once_more["params_sha256"] == full["params_sha256"]
