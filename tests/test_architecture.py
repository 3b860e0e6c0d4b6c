"""cnnzoo's floors (../shared/ARCHITECTURE.md, pyproject.toml's import-linter contract): every
import, at a module's top or inside a function, points down; no circles."""

import os
import subprocess
import sys
import tomllib

from conftest import ROOT


def test_the_layers_contract_holds():
  lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
  result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
  assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_every_module_of_cnnzoo_is_on_a_floor():
  """A new module or package must be given its floor in the contract, or it escapes the check."""
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    contract = tomllib.load(f)["tool"]["importlinter"]["contracts"][0]
  floors = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
  here = os.path.join(ROOT, "cnnzoo")
  modules = {os.path.splitext(n)[0] for n in os.listdir(here)
             if (n.endswith(".py") and n != "__init__.py") or os.path.isfile(os.path.join(here, n, "__init__.py"))}
  assert modules == floors, (sorted(modules - floors), sorted(floors - modules))


def test_no_module_of_cnnzoo_is_longer_than_350_lines():
  long = {}
  for folder, _, names in os.walk(os.path.join(ROOT, "cnnzoo")):
    for name in names:
      if name.endswith(".py"):
        with open(os.path.join(folder, name)) as f:
          lines = sum(1 for _ in f)
        if lines > 350:
          long[os.path.relpath(os.path.join(folder, name), ROOT)] = lines
  assert not long, long
