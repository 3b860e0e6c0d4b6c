"""The config's components: which registry each section's fields choose, their settings filled in
and checked, and `FIELD=VALUE` overrides applied in the order that makes a component's settings
exist before they are set (the command line's `--config.X=Y`, a stage's overrides).

  config.data.name      -> a dataset       (cnnzoo.data.dataset.DATASETS)
  config.data.augment   -> an augmentation (cnnzoo.data.dataset.AUGMENTATIONS)
  config.optim.name     -> an optimizer    (optim.OPTIMIZERS)
  config.schedule.name  -> a schedule      (schedules.SCHEDULES)

A section holds its own fields (configs/base.py) and the chosen components' settings (their
defaults where the config does not set them). Overriding a component's name drops the settings of
the component it replaces that the new one does not take: `--config.schedule.name=constant` on a
config whose schedule was `step` leaves no `step_every` behind.
"""

import ast
import difflib

import ml_collections

from cnnzoo.data.dataset import AUGMENTATIONS, DATASETS, DATA_FIELDS
from cnnzoo.errors import ConfigError
from cnnzoo.metrics import METRICS
from cnnzoo.training import measures  # noqa: F401 -- registers cnnzoo's metrics
from cnnzoo.registry import not_a_setting, resolve_section
from cnnzoo.training.optim import OPTIMIZERS
from cnnzoo.training.schedules import SCHEDULES

SECTIONS = {"data": ((DATASETS, AUGMENTATIONS), DATA_FIELDS),
            "optim": ((OPTIMIZERS,), tuple(OPTIMIZERS.reserved)),
            "schedule": ((SCHEDULES,), tuple(SCHEDULES.reserved))}


def resolve(config) -> None:
  """Fills and checks every component section of `config` in place (registry.resolve_section)."""
  for section, (registries, own) in SECTIONS.items():
    resolve_section(config, section, registries, own)


def listing() -> list[str]:
  """Every registered component, a line each, with its settings and their defaults (main's
  --list_components): the models by name, then each kind with the field that chooses it."""
  from cnnzoo import models  # noqa: PLC0415 -- the models' registry, filled on import
  lines = [f"models (config.model.name): {', '.join(models.list_models())}",
           "\nmetrics (config.metrics.train, config.metrics.eval): "
           + ", ".join(e.name + ("" if e.module.startswith("cnnzoo.") else f" [{e.module}]") for e in METRICS.entries())]
  for section, (registries, _) in SECTIONS.items():
    for r in registries:
      lines.append(f"\n{r.kind}s (config.{section}.{r.key}):")
      entries = r.entries() + ([r.fallback] if r.fallback is not None else [])
      for e in entries:
        settings = ", ".join(f"{k}={s.default!r}" for k, s in e.settings.items()) or "no settings"
        where = "" if e.module.startswith("cnnzoo.") else f"  [{e.module}]"
        name = "any other name" if e is r.fallback else e.name
        lines.append(f"  {name}: {settings}" + (f"  ({e.name})" if e is r.fallback else "") + where)
  return lines


def prune(config) -> None:
  """Drops from a recorded config (config.json) the fields of each component section that neither
  the section nor its chosen components take: a run written before components declared their
  settings holds every component's fields, those of the ones it did not use inert."""
  for section, (registries, own) in SECTIONS.items():
    if section not in config:
      continue
    d = config[section]
    keep = set(own)
    for registry in registries:
      if registry.key in d:
        keep |= set(registry.get(d[registry.key]).settings)
    with d.unlocked():
      for key in [k for k in d.keys() if k not in keep]:
        del d[key]


def _choosers() -> dict:
  """{"data.name": registry, ...}: the fields that choose a component."""
  return {f"{r.section}.{r.key}": r for registries, _ in SECTIONS.values() for r in registries}


def apply_overrides(config, overrides, describe=lambda key, raw: f"--config.{key}={raw}") -> None:
  """Applies [(dotted key, raw text)] to `config` in place: the fields that choose a component
  first (dropping the replaced component's settings), then the chosen components' settings are
  filled in, then the rest, each parsed as the type of the field it sets; then `resolve`.
  `describe(key, raw)` names an override in errors (the flag, or a stage's text)."""
  choosers = _choosers()
  first = [(k, r) for k, r in overrides if k in choosers]
  with config.unlocked():
    for key, raw in first:
      section, field = key.split(".", 1)
      old, new = config[section][field], _parse(config, key, raw, describe)
      if old != new:
        _drop_settings(config, section, choosers[key], old, new)
      config[section][field] = new
    for section, (registries, _) in SECTIONS.items():
      for registry in registries:
        entry = registry.get(config[section][registry.key])
        for name, s in entry.settings.items():
          if name not in config[section]:
            config[section][name] = s.default
    for key, raw in overrides:
      if key in choosers:
        continue
      value = _parse(config, key, raw, describe)
      *parents, field = key.split(".")
      _node(config, parents)[field] = value
  resolve(config)


def _drop_settings(config, section: str, registry, old_name, new_name) -> None:
  """Removes from config[section] the settings of `old_name` that `new_name` and the section's
  other components do not take."""
  if old_name not in registry and registry.fallback is None:
    return
  old, new = registry.get(old_name), registry.get(new_name)
  others = set()
  for r in SECTIONS[section][0]:
    if r is not registry:
      others |= set(r.get(config[section][r.key]).settings)
  for name in set(old.settings) - set(new.settings) - others - set(SECTIONS[section][1]):
    if name in config[section]:
      del config[section][name]


def _node(config, parents):
  node = config
  for p in parents:
    node = node[p]
  return node


def _parse(config, key: str, raw, describe):
  """`raw` (text, or a Python value from a stage) as the type of the config field `key`; a field
  that does not exist or a value of the wrong type is one line."""
  *parents, field = key.split(".")
  node = config
  for depth, p in enumerate(parents):
    if not isinstance(node, ml_collections.ConfigDict) or p not in node:
      raise ConfigError(_no_field(config, ".".join(parents[:depth + 1]), describe(key, raw)))
    node = node[p]
  if not isinstance(node, ml_collections.ConfigDict) or field not in node:
    raise ConfigError(_no_field(config, key, describe(key, raw)))
  current = node[field]
  if not isinstance(raw, str):
    return raw
  text = raw.strip()
  try:
    if isinstance(current, bool):
      lowered = text.lower()
      if lowered not in ("true", "false", "1", "0"):
        raise ValueError(f"expected True or False, not {text!r}")
      return lowered in ("true", "1")
    if isinstance(current, int):
      return int(text)
    if isinstance(current, float):
      return float(text)
    if isinstance(current, str):
      return raw
    if isinstance(current, (tuple, list)):
      value = ast.literal_eval(text) if text else ()
      return tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if isinstance(current, ml_collections.ConfigDict):
      raise ValueError(f"{key} is a section; set its fields (--config.{key}.FIELD=VALUE)")
    return ast.literal_eval(text)
  except (ValueError, SyntaxError) as e:
    raise ConfigError(f"{describe(key, raw)}: {e}") from None


def _no_field(config, key: str, flag: str) -> str:
  """The line for an override of a field the config does not have (a typo, another component's)."""
  *parents, field = key.split(".")
  node = config
  for p in parents:
    node = node[p]
  section = parents[0] if parents else ""
  name = flag.split("=", 1)[0]
  if len(parents) == 1 and section in SECTIONS:
    registries, own = SECTIONS[section]
    chosen = [(r, r.get(node[r.key])) for r in registries]
    return not_a_setting(section, field, chosen, own, name)
  close = difflib.get_close_matches(field, list(node.keys()), n=1, cutoff=0.6)
  return f"{name}: no such config field {field!r}" + (f"; did you mean {close[0]!r}?" if close else "")
