"""The config file of a command: the --config.FIELD=VALUE overrides taken off its command line
(cnnzoo applies them, names first, once the config's own modules are imported), the checks on what
the file's get_config() returned, and the --imports flag of the commands without a config. Every
mistake is a UserError of one line; nothing is written."""

import os
import re

from absl import flags

from cnnzoo.errors import UserError


def last_line(text) -> str:
  """The actual complaint at the end of a nested error report, without its exception class."""
  lines = [line.strip() for line in str(text).splitlines() if line.strip()]
  line = lines[-1] if lines else str(text)
  return re.sub(r"^[\w.]*(Error|Exception): ", "", line)


# the --config.FIELD=VALUE overrides of this command line, applied by `load_config` (not by
# ml_collections: a component's settings exist once its name is known)
OVERRIDES: list[tuple[str, str]] = []


def split_overrides(argv) -> tuple[list[str], list[tuple[str, str]]]:
  """(argv without its --config.FIELD=VALUE flags, [(FIELD, VALUE), ...] in their order)."""
  rest, overrides, i = [], [], 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config.") and i > 0:
      key, sep, value = arg[len("--config."):].partition("=")
      if not sep:  # --config.FIELD VALUE, as absl takes it
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
          value, i = argv[i + 1], i + 1
        else:
          value = "true"  # --config.FLAG for a boolean
      overrides.append((key, value))
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def check_config(config_flag, reference=None) -> None:
  """Touches a config flag's value: a config file that failed to load, whose get_config() returned
  something else than a ConfigDict, or (given the `reference` config every config file builds on,
  configs/base.py) one that lacks a field of it, is reported in one line."""
  from ml_collections import ConfigDict
  try:
    value = config_flag.value
  except Exception as e:  # noqa: BLE001 -- a missing file, or the file's get_config() raised
    raise UserError(f"cannot load the config: {type(e).__name__}: {last_line(e)}") from None
  if not isinstance(value, ConfigDict):
    raise UserError(f"cannot load the config: get_config() returned {type(value).__name__}, not an "
                    "ml_collections ConfigDict (start from configs/base.py's get_config())")
  missing = _missing_fields(value, reference) if reference is not None else []
  if missing:
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    raise UserError(f"cannot load the config: it lacks the field(s) {', '.join(missing[:3])}{more} of "
                    "configs/base.py; build it on base.get_config() (as every file in configs/ does)")


def load_config(config_flag, reference=None):
  """The config of `--config=FILE[:ARG]` (checked as check_config does) with this command's
  modules imported (config.imports, from config.import_dirs, which gains the config file's own
  folder) and its --config.FIELD=VALUE overrides applied; its components filled in and checked.
  Every mistake is a UserError of one line; nothing is written."""
  check_config(config_flag, reference)
  from ml_collections import config_flags
  from cnnzoo import extensions
  config = config_flag.value
  path = config_flags.get_config_filename(flags.FLAGS[config_flag.name])
  folder = os.path.dirname(os.path.abspath(path))
  early = [(k, v) for k, v in OVERRIDES if k in ("imports", "import_dirs")]
  with config.unlocked():
    for key, value in early:
      config[key] = tuple(n.strip() for n in value.strip("()[]").replace("'", "").replace('"', "").split(",")
                          if n.strip())
    dirs = [d if os.path.isabs(d) else os.path.join(folder, d) for d in config.get("import_dirs", ())]
    config.import_dirs = tuple(dict.fromkeys([folder, *dirs])) if config.get("imports") else tuple(dirs)
  extensions.import_modules(config.imports, config.import_dirs)
  from cnnzoo.training import components  # lazy: JAX, once the user's modules are in
  components.apply_overrides(config, [(k, v) for k, v in OVERRIDES if (k, v) not in early])
  return config


def resume_command(args: list[str]) -> str:
  """The command line that continues a run of experiments.main: its own flags without
  --resume_epoch / --init_from (run once) and the multi-host flags (each process has its own)."""
  import shlex
  once = ("--resume_epoch", "--init_from", "--coordinator_address", "--num_processes", "--process_id")
  kept = [a for a in args if not a.split("=", 1)[0] in once]
  return shlex.join(["python", "-m", "experiments.main", *kept])


def define_imports():
  """The --imports flag of the commands that name a model without a run (summarize, and predict /
  extract_features with --keras_weights)."""
  return flags.DEFINE_list("imports", [], "Modules (or .py files) of one's own to import first: components "
                           "registered with @cnnzoo.register_model, ... (docs/extending.md).")


def import_own(imports_flag) -> None:
  """Imports the modules of an --imports flag; one line when one cannot be imported."""
  from cnnzoo import extensions
  extensions.import_modules(tuple(imports_flag.value or ()), where="--imports")


def _missing_fields(value, reference, prefix="config") -> list[str]:
  """Dotted names of the fields of `reference` (a ConfigDict) that `value` lacks."""
  missing = []
  for key, ref in reference.items():
    if key not in value:
      missing.append(f"{prefix}.{key}")
    elif hasattr(ref, "items") and hasattr(value[key], "items"):
      missing += _missing_fields(value[key], ref, f"{prefix}.{key}")
  return missing
