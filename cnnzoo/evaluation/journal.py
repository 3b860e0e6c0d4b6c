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
import datetime
import glob
import json
import os

from cnnzoo.training import overview


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
  """Every journal run of the config files in `configs_dir`."""
  import importlib
  out = []
  defaults = json.loads(importlib.import_module("configs.base").get_config().to_json_best_effort())
  for path in sorted(glob.glob(os.path.join(configs_dir, "*.py"))):
    name = os.path.splitext(os.path.basename(path))[0]
    if name in ("__init__", "base"):
      continue
    module = importlib.import_module(f"configs.{name}")
    for arg in (None, *getattr(module, "VARIANTS", ())):
      c = module.get_config(arg)
      data = f"hdf5:{c.data.dir}" if c.data.name == "hdf5" else c.data.name
      out.append(JournalRun(f"configs/{name}.py" + (f":{arg}" if arg else ""), c.model.name, c.journal.run,
                            c.journal.seed, c.journal.metric, float(c.journal.figure), data, c.data.dir,
                            c.data.how_to_get, int(c.num_epochs), bool(c.features.use),
                            float(c.reference.figure), str(c.reference.source), int(c.ensemble.members),
                            json.loads(c.to_json_best_effort()), defaults, str(c.journal.recipe)))
  return out


def spec_key(spec: str) -> tuple[str, frozenset] | None:
  """("NAME", {ARGS}) of a config spec such as configs/x.py:noaug or /abs/configs/x.py; None for smoke."""
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
                                                        "ensemble", "journal", "reference")}
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


def copy_real_plots(real: dict, plots_dir: str) -> dict:
  """Copies each real-data run's history.png to PLOTS_DIR/NAME[-ARG]-seedK.png; {run path: copy}."""
  import shutil
  copied = {}
  for (name, args), rows in real.items():
    for r in rows:
      if r.plot:
        os.makedirs(plots_dir, exist_ok=True)
        target = os.path.join(plots_dir, "-".join([name, *sorted(args), f"seed{r.seed}"]) + ".png")
        shutil.copyfile(r.plot, target)
        copied[r.path] = target
  return copied


def mean_std(values) -> str:
  """"0.9312 +- 0.0021 (n=3)": the sample standard deviation (n - 1); one value alone as itself."""
  import statistics
  if len(values) == 1:
    return f"{values[0]:.4f} (n=1)"
  return f"{statistics.mean(values):.4f} +- {statistics.stdev(values):.4f} (n={len(values)})"


def render_real(journal: list[JournalRun], real: dict, ensembles: dict, out_dir: str, plots: dict | None = None):
  """The "Reproduced on real data here" section's lines."""
  refs = [j for j in journal if j.reference_figure]
  if not refs:
    return []
  lines = ["", "## Reproduced on real data here", "",
           "Configs that stand beside a published figure on the same dataset (their docstrings give the recipe and",
           "the source). Test accuracy is the last epoch's on the official test split (no epoch or weight chosen on",
           "it); mean +- sample std over the seeds run here; images/s is the median epoch's training throughput.",
           "Wall times and images/s are as measured, beside whatever else the machine ran then.", "",
           "| run | config | recipe | published | ours: test accuracy | runs (seeds) | ensemble |",
           "|---|---|---|---|---|---|---|"]
  details = []
  for j in refs:
    key = spec_key(j.config)
    rows = real.get(key, [])
    published = f"{j.reference_figure:.3f} ({j.reference_source})"
    if not rows:
      twin = next((e for e in refs if e.members and e.model == j.model and e.config.split(":")[0] ==
                   j.config.split(":")[0] and real.get(spec_key(e.config))), None)  # its ensemble's members
      mark = f"see `{twin.config}`: its members are this recipe's seeds" if twin else "not run here"
      lines.append(f"| {j.run} | `{j.config}` | {j.recipe_source} | {published} | {mark} | - | - |")
      continue
    shortened = [r for r in rows if r.epochs < j.epochs]
    ours = mean_std([r.test_accuracy for r in rows]) + (" (shortened)" if shortened else "")
    ensemble = "-"
    if key in ensembles:
      best = max(rows, key=lambda r: r.test_accuracy)
      ensemble = (f"{float(ensembles[key].get('rank1', float('nan'))):.4f} "
                  f"(best member {best.test_accuracy:.4f}, seed {best.seed})")
    lines.append(f"| {j.run} | `{j.config}` | {j.recipe_source} | {published} | {ours} | {len(rows)} "
                 f"({', '.join(str(r.seed) for r in rows)}) | {ensemble} |")
    for r in rows:
      shown = (plots or {}).get(r.path, r.plot)
      plot = f"[history.png]({os.path.relpath(shown, out_dir)})" if shown else "-"
      speed = f"{r.img_per_sec:.0f}" if r.img_per_sec else "-"
      epochs = f"{r.epochs} of {j.epochs}, shortened" if r.epochs < j.epochs else str(r.epochs)
      details.append(f"| {j.config} | {r.seed} | {r.test_accuracy:.4f} | {r.best_epoch or '-'} | {epochs} | "
                     f"{overview._duration(r.seconds)} | {speed} | {r.hardware} | {plot} |")
  if details:
    lines += ["", "Each run (`python -m experiments.main --config=CONFIG [--config.seed=K]`; an ensemble's members",
              "are seeds seed, seed+1, ...):", "",
              "| config | seed | test accuracy | best epoch (val) | epochs | wall time | images/s | hardware | curves |",
              "|---|---|---|---|---|---|---|---|---|", *details]
  return lines


def _pct(x):
  return "-" if x is None else f"{x:.4f}"


def copy_plots(journal: list[JournalRun], ours: dict, plots_dir: str) -> dict:
  """Copies each run's history.png to PLOTS_DIR/NAME[-ARG].png (kept with RESULTS.md, where the run
  directories are not); returns {config spec: copied path}."""
  import shutil
  copied = {}
  for j in journal:
    if j.reference_figure:  # copy_real_plots copies each of their runs' plots
      continue
    o = ours.get(spec_key(j.config))
    if o is not None and o.plot:
      os.makedirs(plots_dir, exist_ok=True)
      target = os.path.join(plots_dir, j.config.replace("configs/", "").replace(".py", "").replace(":", "-") + ".png")
      shutil.copyfile(o.plot, target)
      copied[j.config] = target
  return copied


# Runs of the journal that no config can reproduce, with why (RESULTS.md lists them).
NOT_REPRODUCIBLE = (
    ("seed 003 Part 2: the AutoKeras search (Tiny-ImageNet 32x32, score 0.3005; three models searched in "
     "about 12 hours, the best with 26 Conv2D layers)",
     "a neural-architecture search, not a network: its result depends on AutoKeras' search space and random "
     "trials, and the seed gives neither the searched model's layers nor its hyper-parameters; cnnzoo builds "
     "networks, it does not search for them."),
    ("seed 003 Part 1, \"another example of our trainings\" (test accuracy 0.1756)",
     "the seed names no layers for it, only that the Part-1 network came after it with \"changed dropout and "
     "adjusted layer counts\"; the Part-1 network itself is configs/seed003_tiny.py (0.1535)."),
)


def render(journal: list[JournalRun], ours: dict, out_dir: str, roots: list[str], plots: dict | None = None,
           real: tuple[dict, dict] = ({}, {}), real_plots: dict | None = None, tools: list[str] = ()) -> str:
  """RESULTS.md's text; links are relative to `out_dir`; `plots`: copied history plots by config;
  `real`: `find_real`'s runs and ensembles, `real_plots` their copied plots; `tools`: Markdown
  fragments the tools scripts wrote (results/*/tools.md), included as they are."""
  reference = [j for j in journal if j.reference_figure]
  journal = [j for j in journal if not j.reference_figure]
  done = sum(1 for j in journal if spec_key(j.config) in ours)
  lines = [
      "# Results: the journal's figures and ours",
      "",
      f"Generated by `python -m experiments.results {' '.join(roots)}` on "
      f"{datetime.date.today().isoformat()}; rerun it after a run finishes. {len(journal)} journal runs, "
      f"{sum(1 for j in journal if j.figure)} with a figure; {done} run here.",
      "A run counts when its status.json names the config (smoke runs never do); \"shortened\" means it ran fewer",
      "epochs than the config plans. val_accuracy is the last epoch's (the best epoch's in brackets), as the",
      "journal reports it; test_accuracy comes from the run's results.json.",
      "",
      "The recipe column says where a config's hyper-parameters come from: the journal, the journal and the",
      "book code it follows where it is silent, or our choice (and why); each config's docstring has the details.",
      "",
      "| journal run | config | recipe | seed's figure | ours | epochs | wall time (epochs) | hardware | curves |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  pending = []
  for j in journal:
    if j.reference_figure:  # listed in "Reproduced on real data here"
      continue
    figure = f"{j.metric} {j.figure:.4g} (seed {j.seed})" if j.figure else f"none reported (seed {j.seed})"
    o = ours.get(spec_key(j.config))
    if o is None:
      lines.append(f"| {j.run} | `{j.config}` | {j.recipe_source} | {figure} | not run here | - | - | - | - |")
      pending.append(j)
      continue
    value = _pct(o.value) + (f" ({_pct(o.best)})" if o.best is not None and o.best != o.value else "")
    if o.state not in ("finished",):
      value += f" ({o.state})"
    epochs = "features + logistic regression" if j.features else (
        f"{o.epochs} of {o.planned}, shortened" if o.epochs < j.epochs else f"{o.epochs}")
    shown = (plots or {}).get(j.config, o.plot)
    plot = f"[history.png]({os.path.relpath(shown, out_dir)})" if shown else "-"
    lines.append(f"| {j.run} | `{j.config}` | {j.recipe_source} | {figure} | {value} | {epochs} | "
                 f"{overview._duration(o.seconds)} | "
                 f"{o.hardware} | {plot} |")
  lines += render_real(reference, *real, out_dir, real_plots)
  if tools:
    lines += ["", "### The journal's tools on these runs", ""]
    for fragment in tools:
      lines += [f"From `{os.path.relpath(fragment, out_dir)}` (written by the `tools.sh` beside it):", "",
                open(fragment).read().strip(), ""]
  lines += ["", "## Not reproducible", "", "Runs of the journal no config can reproduce, and why:", ""]
  lines += [f"- **{run}**: {why}" for run, why in NOT_REPRODUCIBLE]
  if pending:
    lines += ["", "## Not run here", "",
              "This machine has no GPU and no internet: only scikit-learn's digits and Fashion-MNIST (Debian's",
              "dataset-fashion-mnist) are on hand. Each of these needs its dataset (or weights) first; then the",
              "command runs it and this table picks it up.", ""]
    for j in pending:
      need = j.how_to_get or f"the {j.data} dataset"
      lines.append(f"- **{j.run}**: `python -m experiments.main --config={j.config}`  \n  needs {j.data}: {need}")
  return "\n".join(lines) + "\n"
