"""One pass over a split: the training epoch (a call a step, or K steps a call) and the evaluation
of a split, their metrics summed on the device and averaged once (Measures)."""

import hashlib
import time

import jax
import numpy as np

from cnnzoo import parallel
from cnnzoo.data import Loader
from cnnzoo.training import monitor, steps
from cnnzoo.training.build import Run, Step, StageSteps

# summed step metrics, one dispatch per step (eager `a + b` per metric cost ~2 s of the README's
# first command: four op dispatches per step); the same float32 adds, so the same sums
add_metrics = jax.jit(lambda a, b: jax.tree.map(jax.numpy.add, a, b))


def evaluate(run: Run, state, loader: Loader, step: Step | None = None, *,
             probabilities: bool = False) -> dict:
  """Loss and the run's evaluation metrics (accuracy, top5_accuracy, ...) over every example of
  `loader`'s split (each once: the last batch is padded and masked), with the views of `step`
  (default: the validation step's).

  probabilities: also return `probs`, the (examples, classes) float32 NumPy array of class
  probabilities in the split's order (gathered from every process).
  """
  totals, jitted, probs = None, (step or run.eval_step).jitted, []
  for batch in loader.epoch(0):
    m, p = jitted(state, batch, loader.source)
    totals = m if totals is None else add_metrics(totals, m)
    if probabilities:
      probs.append(parallel.gather_batch(p))
  out = run.measures.means(jax.device_get(totals))
  if probabilities:
    out["probs"] = np.concatenate(probs)[:out["count"]]  # padding is at the end of the last batch only
  return out


def params_fingerprint(params) -> str:
  """SHA-256 over the parameter bytes: equal fingerprints mean bitwise-equal parameters."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(params)):
    h.update(np.ascontiguousarray(leaf).tobytes())
  return h.hexdigest()


def train_epoch(run: Run, state, epoch: int, bar: monitor.ProgressBar, log_every: int,
                programs: StageSteps | None = None):
  """One pass over the training split with `programs` (a stage's; default the first stage's);
  returns the new state, summed metrics and data seconds."""
  programs = programs or StageSteps(run.train_step, run.train_chunk)
  if programs.train_chunk is not None:
    return _train_epoch_in_chunks(run, programs.train_chunk, state, epoch, bar)
  sums, data_seconds, done = None, 0.0, 0
  t0 = time.perf_counter()
  batches = run.train_loader.epoch(epoch)
  for i in range(run.train_loader.steps_per_epoch):
    t = time.perf_counter()
    batch = next(batches)
    data_seconds += time.perf_counter() - t
    state, m = programs.train_step(state, batch)
    sums = m if sums is None else add_metrics(sums, m)
    if bar.enabled and ((i + 1) % log_every == 0 or i + 1 == run.train_loader.steps_per_epoch):
      _show(run, bar, i + 1 - done, sums, t0)
      done = i + 1
  return state, jax.device_get(sums), data_seconds


def _train_epoch_in_chunks(run: Run, chunk, state, epoch: int, bar: monitor.ProgressBar):
  """train_epoch with `chunk.size` steps a call (the progress bar moves once a call)."""
  sums, data_seconds = jax.device_put(steps.zero_metrics(run.measures), parallel.replicated(run.mesh)), 0.0
  t0 = time.perf_counter()
  chunks = run.train_loader.chunks(epoch, chunk.size)
  for _ in range(-(-run.train_loader.steps_per_epoch // chunk.size)):
    t = time.perf_counter()
    batches, count = next(chunks)
    data_seconds += time.perf_counter() - t
    state, sums = chunk(state, sums, batches, count)
    if bar.enabled:
      _show(run, bar, count, sums, t0)
  return state, jax.device_get(sums), data_seconds


def _show(run: Run, bar: monitor.ProgressBar, steps_done: int, sums, t0: float) -> None:
  """Moves the progress bar by `steps_done` steps, with the epoch's running loss, metrics, img/s."""
  host = jax.device_get(sums)
  bar.update(steps_done, **run.measures.progress(host), img_s=int(host["count"]) / (time.perf_counter() - t0))
