"""Optimizers and learning-rate schedules from the config, built on optax.

Schedules are written in epochs (the unit of the seed's Keras callbacks) and evaluated at the
optimizer's step count: with `schedule.per_step=False` (default) the epoch is
`floor(step / steps_per_epoch)`, so the rate is constant within an epoch exactly as Keras'
LearningRateScheduler sets it; with `per_step=True` the epoch is fractional and the rate changes
every step. Keras' time-based decay (`lr0 / (1 + decay * iterations)`, SGD's old `decay` argument)
is per iteration by definition.

After a resume the schedule is rebuilt from the (possibly overridden) config and evaluated at the
restored step count: the epoch-N checkpoint continues at step N * steps_per_epoch of the new
schedule. E.g. `--config.schedule.name=constant --config.optim.lr=1e-3` trains on at 1e-3.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from cnnzoo.errors import ConfigError
from cnnzoo.training import keras_optim

Schedule = Callable[[jax.Array], jax.Array]


def epoch_schedule(cfg, lr: float, num_epochs: int) -> Schedule:
  """The schedule of `cfg` (config.schedule) as a function of the (possibly fractional) epoch."""
  warmup = cfg.warmup_epochs
  horizon = (cfg.decay_epochs or num_epochs) - warmup  # the decay ends at `decay_epochs`
  name = cfg.name
  if name in ("poly", "linear", "cosine") and horizon <= 0:
    raise ConfigError(f"schedule {name!r} decays over decay_epochs (or num_epochs) minus warmup_epochs "
                      f"= {horizon} epochs; it must be at least 1")
  if name == "constant":
    main = optax.constant_schedule(lr)
  elif name in ("poly", "linear"):
    power = 1.0 if name == "linear" else cfg.power
    main = optax.polynomial_schedule(lr, cfg.end_lr, power, transition_steps=horizon)
  elif name == "step":  # lr * factor ** floor((epoch + step_offset) / step_every)
    decay = optax.exponential_decay(lr, transition_steps=cfg.step_every, decay_rate=cfg.step_factor,
                                    staircase=True)
    offset = cfg.step_offset
    main = (lambda epoch: decay(epoch + offset)) if offset else decay
  elif name == "piecewise":
    if len(cfg.boundaries) != len(cfg.scales):
      raise ConfigError("schedule.boundaries and schedule.scales must have the same length")
    main = optax.piecewise_constant_schedule(
        lr, {int(b) - warmup: float(s) for b, s in zip(cfg.boundaries, cfg.scales)})
  elif name == "cosine":
    main = optax.cosine_decay_schedule(lr, decay_steps=horizon, alpha=cfg.end_lr / lr if lr else 0.0)
  else:
    raise ConfigError(f"unknown schedule {name!r}; choose constant, poly, linear, step, piecewise, "
                     "cosine or keras_time")
  if not warmup:
    return main
  ramp = optax.linear_schedule(cfg.warmup_init_lr, lr, transition_steps=warmup)
  return optax.join_schedules([ramp, main], boundaries=[warmup])


def build_schedule(cfg, lr: float, num_epochs: int, steps_per_epoch: int) -> Schedule:
  """Learning rate as a function of the optimizer step count (see the module docstring)."""
  if cfg.name == "keras_time":
    if cfg.warmup_epochs:
      raise ConfigError("keras_time decay has no warmup form; set schedule.warmup_epochs=0")
    return lambda count: lr / (1.0 + cfg.decay * count)
  by_epoch = epoch_schedule(cfg, lr, num_epochs)

  def schedule(count):
    epoch = jnp.asarray(count, jnp.float32) / steps_per_epoch
    return by_epoch(epoch if cfg.per_step else jnp.floor(epoch))

  return schedule


def kernel_mask(params):
  """True for convolution and dense kernels: the weights Keras' kernel_regularizer and decoupled
  weight decay act on (biases and BatchNorm scales are left alone)."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


def l2_penalty(params, l2: float, conv_only: bool = False):
  """Keras' l2(reg) summed over every kernel: reg * sum(w ** 2) (no 1/2 factor); `conv_only`: over
  the convolution kernels (4-D) alone, as code that regularizes only its Conv2D layers has it."""
  if not l2:
    return jnp.zeros((), jnp.float32)
  keep = lambda p, m: m and (p.ndim == 4 or not conv_only)
  leaves = jax.tree.leaves(jax.tree.map(lambda p, m: jnp.sum(jnp.square(p)) if keep(p, m) else 0.0,
                                        params, kernel_mask(params)))
  return l2 * sum(leaves)


def with_plateau_scale(tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """`tx` followed by a factor kept in its state (`step_size`, 1.0 at first), which
  ReduceLROnPlateau lowers between epochs (callbacks.with_lr_scale)."""
  return optax.chain(tx, optax.inject_hyperparams(optax.scale)(step_size=1.0))


def build_optimizer(cfg, schedule: Schedule, labels=None, plateau: bool = False) -> optax.GradientTransformation:
  """The optimizer of `cfg` (config.optim) driven by `schedule`.

  Keras defaults are the config defaults (Adam / RMSprop epsilon 1e-7, RMSprop rho 0.9).
  `weight_decay` is decoupled (AdamW-style for Adam, added to the gradient before momentum for SGD
  and RMSprop, as PyTorch does); `l2` is not here but in the loss, as Keras adds it. `labels`
  (params -> "train" / "frozen" per leaf, trainable.py) freezes parameters: they get no update and
  no optimizer state. `plateau`: a factor ReduceLROnPlateau lowers (callbacks.py), kept in the state
  as `step_size`: with optax's arithmetic a scale after the optimizer (its learning rate is one);
  with Keras' it multiplies the learning rate itself, as Keras sets `optimizer.learning_rate` --
  not the same for momentum SGD and RMSprop, which keep the rate inside the velocity.
  """
  keras_plateau = plateau and cfg.get("semantics", "optax") == "keras"
  if keras_plateau:
    tx = optax.inject_hyperparams(lambda step_size: _core_optimizer(cfg, lambda c: schedule(c) * step_size))(
        step_size=1.0)
  else:
    tx = _core_optimizer(cfg, schedule)
  if labels is not None:
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
  return with_plateau_scale(tx) if plateau and not keras_plateau else tx


def _core_optimizer(cfg, schedule: Schedule) -> optax.GradientTransformation:
  name = cfg.name
  if cfg.get("semantics", "optax") == "keras":  # Keras 3's arithmetic (keras_optim.py)
    if cfg.weight_decay:
      raise ConfigError("optim.weight_decay has no Keras form here; with optim.semantics=keras use optim.l2 "
                        "(the Keras kernel_regularizer the journal uses) or optim.semantics=optax")
    if name == "sgd":
      tx = keras_optim.sgd(schedule, momentum=cfg.momentum, nesterov=cfg.nesterov)
    elif name == "adam":
      tx = keras_optim.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    elif name == "rmsprop":
      tx = keras_optim.rmsprop(schedule, rho=cfg.rho, eps=cfg.eps, momentum=cfg.momentum)
    else:
      raise ConfigError(f"unknown optimizer {name!r}; choose sgd, adam or rmsprop")
    return _clip(cfg, tx)
  if name == "sgd":
    tx = optax.sgd(schedule, momentum=cfg.momentum or None, nesterov=cfg.nesterov)
  elif name == "adam":
    if cfg.weight_decay:
      return _clip(cfg, optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                                    weight_decay=cfg.weight_decay, mask=kernel_mask))
    tx = optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
  elif name == "rmsprop":
    tx = optax.rmsprop(schedule, decay=cfg.rho, eps=cfg.eps, momentum=cfg.momentum or None)
  else:
    raise ConfigError(f"unknown optimizer {name!r}; choose sgd, adam or rmsprop")
  if cfg.weight_decay:
    tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay, mask=kernel_mask), tx)
  return _clip(cfg, tx)


def _clip(cfg, tx):
  if cfg.get("clip_grad_norm"):
    return optax.chain(optax.clip_by_global_norm(cfg.clip_grad_norm), tx)
  return tx
