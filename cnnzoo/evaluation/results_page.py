"""RESULTS.md's text from what cnnzoo.evaluation.journal found: the journal's table, the runs on
real data beside their published figures, the tools' fragments, what is not reproducible and what
is not run here (with what each needs). Plots are copied beside the page so that its links hold."""

import datetime
import os

from cnnzoo.evaluation.journal import JournalRun, spec_key
from cnnzoo.evaluation import overview


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
