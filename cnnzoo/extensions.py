"""A user's own modules: `config.imports` (module names) imported before anything is built, from
`config.import_dirs` (folders put on the Python path: the entry points record the config file's
own folder there), so a run trained with a component of one's own is evaluated, resumed and
used for predictions with no extra flag. Nothing here imports JAX."""

import importlib
import os
import sys

from cnnzoo.errors import ConfigError, UserError


def import_modules(modules, dirs=(), where: str = "config.imports") -> list[str]:
  """Puts each folder of `dirs` at the end of sys.path (cnnzoo's and the installed packages' names
  come first), then imports `modules`; returns the modules. A module that cannot be imported is
  one ConfigError naming it; a registration it makes that cannot be taken (a clash with a
  registered name) is its own one-line error."""
  modules, dirs = _names(modules, where), _names(dirs, where.replace("imports", "import_dirs"))
  for i, name in enumerate(modules):  # a file, `path/to/my_parts.py`: its folder, then its name
    if name.endswith(".py") or os.sep in name:
      path = os.path.abspath(name)
      if not os.path.isfile(path):
        raise ConfigError(f"{where}: {name} is not a file")
      dirs.append(os.path.dirname(path))
      modules[i] = os.path.splitext(os.path.basename(path))[0]
  for folder in dirs:
    if not os.path.isdir(folder):
      raise ConfigError(f"{where}: the folder {folder} of config.import_dirs does not exist (moved or deleted?)")
    if folder not in sys.path:
      sys.path.append(folder)
  for name in modules:
    try:
      importlib.import_module(name)
    except UserError:
      raise
    except ModuleNotFoundError as e:
      looked = f" (looked in {', '.join(dirs)} and the Python path)" if dirs else ""
      missing = f"it imports {e.name!r}, which is not installed" if e.name and e.name != name and not \
          name.startswith(e.name + ".") else "no such module"
      raise ConfigError(f"{where}: cannot import {name!r}: {missing}{looked}") from None
    except Exception as e:  # noqa: BLE001 -- the user's module failed at import: its own error, named
      line = " ".join(str(e).split())[:200]
      raise ConfigError(f"{where}: importing {name!r} failed: {type(e).__name__}: {line}") from None
  return modules


def _names(value, where: str) -> list[str]:
  if isinstance(value, str):
    value = (value,) if value else ()
  if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) and v for v in value):
    raise ConfigError(f"{where}={value!r}: expected a tuple of names")
  return list(value)
