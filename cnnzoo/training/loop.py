"""`train_and_evaluate(config, workdir)`: the epoch loop tying data, model, steps, checkpoints and
the monitor together. Resumes from the workdir's latest checkpoint automatically (see resume.py).
The run it trains is built by training.build (`build`, `Run`, re-exported here)."""

import hashlib
import os
import time

import jax
import numpy as np
from absl import logging

from cnnzoo import metrics, parallel, paths, runtime
from cnnzoo.data import Loader
from cnnzoo.errors import UserError
from cnnzoo.training import monitor, steps
from cnnzoo.training import callbacks, resume, stages
from cnnzoo.training import workdir as workdir_lib
from cnnzoo.training.build import Chunk, Run, Step, build, steps_per_dispatch  # noqa: F401 (loop.build etc.)
from cnnzoo.training.checkpoint import Checkpointer
from cnnzoo.models.keras_weights import load_into_state

# summed step metrics, one dispatch per step (eager `a + b` per metric cost ~2 s of the README's
# first command: four op dispatches per step); the same float32 adds, so the same sums
add_metrics = jax.jit(lambda a, b: jax.tree.map(jax.numpy.add, a, b))




def evaluate(run: Run, state, loader: Loader, step: Step | None = None, *,
             probabilities: bool = False) -> dict:
  """Loss and the run's evaluation metrics (accuracy, top5_accuracy, ...) over every example of `loader`'s split (each once: the
  last batch is padded and masked), with the views of `step` (default: the validation step's).

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


def train_epoch(run: Run, state, epoch: int, bar: monitor.ProgressBar, log_every: int):
  """One pass over the training split; returns the new state, summed metrics and data seconds."""
  if run.train_chunk is not None:
    return _train_epoch_in_chunks(run, state, epoch, bar)
  sums, data_seconds, done = None, 0.0, 0
  t0 = time.perf_counter()
  batches = run.train_loader.epoch(epoch)
  for i in range(run.train_loader.steps_per_epoch):
    t = time.perf_counter()
    batch = next(batches)
    data_seconds += time.perf_counter() - t
    state, m = run.train_step(state, batch)
    sums = m if sums is None else add_metrics(sums, m)
    if bar.enabled and ((i + 1) % log_every == 0 or i + 1 == run.train_loader.steps_per_epoch):
      _show(run, bar, i + 1 - done, sums, t0)
      done = i + 1
  return state, jax.device_get(sums), data_seconds


def _train_epoch_in_chunks(run: Run, state, epoch: int, bar: monitor.ProgressBar):
  """train_epoch with `run.train_chunk.size` steps a call (the progress bar moves once a call)."""
  sums, data_seconds = jax.device_put(steps.zero_metrics(run.measures), parallel.replicated(run.mesh)), 0.0
  t0 = time.perf_counter()
  chunks = run.train_loader.chunks(epoch, run.train_chunk.size)
  for _ in range(-(-run.train_loader.steps_per_epoch // run.train_chunk.size)):
    t = time.perf_counter()
    batches, count = next(chunks)
    data_seconds += time.perf_counter() - t
    state, sums = run.train_chunk(state, sums, batches, count)
    if bar.enabled:
      _show(run, bar, count, sums, t0)
  return state, jax.device_get(sums), data_seconds


def _show(run: Run, bar: monitor.ProgressBar, steps_done: int, sums, t0: float) -> None:
  """Moves the progress bar by `steps_done` steps, with the epoch's running loss, metrics, img/s."""
  host = jax.device_get(sums)
  bar.update(steps_done, **run.measures.progress(host), img_s=int(host["count"]) / (time.perf_counter() - t0))


def train_and_evaluate(config, workdir: str, *, resume_epoch: int | None = None,
                       init_from: str | None = None, command: dict | None = None) -> dict:
  """Trains `config` in `workdir` (resuming its latest checkpoint), tests, and returns the results.

  Args:
    resume_epoch: restore this epoch's checkpoint instead of the latest; later checkpoints are
      deleted only when the first new one is written.
    init_from: "OTHER_WORKDIR[:EPOCH]": start a new run from another run's weights.
    command: {"config": the config file spec, "command": the command line that resumes the run},
      kept in status.json for `experiments.runs`.

  Raises:
    UserError: a config, flag or workdir that cannot work; nothing was written.
    RunStopped: the loss became NaN / Inf, or the disk filled; the last good checkpoint is kept.
  """
  paths.check_writable(workdir, "--workdir")
  directory = os.path.join(workdir, "checkpoints")
  init_from = _starting_point(config, workdir, directory, resume_epoch, init_from)
  run = build(config)  # fails on bad config or missing data before anything is written
  if init_from is not None:  # read (and checked) before anything is written
    run.state = resume.init_from(run, init_from)
  elif config.model.get("keras_weights") and not resume.finished_epochs(directory):
    run.state = load_into_state(run.state, config, run.identity["num_classes"], parallel.replicated(run.mesh))
  ck = config.checkpoint
  with workdir_lib.lock(workdir):
    ckpt = Checkpointer(directory, keep=ck.keep, best_metric=ck.best_metric,
                        best_mode=ck.best_mode, keep_every=ck.keep_every, async_save=ck.async_save)
    with workdir_lib.recorded(workdir, command, directory, ckpt):
      return _train(run, config, workdir, ckpt, resume_epoch)


def _starting_point(config, workdir: str, directory: str, resume_epoch, init_from):
  """The run whose weights a fresh run starts from (--init_from, or the config's model.init_from),
  once --resume_epoch / --init_from are checked against the checkpoints on disk."""
  done = resume.finished_epochs(directory)
  if resume_epoch is not None and resume_epoch not in done:
    raise UserError(f"--resume_epoch={resume_epoch}: no such checkpoint in {directory} "
                    f"(epochs on disk: {done or 'none'})")
  if init_from is not None and done:
    raise UserError(f"--init_from starts a new run but {workdir} already has checkpoints; "
                    "use a new --workdir")
  if init_from is None and config.model.get("init_from") and not done:
    init_from = config.model.init_from  # the config's own starting point (a fresh run only)
    source = init_from.partition(":")[0]
    if not os.path.isdir(os.path.join(source, "checkpoints")):
      raise UserError(f"this config starts from the weights of the run in {source} (model.init_from), which is "
                      "not there: train that run first (its config's docstring says which), or set "
                      "--config.model.init_from=DIR[:EPOCH]")
  return init_from


def _restore_best(run, ckpt, state, best: int, last: int):
  """EarlyStopping(restore_best_weights=True): the weights of epoch `best` for the test."""
  if best == last:
    return state
  if best not in ckpt.epochs():
    resume.warn(f"the best epoch {best}'s checkpoint is no longer on disk (keep it with "
                "--config.checkpoint.best_metric set to the early_stop monitor); testing the last weights")
    return state
  restored, _ = resume.restore(run, ckpt, best)
  if jax.process_index() == 0:
    print(f"restoring the weights of the best epoch, {best}", flush=True)
  return state.replace(params=restored.params, batch_stats=restored.batch_stats)


def _phase(name: str, epoch: int) -> None:
  """Logs where the run is (`--verbosity=0` shows it): compile (the first epoch of a process, whose
  first step compiles), train, evaluate, save, test. The kill -9 tests aim at these points."""
  logging.info("cnnzoo phase: %s epoch %d", name, epoch)


def _train(run, config, workdir, ckpt, resume_epoch) -> dict:
  """The body of train_and_evaluate once the workdir is locked and the checkpoints are open."""
  epochs = ckpt.epochs()
  start, state, history = resume.resume_point(run, ckpt, resume_epoch)
  if start > config.num_epochs:
    raise UserError(f"--config.num_epochs={config.num_epochs} is below the {start} epochs this run has done; "
                    f"raise it, or go back with --resume_epoch=N (N <= {config.num_epochs}; on disk: "
                    f"{epochs}) to end the run there")
  truncate = bool(epochs) and start < epochs[-1]

  workdir_lib.write_run_files(workdir, config, run.dataset, start)
  monitor.print_header(run, config, start)
  writers = monitor.make_writers(workdir, config.monitor, f"{config.model.name} on {run.dataset.name}")
  bar = monitor.ProgressBar(config.monitor.progress)
  last_saved = start  # the newest checkpoint of this run's line (the one a stop points back to)
  current = stages.stage_of(run.stages, start)  # the stage whose optimizer `state` carries
  plateau, early = _callbacks(run, config, history)
  stopped = bool(early is not None and early.stopped_epoch)  # a finished early-stopped run: test only
  for epoch in range(start, config.num_epochs if not stopped else start):
    stage = stages.stage_of(run.stages, epoch + 1)
    if stage.index != current.index or (epoch == start and len(run.stages) > 1):
      state, current = _enter_stage(run, state, current, stage), stage
    state, record = _epoch(run, config, state, epoch, stage, bar, plateau, ckpt, last_saved, first=epoch == start)
    stop = early is not None and early.on_epoch_end(epoch, record)
    if plateau is not None or early is not None:
      record["callbacks"] = {name: cb.state() for cb, name in ((plateau, "plateau"), (early, "early_stop"))
                             if cb is not None}
    history = history[:epoch] + [record]
    if truncate:
      ckpt.delete_after(start)
      truncate = False
    last_saved = _save(run, ckpt, state, history)
    for write in writers:
      write(history)
    if jax.process_index() == 0:
      print(monitor.format_record(record, run.measures.shown()), flush=True)
    if stop:
      if jax.process_index() == 0:
        print(f"early stopping after epoch {epoch + 1}: no {early.monitor} improvement for {early.patience} "
              f"epoch(s); best epoch {early.best_epoch + 1}", flush=True)
      break
  ckpt.wait()
  if early is not None and config.early_stop.restore_best and history:
    state = _restore_best(run, ckpt, state, early.best_epoch + 1, len(history))
  if history and start == config.num_epochs:  # nothing trained now: refresh the files from the checkpoint
    for write in writers:
      write(history)
  results = _test(run, config, workdir, ckpt, state, history)
  for write in writers:
    getattr(write, "close", lambda: None)()
  return results


def _save(run, ckpt, state, history) -> int:
  """The checkpoint of the epoch `history` ends with (its state, the history so far); its number."""
  epoch, record = len(history), history[-1]
  _phase("save", epoch)
  ckpt.save(epoch, state.checkpoint_tree(),
            meta={"identity": run.identity, "history": history, "position": {"epoch": epoch, "step_in_epoch": 0}},
            metrics={k: record[k] for k in run.measures.monitored()})
  return epoch


def _callbacks(run, config, history):
  """The config's ReduceLROnPlateau and EarlyStopping, with the state the last epoch left them in."""
  plateau, early = callbacks.from_config(config, run.measures)
  saved = history[-1].get("callbacks", {}) if history else {}
  for cb, name in ((plateau, "plateau"), (early, "early_stop")):
    if cb is not None and name in saved:
      cb.load(saved[name])
  return plateau, early


def _epoch(run, config, state, epoch: int, stage, bar, plateau, ckpt, last_saved: int, first: bool):
  """One epoch of `stage`: its steps, the validation, and the history record (after the plateau's
  rate change, if any); a NaN / Inf loss stops the run with the last good checkpoint named."""
  t0 = time.perf_counter()
  steps_per_epoch = run.train_loader.steps_per_epoch
  scheduled = float(stage.schedule(epoch * steps_per_epoch))
  lr = scheduled if plateau is None else float(np.float32(scheduled * callbacks.lr_scale(state.opt_state)))
  bar.start(epoch + 1, config.num_epochs, steps_per_epoch)
  _phase("compile" if first else "train", epoch + 1)
  state, sums, data_seconds = train_epoch(run, state, epoch, bar, config.monitor.log_every_steps)
  bar.close()
  train_seconds = time.perf_counter() - t0
  _phase("evaluate", epoch + 1)
  val = evaluate(run, state, run.val_loader)
  n = int(sums["count"])
  resume.check_finite(float(sums["loss"]) / n, val["loss"], epoch + 1, lr, ckpt, last_saved)
  record = {"epoch": epoch + 1, "lr": lr, **run.measures.record(sums, val),
            "seconds": time.perf_counter() - t0, "img_per_sec": n / train_seconds,
            "data_seconds": data_seconds}
  if len(run.stages) > 1:
    record["stage"] = stage.index
  if plateau is not None:
    state = _plateau_step(run, state, plateau, record, lr, scheduled)
  return state, record


def _enter_stage(run, state, current, stage):
  """The state and steps of `stage` of a multi-stage recipe (its optimizer, its frozen layers)."""
  state = stages.with_stage(state, run.stages, current, stage, parallel.replicated(run.mesh))
  if run.train_step_for is not None:
    run.train_step = run.train_step_for(stage)
  if run.train_chunk_for is not None:
    run.train_chunk = run.train_chunk_for(stage)
  if jax.process_index() == 0 and len(run.stages) > 1:
    changes = ", ".join(f"{k}={v}" for k, v in stage.overrides.items()) or "the config as it is"
    print(f"stage {stage.index} of {len(run.stages)}: epochs {stage.start + 1}-{stage.end}, {changes}"
          + (" (a fresh optimizer)" if stage.fresh and stage.index > 1 else ""), flush=True)
  return state


def _plateau_step(run, state, plateau, record: dict, lr: float, scheduled: float):
  """ReduceLROnPlateau after an epoch: the state with the new rate's scale where it reduces."""
  new_lr = plateau.on_epoch_end(record, lr)
  if new_lr == float(np.float32(lr)):
    return state
  if jax.process_index() == 0:
    print(f"epoch {record['epoch']}: ReduceLROnPlateau reducing the learning rate to {new_lr:.4g}", flush=True)
  return state.replace(opt_state=callbacks.with_lr_scale(state.opt_state, new_lr / scheduled,
                                                         parallel.replicated(run.mesh)))


def _test(run, config, workdir: str, ckpt, state, history) -> dict:
  """The test split's evaluation: results.json, test_report.txt and the printed report."""
  _phase("test", len(history))
  test = evaluate(run, state, run.test_loader, run.test_step, probabilities=True)
  labels, names = np.asarray(run.test_loader.split.labels), run.dataset.class_names
  report = metrics.report(test["probs"], labels, names)
  results = {"model": config.model.name, "dataset": run.dataset.name, "epochs": len(history),
             **{f"test_{k}": v for k, v in test.items() if k != "probs"},
             "best_epoch": ckpt.best_epoch(), "params_sha256": params_fingerprint(state.params),
             "test_report": report["classification_report"],
             "hardware": runtime.hardware(run.kernels.note()), "kernels": run.kernels.name}
  if jax.process_index() == 0:
    monitor.write_json_atomic(os.path.join(workdir, "results.json"), results)
    text = metrics.report_text(test["probs"], labels, names)
    monitor.write_text_atomic(os.path.join(workdir, "test_report.txt"), text)
    if len(names) <= 20:  # the journal's table; larger ones stay in the file
      print(text.rstrip())
    print(f"test: {run.measures.test_line(results)}  ({results['test_count']} images)")
  return results
