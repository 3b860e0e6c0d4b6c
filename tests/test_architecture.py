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


def test_no_module_of_cnnzoo_imports_itself_back():
  """No import circle anywhere in the package, inside a floor too (the layers contract only sees
  imports between floors): the strongly connected components of grimp's import graph are single modules."""
  import grimp
  graph = grimp.build_graph("cnnzoo")
  edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
  index, low, stack, on_stack, circles = {}, {}, [], set(), []

  def visit(v):  # Tarjan's strongly connected components
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in edges[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while not component or component[-1] != v:
        component.append(stack.pop())
        on_stack.discard(component[-1])
      if len(component) > 1:
        circles.append(sorted(component))

  for module in sorted(graph.modules):
    if module not in index:
      visit(module)
  assert circles == [] and len(edges) > 60, circles
