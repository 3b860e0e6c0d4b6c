"""The commands the README and docs/ show still parse: each `python -m experiments.X ...` line of a
bash block names an entry point that exists, flags that entry point defines, config files and
variants that exist and `--config.FIELD` paths that configs/base.py has."""

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


def has_field(config, dotted: str) -> bool:
  node = config
  for part in dotted.split("."):
    if not hasattr(node, "keys") or part not in node:
      return False
    node = node[part]
  return True


def test_every_documented_command_parses():
  from configs import base
  reference = base.get_config()
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
        if not has_field(reference, name[len("config."):]):
          problems.append(f"{where}: {word}: configs/base.py has no field {name[len('config.'):]}")
      elif name == "config" and module == "experiments.main" and "NAME" not in value:
        path, _, args = value.partition(":")
        if not os.path.isfile(os.path.join(ROOT, path)):
          problems.append(f"{where}: {word}: no such config file")
          continue
        variants = getattr(importlib.import_module(f"configs.{os.path.basename(path)[:-3]}"), "VARIANTS", ())
        bad = [a for a in args.split(",") if a and a not in (*variants, "smoke", "ARG", "VARIANT")]
        if bad:
          problems.append(f"{where}: {word}: {path} has no variant {bad}")
      elif name.removeprefix("no") not in known and name not in known:
        problems.append(f"{where}: {module} has no flag --{name}")
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
