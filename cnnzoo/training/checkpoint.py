"""Epoch checkpoints with orbax: the full training state plus a JSON record of the run.

Each checkpoint (step number = epochs completed) holds `state` (params, batch_stats, opt_state,
step, rng) and `meta` (model identity, data position, history so far). Orbax writes into a
temporary directory and renames it when complete, so a process killed mid-write leaves no
checkpoint that looks valid; the unfinished one is ignored and cleaned up on the next start.
Kept: the last `keep`, the best by `best_metric`, and every `keep_every`-th epoch if set.
"""

import os
import shutil

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from cnnzoo.errors import UserError


class CheckpointMismatchError(UserError):
  """A checkpoint does not fit the model / optimizer the config builds."""


def remove_unfinished(directory: str) -> None:
  """Deletes checkpoints a killed process left half-written (orbax's `*.orbax-checkpoint-tmp*`).

  Done here, synchronously, rather than by orbax's background cleanup, which can still be running
  when a process that stops early exits.
  """
  if jax.process_index() != 0 or not os.path.isdir(directory):
    return
  for name in os.listdir(directory):
    if ".orbax-checkpoint-tmp" in name:
      shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


class Checkpointer:
  """An orbax CheckpointManager over `directory`, one checkpoint per epoch."""

  def __init__(self, directory: str, *, keep: int = 3, best_metric: str | None = "val_loss",
               best_mode: str = "min", keep_every: int = 0, async_save: bool = True,
               read_only: bool = False):
    keepers = [policies.LatestN(keep)]
    if best_metric:
      keepers.append(policies.BestN(get_metric_fn=lambda m: m[best_metric], n=1,
                                    reverse=best_mode == "min"))
    if keep_every:
      keepers.append(policies.EveryNSteps(keep_every))
    options = ocp.CheckpointManagerOptions(
        best_fn=(lambda m: m[best_metric]) if best_metric else None, best_mode=best_mode,
        preservation_policy=policies.AnyPreservationPolicy(keepers),
        enable_async_checkpointing=async_save, read_only=read_only,
        create=not read_only)
    self.directory = os.path.abspath(directory)
    if not read_only:
      remove_unfinished(self.directory)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def epochs(self) -> list[int]:
    """Epochs with a complete checkpoint, ascending."""
    return sorted(self._manager.all_steps())

  def latest_epoch(self) -> int | None:
    return self._manager.latest_step()

  def best_epoch(self) -> int | None:
    return self._manager.best_step()

  def save(self, epoch: int, state_tree, meta: dict, metrics: dict) -> None:
    """Saves epoch `epoch` (asynchronously unless disabled)."""
    self._manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(state_tree),
                                                      meta=ocp.args.JsonSave(meta)),
                       metrics=metrics)

  def read_meta(self, epoch: int) -> dict:
    return self._manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore(self, epoch: int, target_tree) -> tuple[dict, dict]:
    """Restores epoch `epoch` into arrays shaped and sharded like `target_tree`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_tree)
    try:
      out = self._manager.restore(epoch, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError) as e:
      first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise CheckpointMismatchError(
          f"checkpoint {self.directory}/{epoch} does not fit the model and optimizer of this config "
          f"({first[:200]})") from None
    return out["state"], out["meta"]

  def restore_weights(self, epoch: int, target: dict) -> dict:
    """Restores only the subtrees of `target` (e.g. params, batch_stats) from epoch `epoch`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    path = os.path.join(self.directory, str(epoch), "state")
    try:
      with ocp.PyTreeCheckpointer() as reader:
        return reader.restore(path, args=ocp.args.PyTreeRestore(
            item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
            partial_restore=True))
    except (ValueError, KeyError, TypeError) as e:
      first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise CheckpointMismatchError(f"weights in {path} do not fit this config's model ({first[:200]})") from None

  def delete_after(self, epoch: int) -> None:
    """Deletes the checkpoints of epochs after `epoch` (a resumed run re-writes them)."""
    for later in [e for e in self.epochs() if e > epoch]:
      self._manager.delete(later)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
