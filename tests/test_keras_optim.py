"""optim.semantics=keras: Keras 3's own optimizers fed the same weights and gradients step after
step give the same weights as cnnzoo's, to float32 rounding; optax's forms do not (the point of
the switch)."""

import jax
import numpy as np
import optax
import pytest

from conftest import fast_keras
from cnnzoo.training import components, keras_optim, optim, schedules

keras = fast_keras()
STEPS = 6


def gradients(seed=0):
  """Gradients of mixed scales (1e-5 .. 1): epsilon and the learning rate's place both matter."""
  rng = np.random.default_rng(seed)
  scales = np.array([1e-5, 1e-3, 1e-1, 1.0], np.float32)[:, None]
  return [(rng.normal(size=(4, 6)) * scales).astype(np.float32) for _ in range(STEPS)]


def keras_weights(optimizer, w0, grads):
  """Keras' optimizer applied to one variable, one step per gradient (as model.fit would)."""
  var = keras.Variable(w0)
  out = []
  for g in grads:
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    out.append(np.asarray(var.value))
  return out


def ours(tx, w0, grads):
  state, w, out = tx.init(w0), jax.numpy.asarray(w0), []
  step = jax.jit(lambda g, s, w: (lambda u, s: (optax.apply_updates(w, u), s))(*tx.update(g, s, w)))
  for g in grads:
    w, state = step(g, state, w)
    out.append(np.asarray(w))
  return out


def decay(lr, rate):
  """Keras 2's SGD(decay=rate) in Keras 3: InverseTimeDecay(lr, decay_steps=1, decay_rate=rate)."""
  return keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate=rate)


CASES = {
    "sgd_nesterov_time_decay": (lambda: keras.optimizers.SGD(decay(0.05, 0.3), momentum=0.9, nesterov=True),
                                dict(name="sgd", lr=0.05, momentum=0.9, nesterov=True), ("keras_time", 0.3)),
    "sgd_momentum_time_decay": (lambda: keras.optimizers.SGD(decay(0.05, 0.3), momentum=0.9),
                                dict(name="sgd", lr=0.05, momentum=0.9, nesterov=False), ("keras_time", 0.3)),
    "adam": (lambda: keras.optimizers.Adam(1e-3), dict(name="adam", lr=1e-3), ("constant", 0.0)),
    "rmsprop": (lambda: keras.optimizers.RMSprop(1e-3), dict(name="rmsprop", lr=1e-3), ("constant", 0.0)),
    "rmsprop_momentum": (lambda: keras.optimizers.RMSprop(1e-3, momentum=0.9), dict(name="rmsprop", lr=1e-3, momentum=0.9),
                         ("constant", 0.0)),
}


def config(semantics, fields, schedule):
  """A whole config with these optimizer `fields` (its other settings at their defaults) and its
  schedule: Keras' time decay (name, decay) or the constant rate."""
  from configs import base
  c = base.get_config()
  c.optim.update(dict(fields, semantics=semantics))
  c.schedule.name = schedule[0]
  if schedule[0] == "keras_time":
    c.schedule.decay = schedule[1]
  components.resolve(c)
  lr = c.optim.lr
  return c, schedules.build(c, lr, 10, 1) if schedule[0] == "keras_time" else (lambda count: lr)


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_semantics_follow_keras_optimizers_step_by_step(case):
  make, fields, schedule = CASES[case]
  w0 = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
  grads = gradients()
  expected = keras_weights(make(), w0, grads)
  cfg, sched = config("keras", fields, schedule)
  got = ours(optim.build_optimizer(cfg, sched), w0, grads)
  cfg_optax, _ = config("optax", fields, schedule)
  other = ours(optim.build_optimizer(cfg_optax, sched), w0, grads)
  for step, (e, g, o) in enumerate(zip(expected, got, other), start=1):
    moved = np.abs(e - w0)
    # float32 rounding of a few operations on the step (XLA may fuse a multiply-add where Keras'
    # eager ops round twice): 8 ulps of the weight, plus 1e-5 of how far the weights have moved
    np.testing.assert_allclose(g, e, rtol=8 * np.finfo(np.float32).eps, atol=1e-5 * moved.max(),
                               err_msg=f"{case}, step {step}")
  # optax's arithmetic drifts away from Keras' by far more than that (except where the rules agree)
  gap = max(np.max(np.abs(o - e) / (np.abs(e - w0) + 1e-12)) for o, e in zip(other, expected))
  if case in ("sgd_nesterov_time_decay", "sgd_momentum_time_decay", "adam"):
    assert gap > 1e-3, (case, gap)


def test_keras_semantics_keep_no_state_for_what_they_do_not_use():
  params = {"w": np.zeros((3, 2), np.float32)}
  sgd_state = keras_optim.sgd(lambda c: 0.1).init(params)
  assert sgd_state.first is None and sgd_state.second is None
  assert keras_optim.adam(lambda c: 0.1).init(params).second["w"].shape == (3, 2)


@pytest.mark.parametrize("name", ["glorot_uniform", "he_normal"])
def test_keras_kernel_initializers(name):
  """Kernels drawn as Keras draws them (fans from HWIO / (in, out)); the rest as flax has it."""
  from cnnzoo.training import state as state_lib
  params = {"conv": {"kernel": np.zeros((3, 3, 64, 128), np.float32), "bias": np.ones((128,), np.float32)},
            "dense": {"kernel": np.zeros((512, 10), np.float32)}}
  drawn = state_lib.with_kernel_init(params, jax.random.key(0), name)
  assert np.array_equal(drawn["conv"]["bias"], params["conv"]["bias"])
  for w, (fan_in, fan_out) in ((drawn["conv"]["kernel"], (9 * 64, 9 * 128)), (drawn["dense"]["kernel"], (512, 10))):
    w = np.asarray(w)
    if name == "glorot_uniform":
      limit = np.sqrt(6 / (fan_in + fan_out))  # keras.initializers.GlorotUniform
      assert np.abs(w).max() <= limit and w.std() == pytest.approx(limit / np.sqrt(3), rel=0.05)
    else:  # keras.initializers.HeNormal: truncated at 2 stddev, stddev sqrt(2 / fan_in) after truncation
      std = np.sqrt(2 / fan_in)
      assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-6 and w.std() == pytest.approx(std, rel=0.05)
  assert not np.array_equal(drawn["conv"]["kernel"][..., 0], drawn["conv"]["kernel"][..., 1])


@pytest.mark.parametrize("case", ["sgd_nesterov", "sgd_momentum", "rmsprop_momentum", "adam"])
def test_a_plateau_cut_follows_keras_setting_the_learning_rate(case):
  """ReduceLROnPlateau sets Keras' optimizer.learning_rate; with the rate inside the velocity
  (momentum SGD, RMSprop) that is not a scale on the update. After three steps the rate drops to a
  tenth (callbacks.with_lr_scale): the next three match Keras'; a trailing scale (optax's form)
  would not for the momentum optimizers."""
  from cnnzoo.training import callbacks
  makers = {"sgd_nesterov": (lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                             dict(name="sgd", lr=0.05, momentum=0.9, nesterov=True)),
            "sgd_momentum": (lambda: keras.optimizers.SGD(0.05, momentum=0.9), dict(name="sgd", lr=0.05, momentum=0.9)),
            "rmsprop_momentum": (lambda: keras.optimizers.RMSprop(1e-3, momentum=0.9),
                                 dict(name="rmsprop", lr=1e-3, momentum=0.9)),
            "adam": (lambda: keras.optimizers.Adam(1e-3), dict(name="adam", lr=1e-3))}
  make, fields = makers[case]
  w0 = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
  grads = gradients()
  optimizer, var, expected = make(), keras.Variable(w0), []
  for i, g in enumerate(grads):
    if i == 3:
      optimizer.learning_rate = float(optimizer.learning_rate) * 0.1  # what ReduceLROnPlateau does
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    expected.append(np.asarray(var.value))
  cfg, sched = config("keras", fields, ("constant", 0.0))
  tx = optim.build_optimizer(cfg, sched, plateau=True)
  state, w, got = tx.init(w0), jax.numpy.asarray(w0), []
  step = jax.jit(lambda g, s, w: (lambda u, s: (optax.apply_updates(w, u), s))(*tx.update(g, s, w)))
  for i, g in enumerate(grads):
    if i == 3:
      assert callbacks.lr_scale(state) == 1.0
      state = callbacks.with_lr_scale(state, 0.1)
      assert callbacks.lr_scale(state) == pytest.approx(0.1)
    w, state = step(g, state, w)
    got.append(np.asarray(w))
  for i, (e, g) in enumerate(zip(expected, got), start=1):
    np.testing.assert_allclose(g, e, rtol=8 * np.finfo(np.float32).eps, atol=1e-5 * np.abs(e - w0).max(),
                               err_msg=f"{case}, step {i}")
