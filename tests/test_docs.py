"""The commands the README and docs/ show still parse: each `python -m experiments.X ...` line of a
bash block names an entry point that exists, flags that entry point defines, config files and
variants that exist and `--config.FIELD` paths that the command's config has (its components'
settings included)."""

import glob
import importlib
import os
import re
import shlex

from conftest import ROOT

ABSL_FLAGS = {"help", "helpfull", "verbosity", "v", "logtostderr", "alsologtostderr"}


def commands():
  """(file, command words) of every `python -m experiments.X` line in a ```bash block or inline."""
  found = []
  for path in [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]:
    text = open(path).read()
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S)
             for line in block.replace("\\\n", " ").splitlines()]
    lines += re.findall(r"`(python -m experiments\.[^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    for line in lines:
      line = line.split(" #")[0].strip()
      if "python -m experiments." in line:
        line = line[line.index("python -m experiments."):]
        words = shlex.split(line.replace("[", "").replace("]", "").replace("...", ""))
        found.append((os.path.relpath(path, ROOT), words))
  return found


def defined_flags(module: str) -> set:
  source = open(os.path.join(ROOT, *module.split(".")) + ".py").read()
  return set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source))


def missing_field(words) -> str | None:
  """The line of the first --config.FIELD of an experiments.main command that its config (the
  command's own config file, else configs/base.py) does not have once its components are chosen
  (a dataset's, an optimizer's settings exist once its name is known), or None."""
  from configs import base
  from cnnzoo.errors import ConfigError
  from cnnzoo.training import components
  spec = next((w.split("=", 1)[1] for w in words if w.startswith("--config=")), None)
  config = base.get_config()
  if spec and "NAME" not in spec and os.path.isfile(os.path.join(ROOT, spec.partition(":")[0])):
    path, _, args = spec.partition(":")
    args = ",".join(a for a in args.split(",") if a not in ("ARG", "VARIANT"))
    config = importlib.import_module(f"configs.{os.path.basename(path)[:-3]}").get_config(args or None)
  overrides = [tuple(w[len("--config."):].split("=", 1)) for w in words if w.startswith("--config.") and "=" in w
               and not re.search(r"[A-Z]{3,}", w.split("=", 1)[0])]
  try:
    components.apply_overrides(config, overrides)
  except ConfigError as e:
    return str(e) if "no such config field" in str(e) else None
  return None


def test_every_documented_command_parses():
  found, problems = commands(), []
  assert len(found) >= 45, len(found)  # the README's first hour and the pages' examples
  for where, words in found:
    module = words[2]
    if not os.path.isfile(os.path.join(ROOT, *module.split(".")) + ".py"):
      problems.append(f"{where}: no entry point {module}")
      continue
    known = defined_flags(module) | ABSL_FLAGS
    for word in words[3:]:
      if not word.startswith("--"):
        continue
      name, _, value = word[2:].partition("=")
      if re.search(r"[A-Z]{3,}", name):  # a placeholder: --config.SECTION.FIELD
        continue
      if name.startswith("config.") and module == "experiments.main":
        continue  # checked below, with the command's config and its components
      elif name == "config" and module == "experiments.main" and "NAME" not in value:
        path, _, args = value.partition(":")
        if path.startswith("/path/to/"):  # a config of one's own (docs/extending.md; tests/test_extending.py runs it)
          continue
        if not os.path.isfile(os.path.join(ROOT, path)):
          problems.append(f"{where}: {word}: no such config file")
          continue
        variants = getattr(importlib.import_module(f"configs.{os.path.basename(path)[:-3]}"), "VARIANTS", ())
        bad = [a for a in args.split(",") if a and a not in (*variants, "smoke", "ARG", "VARIANT")]
        if bad:
          problems.append(f"{where}: {word}: {path} has no variant {bad}")
      elif name.removeprefix("no") not in known and name not in known:
        problems.append(f"{where}: {module} has no flag --{name}")
    own = any(w.startswith("--config=/path/to/") for w in words)
    if module == "experiments.main" and not own:
      line = missing_field(words)
      if line:
        problems.append(f"{where}: {' '.join(words)}: {line}")
  assert not problems, "\n".join(problems)


def test_the_environment_variables_table_lists_every_variable_cnnzoo_reads():
  """docs/performance.md's table names exactly the CNNZOO_* variables the package reads (the
  suite's own switches live in tests/ and benchmarks/, not in cnnzoo/), at most five."""
  read = set()
  for path in glob.glob(os.path.join(ROOT, "cnnzoo", "**", "*.py"), recursive=True):
    read |= set(re.findall(r"\b(CNNZOO_[A-Z_]+)", open(path).read()))
  table = open(os.path.join(ROOT, "docs", "performance.md")).read().split("## Environment variables")[1]
  documented = set(re.findall(r"^\| `(CNNZOO_[A-Z_]+)` \|", table, re.M))
  assert documented == read and len(read) <= 5, (sorted(read), sorted(documented))
