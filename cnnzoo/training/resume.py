"""Where a run goes on from: restoring the newest checkpoint that reads (damaged ones are named and
skipped) or the one --resume_epoch names, and --init_from another run's weights."""

import os

from cnnzoo import numbers, parallel, runtime
from cnnzoo.errors import UserError
from cnnzoo.training import stages
from cnnzoo.training.checkpoint import CheckpointDamagedError, CheckpointMismatchError, Checkpointer


def _data_change(saved: dict, now: dict) -> str | None:
  """What differs between the data a checkpoint was trained on and this config's, or None."""
  changed = [k for k in now if k in saved and saved[k] != now[k]]
  if not changed:
    return None
  k = changed[0]
  if k == "content":
    return ("the splits hold other images or labels (another data.split_seed, data.val_fraction, data source "
            "or files)")
  show = lambda v: (", ".join(map(str, v[:3])) + (", ..." if len(v) > 3 else "")) if isinstance(v, list) else v
  what = {"class_names": "the class names", "sizes": "the split sizes (train, val, test)"}[k]
  return f"{what} were {show(saved[k])}, now {show(now[k])}"


def restore(run, ckpt: Checkpointer, epoch: int):
  meta = ckpt.read_meta(epoch)
  saved = meta.get("identity", {})
  if "data" in saved and "data" in run.identity:
    change = _data_change(saved["data"], run.identity["data"])
    if change:
      raise CheckpointMismatchError(
          f"{ckpt.directory} was trained on other data: {change}; resuming would mix the splits or the classes. "
          "Keep the run's data settings, or start a new run from its weights with --init_from=DIR:EPOCH "
          "and another --workdir")
  without_data = lambda identity: {k: v for k, v in identity.items() if k != "data"}  # (older checkpoints lack it)
  if without_data(saved) != without_data(run.identity):
    raise CheckpointMismatchError(
        f"{ckpt.directory} holds a run of {saved.get('model')!r} ({saved.get('num_classes')} classes, "
        f"input {saved.get('image_shape')}, kwargs {saved.get('kwargs')}), not of this config's "
        f"{run.identity['model']!r} ({run.identity['num_classes']} classes, input "
        f"{run.identity['image_shape']}, kwargs {run.identity['kwargs']}); use another --workdir")
  target = run.state if not run.stages else stages.template(run.state, run.stages, epoch,
                                                                        parallel.replicated(run.mesh))
  tree, meta = ckpt.restore(epoch, target.checkpoint_tree())
  return target.replace(**tree), meta["history"]


def init_from(run, spec: str):
  """Copies params and batch_stats from OTHER_WORKDIR[:EPOCH]; optimizer and step start afresh."""
  path, _, epoch = spec.partition(":")
  directory = os.path.join(path, "checkpoints")
  if not path:
    raise UserError("--init_from is empty: give OTHER_WORKDIR[:EPOCH]")
  if not os.path.isdir(directory):
    raise UserError(f"--init_from={spec}: no checkpoints directory in {path}")
  if epoch and not numbers.is_count(epoch):
    raise UserError(f"--init_from={spec}: the epoch after ':' must be a whole number")
  other = Checkpointer(directory, read_only=True, best_metric=None)
  epochs = other.epochs()
  if not epochs or (epoch and int(epoch) not in epochs):
    raise UserError(f"--init_from={spec}: no such checkpoint; {path} has epochs {epochs}")
  try:
    source = _restore_weights(other, int(epoch) if epoch else epochs[-1], run)
  finally:
    other.close()
  return run.state.replace(**source)


def _restore_weights(other: Checkpointer, epoch: int, run) -> dict:
  ident = other.read_meta(epoch).get("identity", {})
  same = (ident.get("model"), ident.get("num_classes"), ident.get("head")) == (
      run.identity["model"], run.identity["num_classes"], run.identity.get("head"))
  if not same and ident.get("model") == run.identity["model"] and ident.get("head") and run.identity.get("head"):
    # two surgery runs on one base, another head (or class count): the base carries over
    target = {"params": {"base": run.state.params["base"]}}
    if "base" in run.state.batch_stats:
      target["batch_stats"] = {"base": run.state.batch_stats["base"]}
    base = other.restore_weights(epoch, target)
    runtime.warn(f"--init_from: {other.directory}/{epoch} has another head ({ident.get('head')}, {ident.get('num_classes')} "
         "classes): its base is copied, the head starts from this run's initialization")
    return {"params": {**run.state.params, **base["params"]},
            "batch_stats": {**run.state.batch_stats, **base.get("batch_stats", {})}}
  if ident.get("model") == run.identity["model"] and not ident.get("head") and run.identity.get("head"):
    # a plain run into a surgery run (seed 003: the CIFAR network's base under a new head): the
    # layers of the base keep their names in both, the old classifier is left behind
    target = {"params": run.state.params["base"]}
    if run.state.batch_stats.get("base"):
      target["batch_stats"] = run.state.batch_stats["base"]
    base = other.restore_weights(epoch, target)
    runtime.warn(f"--init_from: {other.directory}/{epoch} is a run of the whole {ident.get('model')} ({ident.get('num_classes')} "
         "classes): its layers up to the classifier become the base, the new head starts from this run's initialization")
    return {"params": {**run.state.params, "base": base["params"]},
            "batch_stats": {**run.state.batch_stats, **({"base": base["batch_stats"]} if "batch_stats" in base else {})}}
  if not same:
    raise CheckpointMismatchError(f"{other.directory}/{epoch} holds {ident.get('model')!r} with "
                                  f"{ident.get('num_classes')} classes; this config builds "
                                  f"{run.identity['model']!r} with {run.identity['num_classes']}")
  return other.restore_weights(epoch, {"params": run.state.params, "batch_stats": run.state.batch_stats})


def resume_point(run, ckpt: Checkpointer, resume_epoch: int | None, initial=None):
  """(start epoch, state, history) to go on from: `resume_epoch`'s checkpoint, else the newest one
  that reads (damaged newer ones are named on stderr and skipped), else a fresh start from
  `initial` (default the run's initial state)."""
  for epoch, reason in ckpt.quarantined:
    runtime.warn(f"checkpoint {ckpt.directory}/{epoch} is damaged ({reason}); skipped")
  epochs = ckpt.epochs()
  if resume_epoch is not None:
    if resume_epoch not in epochs:
      raise UserError(f"--resume_epoch={resume_epoch}: no such checkpoint in {ckpt.directory} "
                      f"(epochs on disk: {epochs or 'none'})")
    try:
      return (resume_epoch, *restore(run, ckpt, resume_epoch))
    except CheckpointDamagedError as e:
      good = next((x for x in reversed(epochs) if x != resume_epoch and _readable(run, ckpt, x)), None)
      raise UserError(f"{e}; " + (f"--resume_epoch={good} reads" if good else
                                  "no other checkpoint there reads")) from None
  skipped = []
  for epoch in reversed(epochs):
    try:
      state, history = restore(run, ckpt, epoch)
    except CheckpointDamagedError as e:
      skipped.append(e)
      continue
    for e in skipped:
      runtime.warn(f"{e}; skipped, resuming from epoch {epoch}")
    return epoch, state, history
  if skipped:
    raise UserError(f"no checkpoint in {ckpt.directory} reads (epochs {epochs}; newest: {skipped[0].reason}); "
                    "move the folder away to start afresh, or choose another --workdir")
  return 0, run.state if initial is None else initial, []


def _readable(run, ckpt: Checkpointer, epoch: int) -> bool:
  try:
    restore(run, ckpt, epoch)
    return True
  except CheckpointDamagedError:
    return False
