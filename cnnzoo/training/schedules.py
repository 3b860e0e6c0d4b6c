"""Learning-rate schedules: a registry, cnnzoo's own schedules its entries.

A schedule is `fn(lr, steps_per_epoch, num_epochs, config) -> schedule(step) -> learning rate`,
registered with `@register_schedule(NAME, settings={...})`; its settings are fields of
config.schedule beside `name` (see cnnzoo/registry.py). `step` counts the run's train steps, or
the optimizer's own steps for an entry registered with `optimizer_steps=True` (Keras' time-based
decay counts the iterations of the optimizer in use, from 0 again after a stage starts a new one).

cnnzoo's schedules are written in epochs (the unit of the seed's Keras callbacks) and evaluated at
the step: with `per_step=False` (default) the epoch is `floor(step / steps_per_epoch)`, so the rate
is constant within an epoch exactly as Keras' LearningRateScheduler sets it; with `per_step=True`
the epoch is fractional and the rate changes every step. `warmup_epochs` ramps linearly from
`warmup_init_lr` first.

After a resume the schedule is rebuilt from the (possibly overridden) config and evaluated at the
restored step count: the epoch-N checkpoint continues at step N * steps_per_epoch of the new
schedule. E.g. `--config.schedule.name=constant --config.optim.lr=1e-3` trains on at 1e-3.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from cnnzoo.errors import ConfigError
from cnnzoo.registry import Registry, setting

Schedule = Callable[[jax.Array], jax.Array]

SCHEDULES = Registry("schedule", section="schedule", facts={"optimizer_steps": False},
                     reserved=("name", "from_stage_start"))
register_schedule = SCHEDULES.register

# the settings of every epoch-wise schedule of cnnzoo
EPOCHWISE = {
    "per_step": setting(False, "False: the rate changes at epoch boundaries, as Keras callbacks do"),
    "warmup_epochs": setting(0, "epochs of a linear ramp before the schedule", low=0),
    "warmup_init_lr": setting(0.0, "the ramp's first rate", low=0),
}
DECAYING = {**EPOCHWISE,
            "end_lr": setting(0.0, "the last rate", low=0),
            "decay_epochs": setting(0, "epochs to reach end_lr (0 = num_epochs)", low=0)}


def build(config, lr: float, num_epochs: int, steps_per_epoch: int) -> Schedule:
  """The learning rate of config.schedule's entry as a function of the step; a component that
  does not return a function is one line naming it."""
  entry = SCHEDULES.get(config.schedule.name)
  fn = entry.fn(lr, steps_per_epoch, num_epochs, config)
  if not callable(fn):
    raise ConfigError(f"schedule {entry.name!r} ({entry.module}.{entry.fn.__name__}) returned "
                      f"{type(fn).__name__}, not a function of the step (an optax schedule)")
  return fn


def epochwise(config, lr: float, steps_per_epoch: int, main: Schedule) -> Schedule:
  """`main` (a function of the epoch, counted after the warmup) as a function of the step: with
  config.schedule's warmup ramp first, and the epoch whole unless `per_step`."""
  s = config.schedule
  by_epoch = main
  if s.warmup_epochs:
    ramp = optax.linear_schedule(s.warmup_init_lr, lr, transition_steps=s.warmup_epochs)
    by_epoch = optax.join_schedules([ramp, main], boundaries=[s.warmup_epochs])

  def schedule(count):
    epoch = jnp.asarray(count, jnp.float32) / steps_per_epoch
    return by_epoch(epoch if s.per_step else jnp.floor(epoch))

  return schedule


def _horizon(config, num_epochs: int) -> int:
  """The epochs a decay spans: to decay_epochs (or num_epochs), after the warmup."""
  s = config.schedule
  horizon = (s.decay_epochs or num_epochs) - s.warmup_epochs
  if horizon <= 0:
    raise ConfigError(f"schedule {s.name!r} decays over decay_epochs (or num_epochs) minus warmup_epochs "
                      f"= {horizon} epochs; it must be at least 1")
  return horizon


@register_schedule("constant", settings=EPOCHWISE)
def constant(lr, steps_per_epoch, num_epochs, config):
  return epochwise(config, lr, steps_per_epoch, optax.constant_schedule(lr))


@register_schedule("poly", settings={**DECAYING, "power": setting(1.0, "the polynomial's degree", low=0, low_open=True)})
def poly(lr, steps_per_epoch, num_epochs, config):
  """The seed's poly_decay: lr * (1 - epoch / decay_epochs) ** power, down to end_lr."""
  main = optax.polynomial_schedule(lr, config.schedule.end_lr, config.schedule.power,
                                   transition_steps=_horizon(config, num_epochs))
  return epochwise(config, lr, steps_per_epoch, main)


@register_schedule("linear", settings=DECAYING)
def linear(lr, steps_per_epoch, num_epochs, config):
  """poly of power 1."""
  main = optax.polynomial_schedule(lr, config.schedule.end_lr, 1.0, transition_steps=_horizon(config, num_epochs))
  return epochwise(config, lr, steps_per_epoch, main)


@register_schedule("cosine", settings=DECAYING)
def cosine(lr, steps_per_epoch, num_epochs, config):
  s = config.schedule
  main = optax.cosine_decay_schedule(lr, decay_steps=_horizon(config, num_epochs), alpha=s.end_lr / lr if lr else 0.0)
  return epochwise(config, lr, steps_per_epoch, main)


@register_schedule("step", settings={
    **EPOCHWISE,
    "step_every": setting(10, "epochs between decays", low=1),
    "step_factor": setting(0.5, "multiplier per decay", low=0, low_open=True),
    "step_offset": setting(0, "added to the 0-based epoch (the book's step_decay: 1)", low=0)})
def step(lr, steps_per_epoch, num_epochs, config):
  """lr * step_factor ** floor((epoch + step_offset) / step_every)."""
  s = config.schedule
  decay = optax.exponential_decay(lr, transition_steps=s.step_every, decay_rate=s.step_factor, staircase=True)
  offset = s.step_offset
  main = (lambda epoch: decay(epoch + offset)) if offset else decay
  return epochwise(config, lr, steps_per_epoch, main)


def _epochs(value) -> str | None:
  if not all(isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in value):
    return "expected epochs as integers >= 0"
  return None


def _factors(value) -> str | None:
  if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value):
    return "expected factors > 0"
  return None


@register_schedule("piecewise", settings={
    **EPOCHWISE,
    "boundaries": setting((0,), "epochs where the rate is multiplied ...", check=_epochs),
    "scales": setting((1.0,), "... by these factors", check=_factors)})
def piecewise(lr, steps_per_epoch, num_epochs, config):
  s = config.schedule
  if len(tuple(s.boundaries)) != len(tuple(s.scales)):
    raise ConfigError(f"--config.schedule.boundaries={tuple(s.boundaries)} and --config.schedule.scales="
                      f"{tuple(s.scales)} must have the same length")
  main = optax.piecewise_constant_schedule(
      lr, {int(b) - s.warmup_epochs: float(v) for b, v in zip(s.boundaries, s.scales)})
  return epochwise(config, lr, steps_per_epoch, main)


@register_schedule("keras_time", optimizer_steps=True,
                   settings={"decay": setting(0.0, "lr / (1 + decay * iterations)", low=0)})
def keras_time(lr, steps_per_epoch, num_epochs, config):
  """Keras' time-based decay (SGD's old `decay` argument): lr / (1 + decay * iterations), per
  iteration of the optimizer by definition."""
  decay = config.schedule.decay
  return lambda count: lr / (1.0 + decay * count)
