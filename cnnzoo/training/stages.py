"""Multi-stage recipes as one command: `config.stages` lists where each stage ends and what it
changes, e.g. the journal's DeeperGoogLeNet (Adam 1e-3 to epoch 50, 1e-4 to 60, then
1e-5 * (1 - e / 40) counted from epoch 60):

  c.num_epochs = 100
  c.stages = ((50, "optim.lr=1e-3"), (60, "optim.lr=1e-4"),
              (100, "optim.lr=1e-5,schedule.name=poly,schedule.from_stage_start=True"))

Stage k trains the epochs after the previous stage's end up to its own END (the last one ends at
num_epochs) with the config of stage k-1 plus its overrides (`optim.*` and `schedule.*` fields).

What carries over, as in Keras: a stage that changes only the learning rate or the schedule keeps
the optimizer's state (Keras: `K.set_value(model.optimizer.lr, ...)`); one that changes anything
else of `optim` (another optimizer, momentum, epsilon, ...) starts a fresh optimizer (Keras:
compiling with a new optimizer), whose step count, and so its bias corrections and time-based
decay, start at 0. Schedules are functions of the run's global epoch, or of the epoch within the
stage with `schedule.from_stage_start=True` (whose decay then spans the stage's epochs unless
`schedule.decay_epochs` says otherwise).
"""

import dataclasses

import jax

from cnnzoo.errors import ConfigError
from cnnzoo.training import components, optim, schedules

ALLOWED = ("optim.", "schedule.")
KEEPS_OPTIMIZER = {"optim.lr"}  # overrides that keep the optimizer state (with any schedule.*)


@dataclasses.dataclass
class Stage:
  index: int  # 1-based
  start: int  # epochs done before it
  end: int  # epochs done after it
  config: object
  overrides: dict
  fresh: bool  # starts a new optimizer state
  opt_start: int  # the epoch at which its optimizer state was created (its step count's 0)
  schedule: object = None  # lr as a function of the global step
  tx: object = None
  trainable: object = None  # trainable.Trainable (None: everything trains)

  @property
  def inference_modules(self) -> tuple:
    return self.trainable.inference_modules if self.trainable is not None else ()


def parse_overrides(text: str, where: str) -> list[tuple[str, str]]:
  """"a.b=1,c.d=x" -> [("a.b", "1"), ("c.d", "x")], each a field a stage may change."""
  out = []
  for item in [s.strip() for s in _split(text) if s.strip()]:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
      raise ConfigError(f"{where}: {item!r} is not FIELD=VALUE")
    if not key.startswith(ALLOWED):
      raise ConfigError(f"{where}: {key} cannot change within a run; a stage may set optim.* and schedule.*")
    out.append((key, raw.strip()))
  return out


def _split(text: str) -> list[str]:
  """Splits on commas outside brackets (tuple values such as schedule.boundaries=(10, 20))."""
  parts, depth, cur = [], 0, ""
  for ch in text:
    depth += 1 if ch in "([" else -1 if ch in ")]" else 0
    if ch == "," and depth == 0:
      parts.append(cur)
      cur = ""
    else:
      cur += ch
  return parts + [cur]


def plan(config, steps_per_epoch: int, trainable=None) -> list[Stage]:
  """The stages of `config` (one stage spanning the run when it lists none), each with its config,
  schedule and optimizer. `trainable(spec)` -> trainable.Trainable resolves a stage's
  `optim.trainable` on the model. Raises ConfigError for stages that cannot work."""
  spec = tuple(config.get("stages", ()) or ())
  if not spec:
    stages = [Stage(1, 0, config.num_epochs, config, {}, True, 0)]
  else:
    stages, previous, prev_cfg, opt_start = [], 0, config, 0
    for i, item in enumerate(spec, start=1):
      where = f"--config.stages[{i - 1}]"
      if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], int) \
          or isinstance(item[0], bool) or not isinstance(item[1], str):
        raise ConfigError(f"{where}={item!r}: each stage is (END_EPOCH, \"field=value,...\")")
      end, text = item
      if end <= previous:
        raise ConfigError(f"{where}: ends at epoch {end}, not after the previous stage's {previous}")
      items = parse_overrides(text, where)
      cfg = prev_cfg.copy_and_resolve_references()
      components.apply_overrides(cfg, items, describe=lambda key, raw: f"{where}: {key}={raw}")
      overrides = {key: _field(cfg, key) for key, _ in items}
      changed = {k for k in overrides if k.startswith("optim.") and prev_cfg.optim.get(k[6:]) != cfg.optim[k[6:]]}
      fresh = i == 1 or bool(changed - KEEPS_OPTIMIZER)
      opt_start = previous if fresh else opt_start
      stages.append(Stage(i, previous, end, cfg, overrides, fresh, opt_start))
      previous, prev_cfg = end, cfg
    if previous != config.num_epochs:
      raise ConfigError(f"--config.stages: the last stage ends at epoch {previous} but num_epochs is "
                        f"{config.num_epochs}; they must agree")
  for s in stages:
    s.schedule = _global_schedule(s, config.num_epochs, steps_per_epoch)
    spec = s.config.optim.get("trainable", "all")
    s.trainable = trainable(spec) if trainable is not None and spec != "all" else None
    s.tx = optim.build_optimizer(s.config, _optimizer_schedule(s, steps_per_epoch),
                                 labels=s.trainable.labels if s.trainable is not None else None,
                                 plateau=config.get("plateau") is not None and config.plateau.use)
  return stages


def _global_schedule(stage: Stage, num_epochs: int, steps_per_epoch: int):
  """The stage's learning rate as a function of the run's global step."""
  sched_cfg = stage.config.schedule
  relative = bool(sched_cfg.get("from_stage_start", False))
  if schedules.SCHEDULES.get(sched_cfg.name).optimizer_steps:  # Keras' time decay: counts from its creation
    relative, offset = True, stage.opt_start * steps_per_epoch
  else:
    offset = stage.start * steps_per_epoch if relative else 0
  horizon = stage.end - stage.start if relative else num_epochs
  inner = schedules.build(stage.config, stage.config.optim.lr, horizon, steps_per_epoch)
  # jitted: the loop reads it once per epoch, and an optax schedule evaluated op by op costs ~50 ms
  return jax.jit(lambda step: inner(step - offset))


def _optimizer_schedule(stage: Stage, steps_per_epoch: int):
  """The schedule as optax sees it: a function of the optimizer's own step count, which is 0 at
  the epoch its state was created (`opt_start`)."""
  offset = stage.opt_start * steps_per_epoch
  return lambda count: stage.schedule(count + offset)


def _field(config, key: str):
  section, _, field = key.partition(".")
  return config[section][field]


def stage_of(stages: list[Stage], epoch: int) -> Stage:
  """The stage that trains (1-based) `epoch`; epoch 0 (nothing trained) -> the first."""
  for s in stages:
    if epoch <= s.end:
      return s
  return stages[-1]


def with_stage(state, stages: list[Stage], current: Stage, target: Stage, sharding=None):
  """`state` (trained under `current`) moved to `target`: its optimizer, and a fresh optimizer
  state if any stage from current (exclusive) to target (inclusive) starts one."""
  if target.index == current.index:
    return state.replace(tx=target.tx)
  fresh = any(s.fresh for s in stages if current.index < s.index <= target.index)
  if not fresh:
    return state.replace(tx=target.tx)
  opt_state = jax.jit(target.tx.init, out_shardings=sharding)(state.params)
  return state.replace(tx=target.tx, opt_state=opt_state)


def template(state, stages: list[Stage], epoch: int, sharding=None):
  """A state shaped like the checkpoint of `epoch` (its stage's optimizer state): the restore target."""
  stage = stage_of(stages, max(epoch, 1))
  if stage.index == 1:
    return state
  return state.replace(tx=stage.tx, opt_state=jax.jit(stage.tx.init, out_shardings=sharding)(state.params))
