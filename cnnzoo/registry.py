"""Named components and their settings: one `Registry` per kind (models, datasets, schedules,
optimizers, augmentations, metrics), filled by decorators, cnnzoo's own entries and a user's alike.

An entry is a function under a name, with the settings it reads from its config section declared
beside it:

  @register_schedule("warm_cosine", settings={"floor": setting(0.0, low=0, doc="the last rate")})
  def warm_cosine(lr, steps_per_epoch, num_epochs, config):
    floor = config.schedule.floor  # filled with its default when the config does not set it
    ...

A setting's type is its default's (an int is accepted for a float); `low` / `high` / `choices`
bound it, `check(value) -> str | None` says what else is wrong. `Registry.get` of an unknown name
is one line listing the registered names, the close matches first. Nothing here imports JAX.
"""

import dataclasses
import difflib
import fnmatch
import math
import numbers
from typing import Any, Callable

from cnnzoo.errors import ConfigError, UserError


class RegistryError(UserError):
  """A registration that cannot be taken: a name given twice, settings that do not type-check."""


@dataclasses.dataclass(frozen=True)
class Setting:
  """One setting of a component: its default (which gives its type), bounds and what it means."""
  default: Any
  doc: str = ""
  low: float | None = None
  high: float | None = None
  low_open: bool = False  # low itself is refused (> low)
  high_open: bool = False
  choices: tuple | None = None
  check: Callable[[Any], str | None] | None = None

  def problem(self, value) -> str | None:
    """Why `value` cannot be this setting's value, or None."""
    kind = type(self.default)
    if kind is bool:
      if not isinstance(value, bool):
        return "expected True or False"
    elif kind is int:
      if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return "expected an integer"
    elif kind is float:
      if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "expected a number"
      if not math.isfinite(value):
        return "expected a finite number"
    elif kind in (tuple, list):
      if not isinstance(value, (tuple, list)):
        return f"expected a tuple such as {self.default!r}"
    elif kind is str:
      if not isinstance(value, str):
        return "expected a string"
    if self.choices is not None and value not in self.choices:
      return f"choose one of {', '.join(repr(c) for c in self.choices)}"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
      below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
      above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
      if below or above:
        lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low}"
        hi = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high}"
        return f"must be {' and '.join(p for p in (lo, hi) if p)}"
    return self.check(value) if self.check is not None else None


def setting(default, doc: str = "", *, low=None, high=None, low_open=False, high_open=False, choices=None,
            check=None) -> Setting:
  """A declared setting (see the module docstring): `low` / `high` bound it (inclusive unless
  `low_open` / `high_open`). A bare default in `settings=` is the same as `setting(default)`."""
  return Setting(default, doc, low, high, low_open, high_open, tuple(choices) if choices is not None else None,
                 check)


@dataclasses.dataclass(frozen=True)
class Entry:
  """A registered component: its function, its settings and the facts its kind records."""
  name: str
  fn: Callable
  settings: dict[str, Setting]
  facts: dict[str, Any]
  module: str  # where it was defined: a user's module is recorded by the runs that use it

  def __getattr__(self, key):  # entry.per_step, entry.how_to_get, ...: the kind's facts
    facts = self.__dict__.get("facts", {})
    if key in facts:
      return facts[key]
    raise AttributeError(f"{self.__dict__.get('name', '?')!r} has no fact {key!r}")

  def defaults(self) -> dict:
    return {k: s.default for k, s in self.settings.items()}


class Registry:
  """The entries of one kind of component, by name.

  `kind` names it in messages ("schedule"); `section` / `key` say which config field chooses the
  entry (config.schedule.name); `facts` are the keyword arguments every registration may give,
  with their defaults (a model's input_shape, a schedule's per_step)."""

  def __init__(self, kind: str, section: str = "", key: str = "name", facts: dict | None = None,
               reserved: tuple = ()):
    self.kind, self.section, self.key = kind, section, key
    self.facts = dict(facts or {})
    self.reserved = frozenset(reserved)  # the section's own fields: no entry may declare them
    self._entries: dict[str, Entry] = {}
    self.fallback: Entry | None = None  # taken for any other name (datasets: tensorflow-datasets names)

  @property
  def flag(self) -> str:
    return f"--config.{self.section}.{self.key}" if self.section else self.kind

  def register(self, name: str | None = None, *, settings: dict | None = None, **facts):
    """Decorator: registers `fn` under `name` (default: the function's name) with its `settings`."""
    unknown = sorted(set(facts) - set(self.facts))
    if unknown:
      raise RegistryError(f"register_{self.kind}: unknown argument {unknown[0]!r} (it takes name, settings"
                          + "".join(f", {f}" for f in self.facts) + ")")

    def decorator(fn):
      entry_name = name or fn.__name__
      self.add(Entry(entry_name, fn, _settings(self, entry_name, settings or {}), {**self.facts, **facts},
                     getattr(fn, "__module__", "") or ""))
      return fn

    return decorator

  def add(self, entry: Entry) -> None:
    if not isinstance(entry.name, str) or not entry.name:
      raise RegistryError(f"a {self.kind} needs a non-empty string name, not {entry.name!r}")
    if not callable(entry.fn):
      raise RegistryError(f"{self.kind} {entry.name!r}: register a function, not {type(entry.fn).__name__}")
    old = self._entries.get(entry.name)
    if old is not None:
      whose = "cnnzoo's own" if old.module.startswith("cnnzoo.") else f"from {old.module}"
      raise RegistryError(f"{self.kind} {entry.name!r} ({entry.module}) is already registered ({whose}); "
                          "choose another name")
    self._entries[entry.name] = entry

  def set_fallback(self, name: str, fn: Callable, settings: dict | None = None, **facts) -> None:
    """The entry every name that is not registered stands for (`name` describes it in messages)."""
    self.fallback = Entry(name, fn, _settings(self, name, settings or {}), {**self.facts, **facts},
                          getattr(fn, "__module__", "") or "")

  def get(self, name) -> Entry:
    """The entry `name` (or the fallback for any other non-empty string); an unknown name is a
    ConfigError listing the registered ones."""
    if isinstance(name, str) and name in self._entries:
      return self._entries[name]
    if self.fallback is not None and isinstance(name, str) and name:
      return self.fallback
    raise ConfigError(self.unknown(name))

  def unknown(self, name, where: str = "") -> str:
    """The one line for a name that is not registered: the close matches first, then the rest
    (`where`: how the name was given, default the section's flag)."""
    close = difflib.get_close_matches(str(name), self._entries, n=3, cutoff=0.5)
    rest = [n for n in sorted(self._entries) if n not in close]
    value = f"{name!r}" if isinstance(name, str) else repr(name)
    listing = ", ".join(close + rest)
    hint = f"did you mean {' or '.join(close)}? registered: {listing}" if close else f"registered: {listing}"
    where = where or (f"{self.flag}={value}" if self.section else f"{self.kind} {value}")
    return f"{where}: no such {self.kind}; {hint}"

  def __contains__(self, name) -> bool:
    return name in self._entries

  def __iter__(self):
    return iter(self.names())

  def names(self, pattern: str = "*") -> list[str]:
    return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

  def entries(self) -> list[Entry]:
    return [self._entries[n] for n in self.names()]


def _settings(registry: Registry, name: str, raw: dict) -> dict[str, Setting]:
  out = {}
  for key, value in raw.items():
    s = value if isinstance(value, Setting) else setting(value)
    if not isinstance(key, str) or not key.isidentifier():
      raise RegistryError(f"{registry.kind} {name!r}: setting name {key!r} is not an identifier")
    if key in registry.reserved:
      raise RegistryError(f"{registry.kind} {name!r}: {key!r} is a field of config.{registry.section} itself; "
                          "give the setting another name")
    if isinstance(s.default, list):
      s = dataclasses.replace(s, default=tuple(s.default))
    if not isinstance(s.default, (bool, int, float, str, tuple)):
      raise RegistryError(f"{registry.kind} {name!r}: setting {key!r} has a default of type "
                          f"{type(s.default).__name__}; a config field holds a bool, int, float, str or tuple")
    bad = s.problem(s.default)
    if bad:
      raise RegistryError(f"{registry.kind} {name!r}: the default {s.default!r} of setting {key!r}: {bad}")
    out[key] = s
  return out


def _flag(path: str, value) -> str:
  return f"--config.{path}={value!r}" if isinstance(value, str) else f"--config.{path}={value}"


def resolve_section(config, section: str, registries, own) -> None:
  """Fills config[section] with the settings of the components its fields choose (each registry's
  `key`: data.name, data.augment), their defaults where it does not set them, then checks it: a
  field that is neither one of the section's `own` nor a chosen component's setting, or a setting
  of the wrong type or out of its bounds, is a ConfigError of one line. A setting of another
  component of these kinds at its default (filled in before the config turned to another
  component) is dropped."""
  d = config[section]
  chosen = []
  for registry in registries:
    if registry.key not in d:
      raise ConfigError(f"config.{section} has no field {registry.key!r}: every config builds on configs/base.py")
    chosen.append((registry, registry.get(d[registry.key])))
  with d.unlocked():
    for _, entry in chosen:
      for key, s in entry.settings.items():
        if key not in d:
          d[key] = s.default
  allowed = set(own).union(*(e.settings for _, e in chosen))
  for key in list(d.keys()):
    if key not in allowed:
      if _inert(registries, key, d[key]):  # another component's setting at its default: left over from a switch
        with d.unlocked():
          del d[key]
        continue
      raise ConfigError(not_a_setting(section, key, chosen, own))
  for _, entry in chosen:
    for key, s in entry.settings.items():
      value = d[key]
      if isinstance(s.default, tuple) and isinstance(value, list):
        with d.unlocked():
          d[key] = value = tuple(value)
      bad = s.problem(value)
      if bad:
        raise ConfigError(f"{_flag(f'{section}.{key}', value)}: {bad}")


def _inert(registries, key: str, value) -> bool:
  """Whether `value` is the default of setting `key` of a registered component of these kinds: what
  resolving a config filled in for a component the config has since turned away from."""
  for registry in registries:
    for entry in registry.entries() + ([registry.fallback] if registry.fallback is not None else []):
      s = entry.settings.get(key)
      if s is not None and type(value) is type(s.default) and value == s.default:
        return True
  return False


def not_a_setting(section: str, key: str, chosen, own, flag: str = "") -> str:
  """The line for a field of config[section] that no chosen component takes (`flag`: how the
  field was given, default --config.SECTION.KEY)."""
  settings = sorted(set(own).union(*(e.settings for _, e in chosen)))
  close = difflib.get_close_matches(key, settings, n=1, cutoff=0.6)
  line = f"{flag or f'--config.{section}.{key}'}: no such config field {key!r}"
  if close:
    return f"{line}; did you mean {close[0]!r}?"
  owners = [f"{r.kind} {n!r}" for r, _ in chosen for n in r.names() if key in r.get(n).settings]
  takes = "; ".join(f"{r.kind} {e.name!r} takes {', '.join(sorted(e.settings)) or 'no settings'}" for r, e in chosen)
  return f"{line} for {', '.join(f'{r.kind} {e.name!r}' for r, e in chosen)}" + (
      f" (a setting of {', '.join(owners[:3])})" if owners else "") + f"; {takes}"
