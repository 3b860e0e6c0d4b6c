"""Exact learning-rate values of every schedule at chosen steps (epoch semantics, 10 steps/epoch)."""

import numpy as np
import pytest

from cnnzoo.errors import ConfigError
from cnnzoo.training import components, schedules

SPE = 10  # steps per epoch


def schedule(num_epochs=10, lr=0.1, **fields):
  from configs import base
  c = base.get_config()
  c.schedule.update(fields)
  components.resolve(c)
  return schedules.build(c, lr, num_epochs, SPE)


def at(fn, steps):
  return np.array([float(fn(s)) for s in steps])


def test_constant():
  np.testing.assert_allclose(at(schedule(name="constant"), [0, 5, 999]), [0.1, 0.1, 0.1], rtol=1e-7)


def test_poly_power1_is_linear_in_epochs_constant_within_an_epoch():
  # The seed's poly_decay: lr0 * (1 - epoch / max_epochs) ** power, epoch 0-based.
  fn = schedule(num_epochs=75, name="poly", power=1.0)
  np.testing.assert_allclose(at(fn, [0, 9, 10, 19, 740, 749, 750, 10_000]),
                             [0.1, 0.1, 0.1 * 74 / 75, 0.1 * 74 / 75, 0.1 * 1 / 75, 0.1 * 1 / 75, 0, 0],
                             rtol=1e-6, atol=1e-9)


def test_poly_power2_and_per_step():
  fn = schedule(num_epochs=10, name="poly", power=2.0, per_step=True)
  np.testing.assert_allclose(at(fn, [0, 5, 50]), [0.1, 0.1 * (1 - 0.05) ** 2, 0.1 * 0.25], rtol=1e-6)


def test_linear_alias_and_end_lr():
  fn = schedule(num_epochs=10, name="linear", end_lr=0.01)
  np.testing.assert_allclose(at(fn, [0, 50, 100]), [0.1, 0.055, 0.01], rtol=1e-6)


def test_step_decay():
  fn = schedule(name="step", step_every=5, step_factor=0.25)
  np.testing.assert_allclose(at(fn, [0, 49, 50, 99, 100]), [0.1, 0.1, 0.025, 0.025, 0.00625], rtol=1e-6)


def test_step_decay_with_the_books_offset():
  fn = schedule(name="step", step_every=5, step_factor=0.25, step_offset=1)
  np.testing.assert_allclose(at(fn, [0, 39, 40, 89, 90]), [0.1, 0.1, 0.025, 0.025, 0.00625], rtol=1e-6)


def _book_step_decay(epoch):  # the book's step_decay, as seed 000's MiniVGGNet used it
  return 0.01 * 0.25 ** np.floor((1 + epoch) / 5)


def _keras_resnet_lr_schedule(epoch):  # keras.io's cifar10 ResNet example, as seed 004 used it
  lr = 1e-3
  if epoch > 180:
    lr *= 0.5e-3
  elif epoch > 160:
    lr *= 1e-3
  elif epoch > 120:
    lr *= 1e-2
  elif epoch > 80:
    lr *= 1e-1
  return lr


def _book_poly_decay(base, max_epochs, power):  # the book's poly_decay (seed 000's DecayFunctions)
  return lambda epoch: base * (1 - epoch / float(max_epochs)) ** power


@pytest.mark.parametrize("spec, keras_fn", [
    ("minivggnet_cifar10.py:step", _book_step_decay),
    ("resnet20v1_cifar10.py", _keras_resnet_lr_schedule),
    ("minigooglenet_cifar10.py", _book_poly_decay(5e-3, 70, 2)),
    ("resnet_cifar10.py", _book_poly_decay(1e-1, 100, 1)),
    ("resnet_tiny.py", _book_poly_decay(1e-1, 75, 1)),
])
def test_each_configs_schedule_matches_keras_learning_rate_scheduler_epoch_by_epoch(spec, keras_fn):
  """Keras' own LearningRateScheduler, fed the journal's function, sets the rate at each epoch's
  start (0-based epochs); the config's schedule gives the same rate at the same epoch's steps."""
  import importlib
  from conftest import fast_keras
  keras = fast_keras()
  name, _, arg = spec.partition(":")
  config = importlib.import_module(f"configs.{name[:-3]}").get_config(arg or None)
  components.resolve(config)
  fn = schedules.build(config, config.optim.lr, config.num_epochs, SPE)
  model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
  model.compile(optimizer=keras.optimizers.SGD(config.optim.lr), loss="mse")
  callback = keras.callbacks.LearningRateScheduler(keras_fn)
  callback.set_model(model)
  keras_rates, ours = [], []
  for epoch in range(config.num_epochs):
    callback.on_epoch_begin(epoch)
    keras_rates.append(float(model.optimizer.learning_rate))
    ours.append([float(fn(epoch * SPE)), float(fn(epoch * SPE + SPE - 1))])  # first and last step
  ours = np.array(ours)
  # float32 arithmetic: (1 - epoch / N) loses up to a float32 epsilon of lr0 near the end of a decay
  eps = float(np.finfo(np.float32).eps)
  np.testing.assert_allclose(ours[:, 0], keras_rates, rtol=2 * eps, atol=4 * eps * config.optim.lr)
  np.testing.assert_array_equal(ours[:, 0], ours[:, 1])  # constant within the epoch, as Keras'


def test_piecewise_like_keras_resnet_example():
  # keras.io cifar10_resnet lr_schedule: 1e-3, x0.1 after 80, x0.01 after 120, x1e-3 after 160, x0.5e-3 after 180.
  fn = schedule(num_epochs=200, lr=1e-3, name="piecewise", boundaries=(80, 120, 160, 180),
                scales=(0.1, 0.1, 0.1, 0.5))
  np.testing.assert_allclose(at(fn, [790, 800, 1200, 1600, 1800]), [1e-3, 1e-4, 1e-5, 1e-6, 5e-7], rtol=1e-5)


def test_keras_time_based_decay_per_iteration():
  # Keras 2 SGD(decay=d): lr0 / (1 + d * iterations); the seed used d = 0.01 / 40.
  fn = schedule(lr=0.01, name="keras_time", decay=0.01 / 40)
  np.testing.assert_allclose(at(fn, [0, 1, 782, 31_280]),
                             [0.01, 0.01 / (1 + 0.00025), 0.01 / (1 + 0.00025 * 782), 0.01 / (1 + 0.00025 * 31_280)],
                             rtol=1e-6)


def test_cosine():
  fn = schedule(num_epochs=10, name="cosine")
  np.testing.assert_allclose(at(fn, [0, 50, 100]), [0.1, 0.05, 0.0], rtol=1e-6, atol=1e-9)


def test_warmup_then_linear_decay():
  fn = schedule(num_epochs=12, name="linear", warmup_epochs=2, warmup_init_lr=0.0)
  # epochs 0, 1: ramp 0 -> 0.1 over 2 epochs; then linear from 0.1 at epoch 2 to 0 at epoch 12.
  np.testing.assert_allclose(at(fn, [0, 10, 20, 70, 120]), [0.0, 0.05, 0.1, 0.05, 0.0], rtol=1e-6, atol=1e-9)


def test_unknown_schedule_is_a_config_error():
  with pytest.raises(ConfigError, match=r"^--config.schedule.name='expo': no such schedule; did you mean step or poly\? "
                                        r"registered: step, poly, constant, cosine, keras_time, linear, piecewise$"):
    schedule(name="expo")


def test_piecewise_lengths_must_match():
  with pytest.raises(ConfigError, match="same length"):
    schedule(name="piecewise", boundaries=(1, 2), scales=(0.1,))


def test_decay_over_no_epochs_is_a_config_error():
  with pytest.raises(ConfigError, match="at least 1"):
    schedule(num_epochs=3, name="cosine", warmup_epochs=3)
