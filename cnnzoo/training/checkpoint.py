"""Epoch checkpoints with orbax: the full training state plus a JSON record of the run.

Each checkpoint (step number = epochs completed) holds `state` (params, batch_stats, opt_state,
step, rng) and `meta` (model identity, data position, history so far). Orbax writes into a
temporary directory and renames it when complete, so a process killed mid-write leaves no
checkpoint that looks valid; the unfinished one is ignored and cleaned up on the next start.
Kept: the last `keep`, the best by `best_metric`, and every `keep_every`-th epoch if set.

Damage (a bad disk, a copy cut short, an edited file) is detected on restore: `meta` carries the
state tree's signature (paths, shapes, dtypes) and an integer checksum of every array, so a
checkpoint whose files do not read, or read back different numbers, raises
CheckpointDamagedError instead of resuming from wrong values.
"""

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from cnnzoo import numbers
from cnnzoo.errors import UserError


class _DrainingLoop(asyncio.SelectorEventLoop):
  """An event loop that lets its pending tasks finish before it closes.

  Orbax restores each array in a task gathered on a fresh loop, and closes that loop as soon as one
  read fails (a damaged data file). The sibling reads were left awaiting tensorstore: garbage-
  collected mid-await they printed "Exception ignored ... GeneratorExit", and cancelled, their
  tensorstore reads still finished later and called back into the closed loop ("Event loop is
  closed"). Local reads end quickly, failed or not, so the loop waits for them.
  """

  def close(self):
    if not self.is_running() and not self.is_closed():
      pending = asyncio.all_tasks(self)
      if pending:
        self.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    super().close()


class _DrainingPolicy(asyncio.DefaultEventLoopPolicy):
  _loop_factory = _DrainingLoop


@contextlib.contextmanager
def _draining_event_loops():
  """Orbax calls in this block get loops that finish their pending reads before closing."""
  previous = asyncio.get_event_loop_policy()
  asyncio.set_event_loop_policy(_DrainingPolicy())
  try:
    yield
  finally:
    asyncio.set_event_loop_policy(previous)


class CheckpointMismatchError(UserError):
  """A checkpoint does not fit the model / optimizer the config builds."""


class CheckpointDamagedError(UserError):
  """A checkpoint's files do not read back what was saved."""

  def __init__(self, directory: str, epoch: int, reason: str):
    self.path, self.epoch, self.reason = os.path.join(directory, str(epoch)), epoch, reason
    super().__init__(f"checkpoint {self.path} is damaged ({reason})")


def _reason(e: BaseException) -> str:
  text = " ".join(str(e).split())
  return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__


def tree_signature(tree) -> str:
  """SHA-256 of the tree's paths, shapes and dtypes: equal signatures mean a restore fits."""
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  desc = [(jax.tree_util.keystr(p), list(np.shape(x)), str(jnp.result_type(x))) for p, x in leaves]
  return hashlib.sha256(json.dumps(desc).encode()).hexdigest()


def _leaf_checksum(x):
  """A uint32 checksum of one array, computed on its device: the sum of its elements' bit patterns
  times distinct odd weights, mod 2**32. Integer sums do not depend on the reduction order, so
  every device and host gets the same number, and any single changed element changes it."""
  x = jnp.asarray(x)
  if x.dtype.itemsize == 4:
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
  elif x.dtype.itemsize == 2:
    bits = jax.lax.bitcast_convert_type(x, jnp.uint16).astype(jnp.uint32)
  elif x.dtype.itemsize == 8:
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)  # (..., 2)
  else:
    bits = x.astype(jnp.uint32)
  bits = bits.reshape(-1)
  weights = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2654435761) | jnp.uint32(1)
  return jnp.sum(bits * weights, dtype=jnp.uint32)


@jax.jit
def _checksums(tree):
  return [_leaf_checksum(x) for x in jax.tree.leaves(tree)]


def _host_leaf_checksum(x: np.ndarray) -> np.uint32:
  """`_leaf_checksum` in NumPy (the same integers: uint32 products and sums wrap the same way)."""
  x = np.asarray(x)
  if x.dtype.itemsize in (4, 8):
    bits = x.view(np.uint32)
  elif x.dtype.itemsize == 2:
    bits = x.view(np.uint16).astype(np.uint32)
  else:
    bits = x.astype(np.uint32)
  bits = bits.reshape(-1)
  weights = np.arange(bits.size, dtype=np.uint32) * np.uint32(2654435761) | np.uint32(1)
  return np.sum(bits * weights, dtype=np.uint32)


def tree_checksum(tree) -> str:
  """Checksums of every array of `tree` (see `_leaf_checksum`) as one hex string. On the CPU
  backend, with every array in this process, NumPy computes them (the arrays already live in host
  memory, and a compiled checksum program costs ~0.5-2 s of compile per model); elsewhere the
  device does, without a copy to the host."""
  leaves = jax.tree.leaves(tree)
  if jax.default_backend() == "cpu" and all(getattr(x, "is_fully_addressable", True) for x in leaves):
    sums = np.asarray([_host_leaf_checksum(x) for x in jax.device_get(leaves)], np.uint32)
  else:
    sums = np.asarray(jax.device_get(_checksums(tree)), np.uint32)
  return hashlib.sha256(sums.tobytes()).hexdigest()


def _meta_checksum(meta: dict) -> str:
  body = {k: v for k, v in meta.items() if k != "meta_checksum"}
  return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def quarantine_unreadable(directory: str) -> list[tuple[int, str]]:
  """Renames checkpoints whose metrics file does not parse to `N.damaged` (orbax reads every
  step's metrics when it opens the directory and would fail on them); returns (epoch, reason)."""
  moved = []
  if jax.process_index() != 0 or not os.path.isdir(directory):
    return moved
  for name in sorted(os.listdir(directory)):
    metrics = os.path.join(directory, name, "metrics", "metrics")
    if not numbers.is_count(name) or not os.path.exists(metrics):
      continue
    try:
      with open(metrics) as f:
        json.load(f)
    except (OSError, ValueError) as e:
      target, n = os.path.join(directory, f"{name}.damaged"), 1
      while os.path.exists(target):
        target, n = os.path.join(directory, f"{name}.damaged{n}"), n + 1
      os.replace(os.path.join(directory, name), target)
      moved.append((int(name), f"metrics: {_reason(e)}; moved to {target}"))
  return moved


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
    self.quarantined = []  # (epoch, reason) of the checkpoints set aside as unreadable
    if not read_only:
      remove_unfinished(self.directory)
      self.quarantined = quarantine_unreadable(self.directory)
    try:
      self._manager = ocp.CheckpointManager(self.directory, options=options)
    except (OSError, ValueError) as e:  # a damaged metrics file in a directory we may not repair
      raise UserError(f"cannot open the checkpoints in {self.directory} ({_reason(e)})") from None

  def epochs(self) -> list[int]:
    """Epochs with a complete checkpoint, ascending."""
    return sorted(self._manager.all_steps())

  def latest_epoch(self) -> int | None:
    return self._manager.latest_step()

  def best_epoch(self) -> int | None:
    return self._manager.best_step()

  def save(self, epoch: int, state_tree, meta: dict, metrics: dict) -> None:
    """Saves epoch `epoch` (asynchronously unless disabled), with the state's signature and
    checksum added to `meta`."""
    self._check_space(epoch, state_tree)
    meta = {**meta, "signature": tree_signature(state_tree), "checksum": tree_checksum(state_tree)}
    meta["meta_checksum"] = _meta_checksum(meta)
    self._manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(state_tree),
                                                      meta=ocp.args.JsonSave(meta)),
                       metrics=metrics)

  def _check_space(self, epoch: int, state_tree) -> None:
    """Refuses to start a write that cannot fit: OSError(ENOSPC) after the previous write has
    completed, so the newest checkpoint on disk is whole. (A write that fails half-way, the disk
    filling from elsewhere, is caught too, but orbax's background threads report it noisily.)"""
    need = int(sum(x.nbytes for x in jax.tree.leaves(state_tree)) * 1.1) + 2**16
    free = shutil.disk_usage(self.directory).free
    if free < 2 * need:  # tight: measure again once the previous write, and orbax's removal of the
      self.wait()        # checkpoints it no longer keeps, are done (orbax's save would wait for them)
      free = shutil.disk_usage(self.directory).free
    if free < need:
      raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (the checkpoint of epoch {epoch} needs about "
                                  f"{need / 2**20:.1f} MB, {free / 2**20:.1f} MB are free)")

  def read_meta(self, epoch: int) -> dict:
    """The JSON record saved with epoch `epoch`; CheckpointDamagedError if it does not read."""
    try:
      with _draining_event_loops():
        meta = self._manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001 -- any failure to read a file orbax wrote is damage
      raise CheckpointDamagedError(self.directory, epoch, _reason(e)) from None
    if not isinstance(meta, dict):
      raise CheckpointDamagedError(self.directory, epoch, "meta/metadata is not a JSON object")
    if "meta_checksum" in meta and meta["meta_checksum"] != _meta_checksum(meta):
      raise CheckpointDamagedError(self.directory, epoch, "meta/metadata does not match its checksum")
    return meta

  def restore(self, epoch: int, target_tree) -> tuple[dict, dict]:
    """Restores epoch `epoch` into arrays shaped and sharded like `target_tree`.

    Raises CheckpointMismatchError when the saved tree differs from `target_tree` (another model
    or optimizer), CheckpointDamagedError when its files do not read back what was saved.
    """
    meta = self.read_meta(epoch)
    signature = meta.get("signature")
    if signature is not None and signature != tree_signature(target_tree):
      raise CheckpointMismatchError(
          f"checkpoint {self.directory}/{epoch} does not fit the model and optimizer of this config "
          "(its arrays differ in names or shapes)")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_tree)
    try:
      with _draining_event_loops():
        out = self._manager.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    except (ValueError, KeyError, TypeError) as e:
      if signature is not None:  # the tree fits: the files are at fault
        raise CheckpointDamagedError(self.directory, epoch, _reason(e)) from None
      first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise CheckpointMismatchError(
          f"checkpoint {self.directory}/{epoch} does not fit the model and optimizer of this config "
          f"({first[:200]})") from None
    except Exception as e:  # noqa: BLE001 -- tensorstore / OS errors reading the arrays
      raise CheckpointDamagedError(self.directory, epoch, _reason(e)) from None
    state = out["state"]
    if "checksum" in meta and tree_checksum(state) != meta["checksum"]:
      raise CheckpointDamagedError(self.directory, epoch, "its arrays do not match their checksum")
    return state, meta

  def restore_weights(self, epoch: int, target: dict) -> dict:
    """Restores only the subtrees of `target` (e.g. params, batch_stats) from epoch `epoch`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    path = os.path.join(self.directory, str(epoch), "state")
    try:
      with _draining_event_loops(), ocp.PyTreeCheckpointer() as reader:
        return reader.restore(path, args=ocp.args.PyTreeRestore(
            item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
            partial_restore=True))
    except (ValueError, KeyError, TypeError) as e:
      first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      if "DATA_LOSS" in first or "OUT_OF_RANGE" in first or "NOT_FOUND" in first:
        raise CheckpointDamagedError(self.directory, epoch, _reason(e)) from None
      raise CheckpointMismatchError(f"weights in {path} do not fit this config's model ({first[:200]})") from None
    except Exception as e:  # noqa: BLE001 -- tensorstore / OS errors reading the arrays
      raise CheckpointDamagedError(self.directory, epoch, _reason(e)) from None

  def delete_after(self, epoch: int) -> None:
    """Deletes the checkpoints of epochs after `epoch` (a resumed run re-writes them)."""
    for later in [e for e in self.epochs() if e > epoch]:
      self._manager.delete(later)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def finished_epochs(directory: str) -> list[int]:
  """Epochs whose checkpoint orbax has committed (renamed from its temporary name)."""
  names = os.listdir(directory) if os.path.isdir(directory) else []
  return sorted(int(n) for n in names if numbers.is_count(n))
