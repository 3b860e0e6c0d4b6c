"""Checks every config field a training run reads, before anything is built or written: a value
that cannot work gets one ConfigError naming the flag and the values that do."""

import math
import numbers
import os

from cnnzoo.errors import ConfigError
from cnnzoo.kernels import dispatch
from cnnzoo.training import components
from cnnzoo.training.callbacks import MODES
from cnnzoo.training.measures import monitored

DTYPES = ("float32", "bfloat16", "float16")


def _number(path: str, value, *, low=None, high=None, low_open=False, high_open=False, integer=False):
  flag = f"--config.{path}={value!r}" if isinstance(value, str) else f"--config.{path}={value}"
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or (integer and not isinstance(value, numbers.Integral)):
    raise ConfigError(f"{flag}: expected {'an integer' if integer else 'a number'}")
  if not math.isfinite(value):
    raise ConfigError(f"{flag}: expected a finite number")
  below = low is not None and (value <= low if low_open else value < low)
  above = high is not None and (value >= high if high_open else value > high)
  if below or above:
    lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
    raise ConfigError(f"{flag}: must be {' and '.join(p for p in (lo, hi) if p)}")


def _choice(path: str, value, choices) -> None:
  if value not in choices:
    raise ConfigError(f"--config.{path}={value!r}: choose one of {', '.join(repr(c) for c in choices)}")


def check(c) -> None:
  """Raises ConfigError for the first field of config `c` whose value cannot work. The component
  sections are filled with their components' settings first (components.resolve), which checks
  those settings against their declarations."""
  dispatch.default()  # the environment's kernel settings (CNNZOO_CPU_CONV, ...), before anything is built
  components.resolve(c)
  _check_run(c)
  _check_model(c.model, c.optim)
  _check_data(c.data)
  _check_optim(c.optim)
  _check_schedule(c.schedule, c.num_epochs)
  _check_checkpoint(c)


def _check_run(c) -> None:
  """The run's own fields: seed, epochs, callbacks, the ensemble, the monitor."""
  _number("seed", c.seed, low=0, high=2**32 - 1, integer=True)  # NumPy's and JAX's seeds are 32-bit
  if c.get("ensemble") and c.ensemble.members and c.seed + c.ensemble.members - 1 > 2**32 - 1:
    raise ConfigError(f"--config.seed={c.seed}: the ensemble's members take seeds seed .. seed + "
                      f"{c.ensemble.members - 1}, past 4294967295; lower it")
  _number("num_epochs", c.num_epochs, low=1, integer=True)
  for name in ("plateau", "early_stop"):
    if name in c and c[name].use:
      _choice(f"{name}.monitor", c[name].monitor, monitored(c))
      _choice(f"{name}.mode", c[name].mode, MODES)
  if "plateau" in c and c.plateau.use:
    p = c.plateau
    _number("plateau.factor", p.factor, low=0, high=1, low_open=True, high_open=True)
    _number("plateau.patience", p.patience, low=0, integer=True)
    _number("plateau.cooldown", p.cooldown, low=0, integer=True)
    _number("plateau.min_delta", p.min_delta, low=0)
    _number("plateau.min_lr", p.min_lr, low=0)
  if "early_stop" in c and c.early_stop.use:
    _number("early_stop.patience", c.early_stop.patience, low=0, integer=True)
    _number("early_stop.min_delta", c.early_stop.min_delta, low=0)
    _number("early_stop.start_from_epoch", c.early_stop.start_from_epoch, low=0, integer=True)
  _number("monitor.plot_min_seconds", c.monitor.get("plot_min_seconds", 0.0), low=0)
  if "ensemble" in c:
    _number("ensemble.members", c.ensemble.members, low=0, high=1000, integer=True)


def _check_model(m, o) -> None:
  """config.model, and optim.trainable (what of the model trains)."""
  if not m.name:
    raise ConfigError("--config.model.name: no model given (see `python -m experiments.summarize --table`)")
  _number("model.num_classes", m.num_classes, low=0, integer=True)
  _choice("model.kernel_init", m.get("kernel_init", "flax"), ("flax", "glorot_uniform", "he_normal"))
  if m.get("head"):
    _choice("model.head", m.head, ("", "fc", "gap"))
    _number("model.head_hidden", m.head_hidden, low=-1, integer=True)
    _number("model.head_dropout", m.head_dropout, low=-1, high=1, high_open=True)
  if m.get("keras_weights") == "random":
    raise ConfigError("--config.model.keras_weights=random: only a features run (features.use) takes it; a "
                      "trained model starts from its random initialization when keras_weights is empty")
  if m.get("keras_weights"):
    if not os.path.isfile(m.keras_weights):
      raise ConfigError(f"--config.model.keras_weights={m.keras_weights}: no such file (Keras .h5 weights: see "
                        "the README's Pretrained Keras weights)")
  trainable = o.get("trainable", "all")
  if not isinstance(trainable, str) or not (trainable in ("all", "head", "bn")
                                            or trainable.startswith(("from:", "re:"))):
    raise ConfigError(f"--config.optim.trainable={trainable!r}: choose all, head, bn, from:LAYER or re:REGEX")
  _choice("model.dtype", m.dtype, DTYPES)
  shape = tuple(m.input_shape or ())
  if shape and (len(shape) != 3 or not all(isinstance(d, numbers.Integral) and d > 0 for d in shape)):
    raise ConfigError(f"--config.model.input_shape={shape}: expected (height, width, channels) as positive integers")


def _check_data(d) -> None:
  """config.data."""
  _number("data.batch_size", d.batch_size, low=1, integer=True)
  _number("data.eval_batch_size", d.eval_batch_size, low=0, integer=True)
  _number("data.crop_size", d.get("crop_size", 0), low=0, integer=True)
  _number("data.prefetch", d.prefetch, low=0, integer=True)
  for name in ("eval_crop", "test_crop"):
    if d.get(name) == "ten" and not d.get("crop_size", 0):
      raise ConfigError(f"--config.data.{name}=ten averages ten crop_size windows: set --config.data.crop_size "
                        "(the seed's AlexNet: 227 of 256), or use center / resize")
  _number("data.max_on_device_gb", d.max_on_device_gb, low=0)
  _number("data.erase_prob", d.erase_prob, low=0, high=1)
  area = tuple(d.erase_area)
  if len(area) != 2 or not all(isinstance(a, numbers.Real) for a in area) or not 0 < area[0] <= area[1] <= 1:
    raise ConfigError(f"--config.data.erase_area={area}: expected (low, high) with 0 < low <= high <= 1")
  _number("data.erase_ratio", d.erase_ratio, low=0, high=1, low_open=True)
  _choice("data.on_device", d.on_device, ("auto", "yes", "no", True, False))
  if d.std:
    for v in d.std:
      _number("data.std", v, low=0, low_open=True)


def _check_optim(o) -> None:
  """config.optim's own fields (the optimizer's settings are checked by components.resolve)."""
  _number("optim.lr", o.lr, low=0, low_open=True)
  for name in ("l2", "clip_grad_norm", "aux_loss_weight"):
    _number(f"optim.{name}", o[name], low=0)
  _number("optim.label_smoothing", o.label_smoothing, low=0, high=1, high_open=True)


def _check_schedule(s, num_epochs: int) -> None:
  """What a schedule's settings cannot check alone: a warmup shorter than the run."""
  if s.get("warmup_epochs", 0) >= num_epochs:
    raise ConfigError(f"--config.schedule.warmup_epochs={s.warmup_epochs}: must be less than "
                      f"num_epochs={num_epochs}")


def _check_checkpoint(c) -> None:
  """config.checkpoint, the monitor's step interval and steps_per_dispatch."""
  k = c.checkpoint
  _number("checkpoint.keep", k.keep, low=1, integer=True)
  _number("checkpoint.keep_every", k.keep_every, low=0, integer=True)
  _choice("checkpoint.best_metric", k.best_metric, ("", *monitored(c)))
  _choice("checkpoint.best_mode", k.best_mode, ("min", "max"))
  _number("monitor.log_every_steps", c.monitor.log_every_steps, low=1, integer=True)
  _number("steps_per_dispatch", c.get("steps_per_dispatch", 0), low=0, integer=True)
