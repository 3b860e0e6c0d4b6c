"""RESULTS.md from run directories: the journal's figures beside ours (cnnzoo/evaluation/journal.py).

  python -m experiments.results                    # the runs below ./runs -> RESULTS.md
  python -m experiments.results runs/ more_runs/ --out=RESULTS.md

One row per journal run a config reproduces (`python -m experiments.main --list_configs`): the
seed's figure and seed note, ours from the newest run of that config (the last epoch's
val_accuracy or the test accuracy, as the journal reports it), epochs (and whether the run was
shortened), wall time, hardware and the history plot (copied to --plots, beside the file).
Journal runs not run yet are listed with their command and what they need. Configs beside a
published figure on real data (configs/fashion_mnist.py) get the section "Reproduced on real data
here": every seed run, mean +- std, ensembles against their best member.
"""

import glob
import os

from absl import flags

from cnnzoo import cli

_OUT = flags.DEFINE_string("out", "RESULTS.md", "The Markdown file to write.")
_PLOTS = flags.DEFINE_string("plots", "results", "Folder (beside --out) the runs' history.png files are copied to.")


def main(argv):
  roots = argv[1:] or ["runs"]
  missing = [r for r in roots if not os.path.isdir(r)]
  if missing and argv[1:]:
    cli.fail(f"{missing[0]}: no such directory")
  roots = [r for r in roots if os.path.isdir(r)]
  if not _OUT.value.lower().endswith(".md"):
    cli.fail(f"--out={_OUT.value}: give a .md file name")
  out_dir = os.path.dirname(os.path.abspath(_OUT.value))
  if not os.path.isdir(out_dir):
    cli.fail(f"--out={_OUT.value}: the folder {out_dir} does not exist")
  from cnnzoo import paths
  from cnnzoo.evaluation import journal, results_page
  here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
  runs = journal.journal_runs(here)
  ours = journal.find_ours(roots)
  plots = results_page.copy_plots(runs, ours, os.path.join(out_dir, _PLOTS.value))
  real = journal.find_real(roots, runs)
  real_plots = results_page.copy_real_plots(real[0], os.path.join(out_dir, _PLOTS.value))
  tools = sorted(glob.glob(os.path.join(out_dir, _PLOTS.value, "*", "tools.md")))
  text = results_page.render(runs, ours, out_dir, roots or ["runs"], plots, real, real_plots, tools)
  with paths.atomic(_OUT.value, ".tmp.md") as tmp, open(tmp, "w") as f:
    f.write(text)
  print(f"{_OUT.value}: {len(runs)} journal runs, {sum(1 for r in runs if journal.spec_key(r.config) in ours)} "
        f"with a run of ours (from {', '.join(roots) or 'no run directory'})")


if __name__ == "__main__":
  cli.run(main, positional=True)
