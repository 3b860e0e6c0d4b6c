"""The journal's Keras callbacks, with Keras 3's rules and their state in every checkpoint.

ReduceLROnPlateau (monitor, factor, patience, min_delta, cooldown, min_lr) and EarlyStopping
(monitor, patience, min_delta, baseline, restore best weights, start_from_epoch) follow
keras/src/callbacks/{reduce_lr_on_plateau,early_stopping}.py line by line, including that Keras
compares `current - min_delta` with the best value as float32 tensors and keeps the learning rate in
a float32 variable. Their counters (best, wait, cooldown) are saved with each checkpoint, so a
resumed run reduces the rate and stops at the same epochs as an uninterrupted one.

The reduced rate reaches the optimizer as a factor on the schedule's rate: `optim.build_optimizer`
carries `step_size` in an `optax.inject_hyperparams` state (no recompilation, checkpointed with it):
a trailing scale for optax's optimizers, the learning rate's own factor for Keras' forms.
"""

import numpy as np

from cnnzoo.errors import ConfigError

MODES = ("auto", "min", "max")


def _direction(monitor: str, mode: str) -> str:
  if mode == "auto":  # Keras: loss-like names fall, accuracy-like ones rise
    return "max" if "acc" in monitor else "min"
  return mode


def _improved(current: float, best, delta: float, direction: str) -> bool:
  """Keras' `monitor_op(current - min_delta, best)`, min_delta negated for `min`, in float32."""
  if best is None:
    return True
  if direction == "min":
    return bool(np.less(np.float32(current - (-abs(delta))), np.float32(best)))
  return bool(np.greater(np.float32(current - abs(delta)), np.float32(best)))


class ReduceLROnPlateau:
  """Multiply the rate by `factor` after `patience` epochs without improvement of `monitor`."""

  def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4, cooldown=0,
               min_lr=0.0):
    if not 0 < factor < 1:
      raise ConfigError(f"--config.plateau.factor={factor}: must be > 0 and < 1")
    self.monitor, self.factor, self.patience, self.min_delta = monitor, factor, patience, min_delta
    self.cooldown, self.min_lr, self.direction = cooldown, min_lr, _direction(monitor, mode)
    self.best, self.wait, self.cooldown_counter = None, 0, 0

  def state(self) -> dict:
    return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

  def load(self, state: dict) -> None:
    self.best, self.wait, self.cooldown_counter = state["best"], state["wait"], state["cooldown_counter"]

  def on_epoch_end(self, logs: dict, lr: float) -> float:
    """The learning rate after this epoch (`lr` as float32, reduced or not)."""
    lr = float(np.float32(lr))
    current = logs[self.monitor]
    if self.cooldown_counter > 0:
      self.cooldown_counter -= 1
      self.wait = 0
    if _improved(current, self.best, self.min_delta, self.direction):
      self.best, self.wait = float(current), 0
    elif not self.cooldown_counter > 0:
      self.wait += 1
      if self.wait >= self.patience and lr > np.float32(self.min_lr):
        lr = float(np.float32(max(lr * self.factor, self.min_lr)))
        self.cooldown_counter, self.wait = self.cooldown, 0
    return lr


class EarlyStopping:
  """Stop after `patience` epochs without improvement of `monitor` (and remember the best epoch)."""

  def __init__(self, monitor="val_loss", patience=0, mode="auto", min_delta=0.0, baseline=None,
               start_from_epoch=0):
    self.monitor, self.patience, self.min_delta, self.baseline = monitor, patience, min_delta, baseline
    self.start_from_epoch, self.direction = start_from_epoch, _direction(monitor, mode)
    self.best, self.wait, self.best_epoch, self.stopped_epoch = None, 0, 0, 0

  def state(self) -> dict:
    return {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch, "stopped_epoch": self.stopped_epoch}

  def load(self, state: dict) -> None:
    self.best, self.wait = state["best"], state["wait"]
    self.best_epoch, self.stopped_epoch = state["best_epoch"], state["stopped_epoch"]

  def on_epoch_end(self, epoch: int, logs: dict) -> bool:
    """`epoch` 0-based, as Keras counts; True: stop training now."""
    current = logs.get(self.monitor)
    if current is None or epoch < self.start_from_epoch:
      return False
    self.wait += 1
    if _improved(current, self.best, self.min_delta, self.direction):
      self.best, self.best_epoch = float(current), epoch
      if self.baseline is None or _improved(current, self.baseline, self.min_delta, self.direction):
        self.wait = 0
      return False
    if self.wait >= self.patience and epoch > 0:
      self.stopped_epoch = epoch
      return True
    return False


def make(p, e, measures):
  """(plateau or None, early stopping or None) of the settings `p` (config.plateau) and `e`
  (config.early_stop), each None when unused (checked by validate.py); mode "auto" follows the
  monitored metric's direction (`measures`: the run's Measures; the loss falls, accuracy rises)."""
  plateau = early = None
  direction = lambda c: c.mode if c.mode != "auto" else ("max" if measures.higher_is_better(c.monitor) else "min")
  if p is not None:
    plateau = ReduceLROnPlateau(p.monitor, p.factor, p.patience, direction(p), p.min_delta, p.cooldown, p.min_lr)
  if e is not None:
    early = EarlyStopping(e.monitor, e.patience, direction(e), e.min_delta, None, e.start_from_epoch)
  return plateau, early


def _map_plateau_states(state, fn):
  """`state` with `fn` applied to every injected-hyperparameter state that holds the plateau factor
  (`step_size`), wherever the optimizer nests it (after the optimizer, or around Keras' forms)."""
  hyper = getattr(state, "hyperparams", None)
  if isinstance(hyper, dict) and "step_size" in hyper:
    return fn(state)
  if isinstance(state, tuple):
    items = [_map_plateau_states(x, fn) for x in state]
    return type(state)(*items) if hasattr(state, "_fields") else tuple(items)
  if isinstance(state, dict):
    return {k: _map_plateau_states(v, fn) for k, v in state.items()}
  return state


def lr_scale(opt_state) -> float:
  """The plateau factor in an optimizer state built with `plateau` (see optim.build_optimizer)."""
  found = []
  _map_plateau_states(opt_state, lambda st: found.append(float(st.hyperparams["step_size"])) or st)
  if not found:
    raise ValueError("this optimizer state has no plateau factor (built without plateau.use)")
  return found[0]


def with_lr_scale(opt_state, scale: float, sharding=None):
  """`opt_state` with the plateau factor set to `scale` (float32, placed like the old one)."""
  import jax
  import jax.numpy as jnp
  value = jnp.asarray(scale, jnp.float32)
  value = jax.device_put(value, sharding) if sharding is not None else value
  return _map_plateau_states(opt_state, lambda st: st._replace(hyperparams={**st.hyperparams, "step_size": value}))
