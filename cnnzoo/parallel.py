"""Device mesh and shardings for data-parallel training, on one host or several.

Data parallelism is `jax.jit` over a 1-D mesh named "data": the global batch is sharded along its
first axis, parameters and optimizer state are replicated, and XLA inserts the gradient all-reduce.
BatchNorm statistics computed inside the jitted step are therefore those of the global batch.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from cnnzoo.errors import ConfigError

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (global) devices, axis name "data"."""
  devices = np.asarray(jax.devices() if devices is None else devices)
  return Mesh(devices.reshape(-1), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of a global batch: split along the leading axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def stacked_batch_sharding(mesh: Mesh) -> NamedSharding:
  """Several global batches stacked on a leading axis (steps x batch): the batch axis split."""
  return NamedSharding(mesh, P(None, DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding of parameters and optimizer state: a full copy on every device."""
  return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
  """Raises ValueError unless the global batch splits evenly over devices and processes."""
  n = mesh.devices.size
  if global_batch % n:
    raise ConfigError(f"batch size {global_batch} does not split over {n} devices; "
                     f"use a multiple of {n} (--config.data.batch_size=...)")
  if global_batch % jax.process_count():
    raise ConfigError(f"batch size {global_batch} does not split over {jax.process_count()} processes")


def put_global_batch(local: dict, sharding: NamedSharding) -> dict:
  """Places this process's slice of a global batch as global arrays with `sharding`.

  `local` holds the rows of the global batch that belong to this process (all rows when there is
  one process); the result has the global batch's shape on every process.
  """
  return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, a), local)


def process_slice(global_batch: int) -> slice:
  """The rows of a global batch this process loads (contiguous, in process order)."""
  per = global_batch // jax.process_count()
  start = jax.process_index() * per
  return slice(start, start + per)


def gather_batch(array: jax.Array) -> np.ndarray:
  """A batch-sharded global array as one NumPy array on every process (all rows, in order)."""
  if jax.process_count() == 1:
    return np.asarray(jax.device_get(array))
  from jax.experimental import multihost_utils
  return np.asarray(multihost_utils.process_allgather(array, tiled=True))
