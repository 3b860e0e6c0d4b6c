"""`train_and_evaluate(config, workdir)`: the epoch loop tying data, model, steps, checkpoints and
the monitor together. Resumes from the workdir's latest checkpoint automatically (see resume.py).
The run it trains is built by training.build (`build`, `Run`, re-exported here); below `build` the
loop reads the run's frozen description (`run.about`), never the config."""

import dataclasses
import math
import os
import time

import jax
import numpy as np
from absl import logging

from cnnzoo import metrics, parallel, paths, runtime
from cnnzoo.errors import RunStopped, UserError
from cnnzoo.training import callbacks, monitor, resume, stages
from cnnzoo.training import workdir as workdir_lib
from cnnzoo.training.build import Chunk, Run, StageSteps, Step, build, steps_per_dispatch  # noqa: F401 (loop.build etc.)
from cnnzoo.training.checkpoint import Checkpointer, finished_epochs
from cnnzoo.training.passes import add_metrics, evaluate, params_fingerprint, train_epoch  # noqa: F401 (the API)


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
  fresh = init_from is None and not finished_epochs(directory)
  run = build(config, keras_weights=fresh)  # fails on bad config or missing data before anything is written
  state = resume.init_from(run, init_from) if init_from is not None else run.state  # read and checked first
  with workdir_lib.lock(workdir):
    ckpt = Checkpointer(directory, **dict(run.about.checkpoint))
    with workdir_lib.recorded(workdir, command, directory, ckpt):
      return _train(run, state, workdir, ckpt, resume_epoch)


def _starting_point(config, workdir: str, directory: str, resume_epoch, init_from):
  """The run whose weights a fresh run starts from (--init_from, or the config's model.init_from),
  once --resume_epoch / --init_from are checked against the checkpoints on disk."""
  done = finished_epochs(directory)
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


@dataclasses.dataclass
class _Loop:
  """What the epochs of one training share: the checkpoints, the progress bar, the callbacks, and
  the newest checkpoint of this run's line (the one a stop points back to)."""
  ckpt: Checkpointer
  bar: monitor.ProgressBar
  plateau: callbacks.ReduceLROnPlateau | None
  early: callbacks.EarlyStopping | None
  start: int  # the epochs done when this process began
  last_saved: int


def _train(run: Run, state, workdir: str, ckpt, resume_epoch) -> dict:
  """The body of train_and_evaluate once the workdir is locked and the checkpoints are open."""
  about, epochs = run.about, ckpt.epochs()
  start, state, history = resume.resume_point(run, ckpt, resume_epoch, state)
  if start > about.num_epochs:
    raise UserError(f"--config.num_epochs={about.num_epochs} is below the {start} epochs this run has done; "
                    f"raise it, or go back with --resume_epoch=N (N <= {about.num_epochs}; on disk: "
                    f"{epochs}) to end the run there")
  truncate = bool(epochs) and start < epochs[-1]
  workdir_lib.write_run_files(workdir, about.config_json, run.dataset, start)
  monitor.print_header(run, start)
  writers = monitor.make_writers(workdir, about.monitor, f"{about.model_name} on {run.dataset.name}")
  ctx = _Loop(ckpt, monitor.ProgressBar(about.monitor.progress), *_callbacks(run, history), start, start)
  current = stages.stage_of(run.stages, start)  # the stage whose optimizer `state` carries
  programs = run.steps_of(current)
  stopped = bool(ctx.early is not None and ctx.early.stopped_epoch)  # a finished early-stopped run: test only
  for epoch in range(start, about.num_epochs if not stopped else start):
    stage = stages.stage_of(run.stages, epoch + 1)
    if stage.index != current.index or (epoch == start and len(run.stages) > 1):
      state, programs = _enter_stage(run, state, current, stage)
      current = stage
    state, record = _epoch(run, ctx, state, epoch, (stage, programs))
    stop = ctx.early is not None and ctx.early.on_epoch_end(epoch, record)
    if ctx.plateau is not None or ctx.early is not None:
      record["callbacks"] = {name: cb.state() for cb, name in ((ctx.plateau, "plateau"), (ctx.early, "early_stop"))
                             if cb is not None}
    history = history[:epoch] + [record]
    if truncate:
      ckpt.delete_after(start)
      truncate = False
    ctx.last_saved = _save(run, ckpt, state, history)
    for write in writers:
      write(history)
    runtime.say(monitor.format_record(record, run.measures.shown()))
    if stop:
      runtime.say(f"early stopping after epoch {epoch + 1}: no {ctx.early.monitor} improvement for "
                  f"{ctx.early.patience} epoch(s); best epoch {ctx.early.best_epoch + 1}")
      break
  ckpt.wait()
  if ctx.early is not None and about.early_stop.restore_best and history:
    state = _restore_best(run, ckpt, state, ctx.early.best_epoch + 1, len(history))
  if history and start == about.num_epochs:  # nothing trained now: refresh the files from the checkpoint
    for write in writers:
      write(history)
  results = _test(run, workdir, ckpt, state, history)
  for write in writers:
    getattr(write, "close", lambda: None)()
  return results


def _restore_best(run, ckpt, state, best: int, last: int):
  """EarlyStopping(restore_best_weights=True): the weights of epoch `best` for the test."""
  if best == last:
    return state
  if best not in ckpt.epochs():
    runtime.warn(f"the best epoch {best}'s checkpoint is no longer on disk (keep it with "
                 "--config.checkpoint.best_metric set to the early_stop monitor); testing the last weights")
    return state
  restored, _ = resume.restore(run, ckpt, best)
  runtime.say(f"restoring the weights of the best epoch, {best}")
  return state.replace(params=restored.params, batch_stats=restored.batch_stats)


def _phase(name: str, epoch: int) -> None:
  """Logs where the run is (`--verbosity=0` shows it): compile (the first epoch of a process, whose
  first step compiles), train, evaluate, save, test. The kill -9 tests aim at these points."""
  logging.info("cnnzoo phase: %s epoch %d", name, epoch)


def _save(run, ckpt, state, history) -> int:
  """The checkpoint of the epoch `history` ends with (its state, the history so far); its number."""
  epoch, record = len(history), history[-1]
  _phase("save", epoch)
  ckpt.save(epoch, state.checkpoint_tree(),
            meta={"identity": run.identity, "history": history, "position": {"epoch": epoch, "step_in_epoch": 0}},
            metrics={k: record[k] for k in run.measures.monitored()})
  return epoch


def _callbacks(run, history):
  """The run's ReduceLROnPlateau and EarlyStopping, with the state the last epoch left them in."""
  plateau, early = callbacks.make(run.about.plateau, run.about.early_stop, run.measures)
  saved = history[-1].get("callbacks", {}) if history else {}
  for cb, name in ((plateau, "plateau"), (early, "early_stop")):
    if cb is not None and name in saved:
      cb.load(saved[name])
  return plateau, early


def _epoch(run: Run, ctx: _Loop, state, epoch: int, stage_programs: tuple):
  """One epoch of a stage (`stage_programs`: the stage and its train programs): its steps, the
  validation, and the history record (after the plateau's rate change, if any); a NaN / Inf loss
  stops the run with the last good checkpoint named."""
  stage, programs = stage_programs
  t0 = time.perf_counter()
  steps_per_epoch = run.train_loader.steps_per_epoch
  scheduled = float(stage.schedule(epoch * steps_per_epoch))
  lr = scheduled if ctx.plateau is None else float(np.float32(scheduled * callbacks.lr_scale(state.opt_state)))
  ctx.bar.start(epoch + 1, run.about.num_epochs, steps_per_epoch)
  _phase("compile" if epoch == ctx.start else "train", epoch + 1)
  state, sums, data_seconds = train_epoch(run, state, epoch, ctx.bar, run.about.monitor.log_every_steps, programs)
  ctx.bar.close()
  train_seconds = time.perf_counter() - t0
  _phase("evaluate", epoch + 1)
  val = evaluate(run, state, run.val_loader)
  n = int(sums["count"])
  _check_finite(float(sums["loss"]) / n, val["loss"], epoch + 1, lr, ctx)
  record = {"epoch": epoch + 1, "lr": lr, **run.measures.record(sums, val),
            "seconds": time.perf_counter() - t0, "img_per_sec": n / train_seconds,
            "data_seconds": data_seconds}
  if len(run.stages) > 1:
    record["stage"] = stage.index
  if ctx.plateau is not None:
    state = _plateau_step(run, state, ctx.plateau, record, (lr, scheduled))
  return state, record


def _check_finite(loss: float, val_loss: float, epoch: int, lr: float, ctx: _Loop) -> None:
  """Stops the run (RunStopped) when epoch `epoch`'s training or validation loss is NaN / Inf.

  The check costs nothing extra: the summed metrics come to the host at every epoch end anyway.
  Nothing of the diverged epoch is saved, so `ctx.last_saved` stays the newest checkpoint.
  """
  if math.isfinite(loss) and math.isfinite(val_loss):
    return
  ckpt, last_saved = ctx.ckpt, ctx.last_saved
  ckpt.wait()  # the previous epoch's asynchronous write completes: it is the one to go back to
  what = "loss" if not math.isfinite(loss) else "val_loss"
  value = loss if what == "loss" else val_loss
  where = (f"the last good checkpoint is epoch {last_saved} ({ckpt.directory}/{last_saved}): rerun with "
           f"--resume_epoch={last_saved} and a lower --config.optim.lr" if last_saved else
           "no checkpoint was written yet: rerun with a lower --config.optim.lr")
  raise RunStopped(f"training diverged: {what} is {value} in epoch {epoch} (lr {lr:.4g}); nothing of "
                   f"epoch {epoch} was saved; {where}")


def _enter_stage(run: Run, state, current, stage) -> tuple:
  """(state, train programs) of `stage` of a multi-stage recipe: its optimizer, its frozen layers."""
  state = stages.with_stage(state, run.stages, current, stage, parallel.replicated(run.mesh))
  if len(run.stages) > 1:
    changes = ", ".join(f"{k}={v}" for k, v in stage.overrides.items()) or "the config as it is"
    runtime.say(f"stage {stage.index} of {len(run.stages)}: epochs {stage.start + 1}-{stage.end}, {changes}"
                + (" (a fresh optimizer)" if stage.fresh and stage.index > 1 else ""))
  return state, run.steps_of(stage)


def _plateau_step(run, state, plateau, record: dict, rates: tuple):
  """ReduceLROnPlateau after an epoch: the state with the new rate's scale where it reduces
  (`rates`: the epoch's rate and the schedule's)."""
  lr, scheduled = rates
  new_lr = plateau.on_epoch_end(record, lr)
  if new_lr == float(np.float32(lr)):
    return state
  runtime.say(f"epoch {record['epoch']}: ReduceLROnPlateau reducing the learning rate to {new_lr:.4g}")
  return state.replace(opt_state=callbacks.with_lr_scale(state.opt_state, new_lr / scheduled,
                                                         parallel.replicated(run.mesh)))


def _test(run: Run, workdir: str, ckpt, state, history) -> dict:
  """The test split's evaluation: results.json, test_report.txt and the printed report."""
  _phase("test", len(history))
  test = evaluate(run, state, run.test_loader, run.test_step, probabilities=True)
  labels, names = np.asarray(run.test_loader.split.labels), run.dataset.class_names
  report = metrics.report(test["probs"], labels, names)
  results = {"model": run.about.model_name, "dataset": run.dataset.name, "epochs": len(history),
             **{f"test_{k}": v for k, v in test.items() if k != "probs"},
             "best_epoch": ckpt.best_epoch(), "params_sha256": params_fingerprint(state.params),
             "test_report": report["classification_report"],
             "hardware": runtime.hardware(run.kernels.note()), "kernels": run.kernels.name}
  if jax.process_index() == 0:
    paths.write_json(os.path.join(workdir, "results.json"), results)
    text = metrics.report_text(test["probs"], labels, names)
    paths.write_text(os.path.join(workdir, "test_report.txt"), text)
    if len(names) <= 20:  # the journal's table; larger ones stay in the file
      print(text.rstrip())
    print(f"test: {run.measures.test_line(results)}  ({results['test_count']} images)", flush=True)
  return results
