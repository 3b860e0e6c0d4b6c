"""A finished (or interrupted) run rebuilt from its workdir: its config.json, its model and data,
and the weights of a chosen checkpoint -- what evaluation, prediction and feature extraction start
from."""

import os

from cnnzoo import numbers
from cnnzoo.errors import UserError
from cnnzoo.training import loop, resume
from cnnzoo.training import workdir as workdir_lib
from cnnzoo.training.checkpoint import Checkpointer


def choose_epoch(ckpt, spec: str, workdir: str) -> int:
  """The checkpoint `spec` names: best (by the run's checkpoint.best_metric), latest, or N."""
  epochs = ckpt.epochs()
  if not epochs:
    raise UserError(f"{workdir} has no checkpoints to evaluate")
  if spec == "latest":
    return epochs[-1]
  if spec == "best":
    best = ckpt.best_epoch()
    return best if best is not None else epochs[-1]  # no best_metric: the newest is the one there is
  if not numbers.is_count(spec):
    raise UserError(f"--checkpoint={spec}: expected best, latest or an epoch number")
  if int(spec) not in epochs:
    raise UserError(f"--checkpoint={spec}: no such checkpoint in {workdir} (epochs on disk: {epochs})")
  return int(spec)


def restore_run(workdir: str, checkpoint: str = "best"):
  """(config, run, state, epoch): the run in `workdir` rebuilt from its config.json (model, data,
  views) with the weights of `checkpoint` (best | latest | an epoch)."""
  config = workdir_lib.read_config(workdir)
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise UserError(f"{workdir} has no checkpoints directory")
  ck = config.checkpoint
  ckpt = Checkpointer(directory, read_only=True, best_metric=ck.best_metric or None, best_mode=ck.best_mode)
  try:
    epoch = choose_epoch(ckpt, checkpoint, workdir)
    run = loop.build(config)
    state, _ = resume.restore(run, ckpt, epoch)
  finally:
    ckpt.close()
  return config, run, state, epoch
