"""RESULTS.md: the journal's figures beside ours, generated from run directories so it cannot drift.

One row per journal run a config reproduces (every configs/NAME.py and each `:ARG` in its
VARIANTS, read from their `journal` fields). A row's run is the newest run directory whose
status.json names that config (any workdir below the roots given); smoke runs (`:smoke`) never
count. A run is "shortened" when it ran fewer epochs than the config plans (e.g. with
--config.num_epochs), and said so. A journal run with no run directory names what it needs (the
dataset, the weights) and the command.

Configs that stand beside a published figure on real data (`reference.figure`, e.g.
configs/fashion_mnist.py) get their own section, "Reproduced on real data here": every finished
run of each (all seeds, an ensemble's members), its test accuracy, best epoch, wall time,
images/s, hardware and curves, and per config the mean +- std over seeds and the ensemble's own
accuracy beside its best member's.
"""

import dataclasses
import glob
import json
import os
import sys

from cnnzoo.evaluation import overview
from cnnzoo.training import components


@dataclasses.dataclass
class JournalRun:
  config: str  # configs/NAME.py[:ARG]
  model: str
  run: str
  seed: str
  metric: str
  figure: float
  data: str  # the tfds name, digits, synthetic, or hdf5:DIR
  data_dir: str
  how_to_get: str
  epochs: int
  features: bool
  reference_figure: float = 0.0  # a published test accuracy on the same data (reference.figure)
  reference_source: str = ""
  members: int = 0  # ensemble.members
  recipe: dict = dataclasses.field(default_factory=dict, repr=False)  # the config as config.json holds it
  defaults: dict = dataclasses.field(default_factory=dict, repr=False)  # configs/base.py's, as JSON
  recipe_source: str = ""  # journal.recipe: journal | journal + book | our choice: why


def journal_runs(configs_dir: str) -> list[JournalRun]:
  """Every journal run of the config files in `configs_dir`. A file that fails to load (a work in
  progress with a NameError, a broken variant) is named on stderr in one line, and the others are
  listed."""
  import importlib
  out = []
  defaults = json.loads(importlib.import_module("configs.base").get_config().to_json_best_effort())
  for path in sorted(glob.glob(os.path.join(configs_dir, "*.py"))):
    name = os.path.splitext(os.path.basename(path))[0]
    if name in ("__init__", "base"):
      continue
    try:
      out += _runs_of(path, name, defaults)
    except Exception as e:  # noqa: BLE001 -- the user's config file: named, the listing goes on
      line = " ".join(str(e).split())[:200]
      print(f"warning: {os.path.relpath(path)} left out: it fails to load ({type(e).__name__}: {line})",
            file=sys.stderr, flush=True)
  return out


def _runs_of(path: str, name: str, defaults: dict) -> list[JournalRun]:
  """The journal runs of one config file (its default and each of its VARIANTS)."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(f"configs.{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  out = []
  for arg in (None, *getattr(module, "VARIANTS", ())):
    c = module.get_config(arg)
    components.resolve(c)  # its components' settings, as its runs' config.json hold them
    data = f"hdf5:{c.data.dir}" if c.data.name == "hdf5" else c.data.name
    out.append(JournalRun(f"configs/{name}.py" + (f":{arg}" if arg else ""), c.model.name, c.journal.run,
                          c.journal.seed, c.journal.metric, float(c.journal.figure), data, c.data.get("dir", ""),
                          c.data.how_to_get, int(c.num_epochs), bool(c.features.use),
                          float(c.reference.figure), str(c.reference.source), int(c.ensemble.members),
                          json.loads(c.to_json_best_effort()), defaults, str(c.journal.recipe)))
  return out


def spec_key(spec: str) -> tuple[str, frozenset] | None:
  """("NAME", {ARGS}) of a config spec such as configs/x.py:noaug or /abs/configs/x.py; None for smoke
  (and for what is not a spec: a hand-edited status.json's number)."""
  if not isinstance(spec, str):
    return None
  path, _, args = spec.partition(":")
  words = frozenset(w for w in args.split(",") if w)
  if "smoke" in words or not path.endswith(".py"):
    return None
  return os.path.splitext(os.path.basename(path))[0], words


@dataclasses.dataclass
class Ours:
  path: str
  value: float | None
  best: float | None
  epochs: int
  planned: int
  seconds: float
  hardware: str
  state: str
  command: str
  plot: str | None


def _read(path: str) -> dict | None:
  """A run's JSON file as a dict; None when it is missing, unreadable, or hand-edited into
  something else than a JSON object (the run is then left out, as an unfinished one is)."""
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, ValueError):
    return None
  return value if isinstance(value, dict) else None


def find_ours(roots: list[str]) -> dict:
  """{(NAME, ARGS): Ours} of the newest run of each config below `roots`."""
  found = {}
  for root in roots:
    for directory in overview.find_runs(root):
      status = _read(os.path.join(directory, overview.STATUS_NAME)) or {}
      key = spec_key(status.get("config", ""))
      if key is None:
        continue
      row = overview.describe(directory)
      if row.state == "unreadable":  # hand-edited or damaged files: `experiments.runs` says which
        continue
      results = _read(os.path.join(directory, "results.json")) or {}
      config = _read(os.path.join(directory, "config.json")) or {}
      metric = config.get("journal", {}).get("metric", "val_accuracy")
      last = row.history[-1] if row.history else {}
      value = results.get("test_accuracy") if metric == "test_accuracy" else last.get("val_accuracy")
      plot = os.path.join(directory, "history.png")
      mtime = os.path.getmtime(os.path.join(directory, overview.STATUS_NAME))
      ours = Ours(directory, value, row.best_val_accuracy if metric == "val_accuracy" else None, row.epochs,
                  row.planned, results.get("seconds") or row.seconds, results.get("hardware", "-"), row.state,
                  status.get("command", ""), plot if os.path.exists(plot) else None)
      if key not in found or mtime > found[key][0]:
        found[key] = (mtime, ours)
  return {k: v for k, (_, v) in found.items()}


@dataclasses.dataclass
class RealRun:
  """One finished run of a config with a published reference figure."""
  path: str
  seed: int
  test_accuracy: float
  best_epoch: int | None
  epochs: int
  planned: int
  seconds: float
  img_per_sec: float | None  # the median epoch's training images per second
  hardware: str
  plot: str | None


# Command-line overrides that leave a run the config's recipe (where it runs, what it shows, its seed)
SAME_RECIPE = ("--workdir=", "--config=", "--config.seed=", "--config.monitor.", "--config.data.dir=",
               "--config.data.prefetch=", "--config.checkpoint.", "--config.steps_per_dispatch=")


def recipe_view(config: dict) -> dict:
  """A config.json's content without what leaves the recipe the same (SAME_RECIPE's fields, the
  ensemble's member count, the journal's and reference's words)."""
  view = {k: v for k, v in config.items() if k not in ("seed", "monitor", "checkpoint", "steps_per_dispatch",
                                                        "ensemble", "journal", "reference", "import_dirs")}
  if isinstance(view.get("data"), dict):
    view["data"] = {k: v for k, v in view["data"].items() if k not in ("dir", "prefetch")}
  return view


_ABSENT = object()


def same_config(run: dict, now: dict, defaults: dict) -> bool:
  """Whether a run's config.json (`run`) holds the recipe `now` holds. A field the run lacks was
  added to cnnzoo after it trained: it counts as its default (`defaults`, configs/base.py's), so
  the run still matches unless the config now sets that field to something else."""
  if not (isinstance(run, dict) and isinstance(now, dict)):
    return run == now
  defaults = defaults if isinstance(defaults, dict) else {}
  for key in run.keys() | now.keys():
    if key not in now:
      return False
    if key not in run:
      if now[key] != defaults.get(key, _ABSENT):
        return False
    elif not same_config(run[key], now[key], defaults.get(key)):
      return False
  return True


def same_recipe(command: str) -> bool:
  """Whether a run's command line trains its config's recipe: no --resume_epoch / --init_from with
  new settings, no override beyond SAME_RECIPE (those runs are experiments of their own)."""
  words = command.split()
  flags = [w for w in words[words.index("experiments.main") + 1:]] if "experiments.main" in words else []
  return all(w.startswith(SAME_RECIPE) for w in flags)


def find_real(roots: list[str], journal: list[JournalRun]) -> tuple[dict, dict]:
  """({(NAME, ARGS): [RealRun, ...]} of every finished, tested run below `roots` of the configs in
  `journal` with a reference figure that trained its config's recipe (`same_recipe`), one a seed;
  {(NAME, ARGS): evaluation.json} of each such ensemble's ensemble_eval_test)."""
  wanted = {spec_key(j.config): j for j in journal if j.reference_figure}
  import statistics
  runs, ensembles = {}, {}
  for root in roots:
    for directory in overview.find_runs(root):
      status = _read(os.path.join(directory, overview.STATUS_NAME)) or {}
      if not isinstance(status, dict) or not same_recipe(str(status.get("command", ""))):
        continue
      key = spec_key(status.get("config", ""))
      results = _read(os.path.join(directory, "results.json"))
      if key not in wanted or not isinstance(results, dict) or not isinstance(results.get("test_accuracy"), (int, float)):
        continue
      config = _read(os.path.join(directory, "config.json")) or {}
      changed = glob.glob(os.path.join(directory, "config.until_epoch*.json"))  # resumed with new settings
      if changed or not isinstance(config, dict) or not same_config(
          recipe_view(config), recipe_view(wanted[key].recipe), recipe_view(wanted[key].defaults)):
        continue  # another recipe: an older version of the config, or a run resumed with new settings
      row = overview.describe(directory)
      if row.state == "unreadable":
        continue
      speeds = [h["img_per_sec"] for h in row.history if isinstance(h.get("img_per_sec"), (int, float))]
      plot = os.path.join(directory, "history.png")
      runs.setdefault(key, []).append(RealRun(
          directory, int(config.get("seed", 0)), float(results["test_accuracy"]), results.get("best_epoch"),
          row.epochs, row.planned, row.seconds, statistics.median(speeds) if speeds else None,
          results.get("hardware", "-"), plot if os.path.exists(plot) else None))
      parent = os.path.dirname(directory)
      evaluation = _read(os.path.join(parent, "ensemble_eval_test", "evaluation.json"))
      if os.path.basename(directory).startswith("member_") and isinstance(evaluation, dict):
        ensembles[key] = {**evaluation, "path": os.path.join(parent, "ensemble_eval_test")}
  for key in runs:  # one run a seed: the newest
    newest = {}
    for r in sorted(runs[key], key=lambda r: os.path.getmtime(os.path.join(r.path, overview.STATUS_NAME))):
      newest[r.seed] = r
    runs[key] = [newest[s] for s in sorted(newest)]
  return runs, ensembles


def list_configs() -> list[dict]:
  """One row per config of configs/ (and per journal variant a config names in `VARIANTS`), read
  from the configs' own fields (experiments.main --list_configs)."""
  here = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")
  return [{"config": j.config, "model": j.model,
           "data": f"hdf5:{os.path.basename(j.data_dir.rstrip('/'))}" if j.data.startswith("hdf5:") else j.data,
           "run": j.run, "seed": j.seed,
           "figure": f"{j.metric} {j.figure:.4g}" if j.figure else (
               f"published {j.reference_figure:.3f}" if j.reference_figure else "none reported")}
          for j in journal_runs(here)]


def print_configs() -> None:
  rows = list_configs()
  heads = {"config": "config", "model": "model", "data": "data", "run": "journal run", "seed": "seed note",
           "figure": "seed's (or a published) figure"}
  widths = {k: max(len(h), *(len(r[k]) for r in rows)) for k, h in heads.items()}
  for row in [heads, *rows]:
    print("  ".join(row[k].ljust(widths[k]) for k in heads).rstrip())
  print("\nrun one: python -m experiments.main --config=CONFIG   (add :smoke for a seconds-long check)")
