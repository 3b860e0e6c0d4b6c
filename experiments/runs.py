"""Every run at a glance: one row per run directory, and their curves in one figure.

  python -m experiments.runs                      # the runs below ./runs
  python -m experiments.runs runs/ other_runs/    # several roots, or single run directories
  python -m experiments.runs --match='*decay*' --plot=decay.png

Columns: run, config, model, dataset, epochs done / planned, best val_accuracy and its epoch, test
accuracy, training wall time, and the state: finished, running, interrupted (with the command that
resumes it), diverged (NaN / Inf), damaged checkpoint, or unreadable (not a cnnzoo run, or one
from a cnnzoo that wrote no config.json). --plot overlays the chosen runs' loss, accuracy and
learning rate per epoch (train solid, validation dashed), the way the journal compares schedules.
"""

import fnmatch
import os

from absl import flags

from cnnzoo import cli

_MATCH = flags.DEFINE_string("match", None, "Only the runs whose path (relative to its root) matches this glob.")
_PLOT = flags.DEFINE_string("plot", None, "Also draw the runs' curves into this .png file.")


def main(argv):
  roots = argv[1:] or ["runs"]
  for root in roots:
    if not os.path.isdir(root):
      cli.fail(f"{root}: no such directory" + (" (runs go to runs/<config> when --workdir is not given)"
                                                 if root == "runs" else ""))
  if _PLOT.value is not None:
    if not _PLOT.value.lower().endswith(".png"):
      cli.fail(f"--plot={_PLOT.value}: give a .png file name")
    parent = os.path.dirname(os.path.abspath(_PLOT.value))
    if not os.path.isdir(parent):
      cli.fail(f"--plot={_PLOT.value}: the folder {parent} does not exist")
    if os.path.isdir(_PLOT.value):
      cli.fail(f"--plot={_PLOT.value} is a directory; give a .png file name")
  from cnnzoo.evaluation import overview
  rows = []
  for root in roots:
    found = overview.find_runs(root)
    # paths relative to the root; to its parent where the root is itself a run or one of several
    rel_to = os.path.dirname(os.path.abspath(root)) if len(roots) > 1 or found == [root] else root
    rows += [overview.describe(d, rel_to) for d in found]
  if _MATCH.value:
    rows = [r for r in rows if fnmatch.fnmatch(r.path, _MATCH.value)]
  if not rows:
    cli.fail(f"no run directories in {', '.join(roots)}" + (f" match {_MATCH.value!r}" if _MATCH.value else ""))
  print(overview.format_table(rows))
  if _PLOT.value is not None:
    drawn = [r for r in rows if r.history]
    if not drawn:
      cli.fail("--plot: none of these runs has a history.json yet")
    from cnnzoo import paths
    with paths.atomic(_PLOT.value, ".tmp.png") as tmp:
      overview.plot(drawn, tmp)
    print(f"curves of {len(drawn)} run(s): {_PLOT.value}")


if __name__ == "__main__":
  cli.run(main, positional=True)
