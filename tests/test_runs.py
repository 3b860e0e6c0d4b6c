"""Finding and watching runs: the default workdir, the config list, the runs table, logs that
read well in a file."""

import json
import os
import re
import shutil
import sys

import pytest

from conftest import ROOT, cli_batch, lenet_cli

CONFIG = os.path.join(ROOT, "configs", "lenet_digits.py")
QUIET = ["--config.monitor.plot=False", "--config.monitor.tensorboard=False"]


pytestmark = pytest.mark.xdist_group("test_runs")  # one worker: the module fixture trains once


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """One batch of real command lines: a run through the default workdir and its resume, one with
  an explicit workdir, one that diverges, the config list and a missing --config."""
  cwd = tmp_path_factory.mktemp("cwd")
  main = lambda *argv: {"module": "experiments.main", "argv": list(argv), "cwd": str(cwd)}
  results = cli_batch([
      main(f"--config={CONFIG}:smoke", "--config.num_epochs=1", *QUIET),
      main(f"--config={CONFIG}:smoke", *QUIET),
      main(f"--config={CONFIG}:smoke", "--workdir=runs/mine", "--config.num_epochs=1", *QUIET),
      main(f"--config={CONFIG}:smoke", "--workdir=runs/nan", "--config.optim.lr=1e12", "--config.optim.name=sgd",
           *QUIET),
      main("--list_configs"),
      main()])
  return cwd, dict(zip(["first", "again", "other", "nan", "listed", "missing"], results))


def test_the_design_cards_command_works_without_a_workdir_and_resumes_through_it(trained):
  """`python -m experiments.main --config=configs/NAME.py[:ARG]` trains in runs/NAME[-ARG] below
  the current directory; the same command again resumes there."""
  tmp_path, r = trained
  first, again, other = r["first"], r["again"], r["other"]
  workdir = tmp_path / "runs" / "lenet_digits-smoke"
  assert first["rc"] == 0, first["stderr"][-2000:]
  assert first["stdout"].splitlines()[0] == (
      "workdir: runs/lenet_digits-smoke (the default for this config; --workdir=DIR to choose)")
  assert again["rc"] == 0, again["stderr"][-2000:]
  assert again["stdout"].splitlines()[0] == first["stdout"].splitlines()[0]
  assert "resuming after epoch 1 of 2" in again["stdout"]
  history = json.loads((workdir / "history.json").read_text())
  assert [h["epoch"] for h in history] == [1, 2]
  assert other["rc"] == 0 and "workdir:" not in other["stdout"]  # an explicit --workdir is used as given
  assert (tmp_path / "runs" / "mine" / "results.json").exists()


def test_default_workdir_names():
  from cnnzoo.training.workdir import default_workdir
  assert default_workdir("configs/resnet_tiny.py") == "runs/resnet_tiny"
  assert default_workdir("/abs/configs/resnet_tiny.py:smoke") == "runs/resnet_tiny-smoke"
  assert default_workdir("configs/x.py:smoke,bn") == "runs/x-smoke-bn"


def test_the_config_list_comes_from_the_configs(trained):
  listed, missing = trained[1]["listed"], trained[1]["missing"]
  assert listed["rc"] == 0, listed["stderr"]
  rows = {line.split()[0]: line for line in listed["stdout"].splitlines()[1:] if line.startswith("configs/")}
  files = sorted(f"configs/{n}" for n in os.listdir(os.path.join(ROOT, "configs")) if n.endswith(".py")
                 and n not in ("__init__.py", "base.py"))
  assert sorted({r.split(":")[0] for r in rows}) == files
  assert "configs/minivggnet_flowers17.py:noaug" in rows and "test_accuracy 0.57" in rows["configs/minivggnet_flowers17.py:noaug"]
  assert rows["configs/resnet_tiny.py"].split()[1:3] == ["resnet_tiny", "hdf5:tiny-imagenet-200-hdf5"]
  assert rows["configs/resnet_tiny.py"].endswith("val_accuracy 0.5547")
  assert missing["rc"] == 2 and missing["stderr"].strip() == (
      "error: --config=configs/NAME.py is missing (python -m experiments.main --list_configs lists them)")


def test_the_runs_table_tells_every_state(trained, tmp_path):
  from cnnzoo.evaluation import journal
  from cnnzoo.evaluation import overview
  from cnnzoo.training import workdir as workdir_lib
  cwd, r = trained
  assert r["nan"]["rc"] == 3 and "training diverged" in r["nan"]["stderr"], r["nan"]["stderr"][-2000:]
  root = tmp_path / "runs"
  shutil.copytree(cwd / "runs", root)
  finished = root / "lenet_digits-smoke"
  # what a kill -9 in epoch 2 leaves: status "running" (written at the start), no results yet
  killed = root / "killed"
  shutil.copytree(finished, killed)
  os.remove(killed / "results.json")
  shutil.rmtree(killed / "checkpoints" / "2")
  (killed / "history.json").write_text(json.dumps(json.loads((killed / "history.json").read_text())[:1]))
  status = json.loads((killed / "status.json").read_text())
  (killed / "status.json").write_text(json.dumps(dict(status, state="running")))
  damaged = root / "damaged"
  shutil.copytree(finished, damaged)
  (damaged / "checkpoints" / "2" / "meta" / "metadata").write_text("{garbage")
  running = root / "running"
  shutil.copytree(finished, running)
  (root / "foreign").mkdir()
  (root / "foreign" / "notes.txt").write_text("not a run")
  (root / "old").mkdir()  # an older cnnzoo: history but no config.json
  (root / "old" / "history.json").write_text("[]")
  hand_edited = {"edited_status": ("status.json", "[1]", "status.json holds a JSON list, not an object"),
                 "edited_results": ("results.json", '{"test_accuracy": "high"}',
                                    "results.json's test_accuracy is 'high', not a number"),
                 "edited_history": ("history.json", '{"1": {"loss": 2}}', "history.json holds a JSON dict, not a list"),
                 "edited_epochs": ("history.json", '[{"loss": 2}]', "history.json is not a list of epochs")}
  for name, (file, text, _) in hand_edited.items():
    shutil.copytree(finished, root / name)
    (root / name / file).write_text(text)
  with workdir_lib.lock(str(running)):
    rows = {row.path: row for row in (overview.describe(d, str(root)) for d in overview.find_runs(str(root)))}
  assert {k: v.state for k, v in rows.items()} == {
      "lenet_digits-smoke": "finished", "mine": "finished", "nan": "diverged", "killed": "interrupted",
      "damaged": "damaged checkpoint", "running": "running", "foreign": "unreadable", "old": "unreadable",
      **{name: "unreadable" for name in hand_edited}}
  for name, (_, _, why) in hand_edited.items():  # said, and nothing half-read kept in the row
    assert why in rows[name].detail and rows[name].history == [] and rows[name].test_accuracy is None
  # RESULTS.md's reader leaves them out, without a traceback: beside a readable copy made earlier,
  # each names the (non-smoke) config and is newer, so it would be the config's row if it were read
  edited = tmp_path / "edited"
  for name in ("control", *hand_edited):
    shutil.copytree(root / name if name != "control" else finished, edited / name)
    status_path = edited / name / "status.json"
    if name != "edited_status":
      status_path.write_text(json.dumps(dict(json.loads(status_path.read_text()), config="configs/lenet_digits.py")))
    os.utime(status_path, (1e9, 1e9) if name == "control" else None)
  assert [ours.path for ours in journal.find_ours([str(edited)]).values()] == [str(edited / "control")]
  for name in hand_edited:
    shutil.rmtree(root / name)
  done = rows["lenet_digits-smoke"]
  history = json.loads((finished / "history.json").read_text())
  results = json.loads((finished / "results.json").read_text())
  best = max(history, key=lambda h: h["val_accuracy"])
  assert (done.config, done.model, done.dataset, done.epochs, done.planned) == (
      f"{CONFIG}:smoke", "lenet5", "synthetic", 2, 2)
  assert (done.best_val_accuracy, done.best_epoch, done.test_accuracy) == (best["val_accuracy"], best["epoch"],
                                                                          results["test_accuracy"])
  assert done.seconds == pytest.approx(sum(h["seconds"] for h in history))
  assert rows["killed"].detail == (f"resume: python -m experiments.main --config={CONFIG}:smoke "
                                   + " ".join(QUIET) + " (newest checkpoint: epoch 1)")
  assert re.match(r"training diverged: loss is (nan|inf|-inf) in epoch 1 ", rows["nan"].detail), rows["nan"].detail
  assert rows["damaged"].detail == "epoch 2: meta/metadata: not JSON"
  assert "no config.json" in rows["old"].detail and "not a cnnzoo run" in rows["foreign"].detail

  # the command: the table, the plot, and its bad inputs
  table, plotted, nothing, not_png = cli_batch([
      {"module": "experiments.runs", "argv": [str(root)]},
      {"module": "experiments.runs", "argv": [str(root), "--match=*smoke*", f"--plot={tmp_path / 'curves.png'}"]},
      {"module": "experiments.runs", "argv": [str(tmp_path / "nowhere")]},
      {"module": "experiments.runs", "argv": [str(root), "--plot=curves.txt"]}])
  assert table["rc"] == 0, table["stderr"]
  lines = table["stdout"].splitlines()
  assert lines[0].split() == ["run", "config", "model", "dataset", "epochs", "best", "val_acc", "test_acc", "wall",
                              "state"]
  smoke = next(line for line in lines if line.startswith("lenet_digits-smoke "))
  assert f"{results['test_accuracy']:.4f}" in smoke and " 2/2 " in smoke and smoke.endswith("finished")
  assert any(line.strip() == rows["killed"].detail for line in lines)
  assert "\x1b" not in table["stdout"] and "\r" not in table["stdout"]
  assert plotted["rc"] == 0 and (tmp_path / "curves.png").stat().st_size > 10_000
  assert plotted["stdout"].splitlines()[-1] == f"curves of 1 run(s): {tmp_path / 'curves.png'}"
  assert nothing["rc"] == 2 and nothing["stderr"].strip() == f"error: {tmp_path / 'nowhere'}: no such directory"
  assert not_png["rc"] == 2 and not_png["stderr"].strip() == "error: --plot=curves.txt: give a .png file name"


def test_output_to_a_file_has_no_escape_codes_and_progress_lines_are_rare(capsys):
  from cnnzoo import progress
  from cnnzoo.models import inspect
  assert "\x1b" not in inspect.tabulate("lenet5", terminal=False)
  assert "\x1b" in inspect.tabulate("lenet5", terminal=True)
  import io
  log = io.StringIO()
  bar = progress.LogProgress(100, "train.h5", "img", log, every=3600)
  for _ in range(100):
    bar.update(1)
  bar.close()
  assert log.getvalue().count("\n") == 1 and log.getvalue().startswith("train.h5: 100/100 img (100%)")
  log = io.StringIO()
  bar = progress.LogProgress(10, "epoch 1/2", "step", log, every=0.0, final=False)
  bar.set_postfix({"loss": "0.5"})
  bar.update(3)
  bar.close()
  assert log.getvalue().startswith("epoch 1/2: 3/10 step (30%)  loss 0.5  [") and "\r" not in log.getvalue()
  assert isinstance(progress.progress(5, "x", "img", stream=io.StringIO()), progress.LogProgress)


def test_the_persistent_compilation_cache_folder(tmp_path, monkeypatch):
  import jax
  from cnnzoo import runtime
  before = jax.config.jax_compilation_cache_dir
  min_seconds = jax.config.jax_persistent_cache_min_compile_time_secs
  try:
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "theirs"))
    assert runtime.use_compilation_cache() == str(tmp_path / "theirs")  # JAX's own setting wins
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    monkeypatch.setenv(runtime.CACHE_ENV, str(tmp_path / "ours"))
    assert runtime.use_compilation_cache() == str(tmp_path / "ours") == jax.config.jax_compilation_cache_dir
    assert (tmp_path / "ours").is_dir()
    # programs of 0.1 s or more are stored (JAX's default 1 s left the evaluation steps out)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == runtime.MIN_CACHED_COMPILE_SECONDS == 0.1
    monkeypatch.setenv(runtime.CACHE_ENV, "")
    assert runtime.use_compilation_cache() is None  # turned off
    monkeypatch.delenv(runtime.CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert runtime.use_compilation_cache() == str(tmp_path / "home" / ".cache" / "cnnzoo" / "xla")
  finally:
    jax.config.update("jax_compilation_cache_dir", before)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_seconds)


CONV_PROBE = """
from cnnzoo import cli
cli.choose_platform()
import jax, jax.numpy as jnp
conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
text = conv.lower(jnp.ones((8, 16, 16, 32)), jnp.ones((3, 3, 32, 32))).compile().as_text()
print("ynnpack" if "__ynn_fusion" in text else "xla" if " convolution(" in text else "?")
"""


def test_cnnzoo_cpu_conv_chooses_xlas_convolutions_and_the_users_own_flag_wins(monkeypatch):
  import subprocess
  from cnnzoo import runtime
  from cnnzoo.kernels import settings
  def probe(**extra):
    env = {k: v for k, v in os.environ.items() if k != settings.CPU_CONV_ENV}
    env.update(XLA_FLAGS="", **extra)
    return subprocess.run([sys.executable, "-c", CONV_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()
  # what a command line compiles a convolution of this size to: YNNPACK's fusion by default,
  # XLA's own convolution (Eigen) with CNNZOO_CPU_CONV=eigen
  assert probe() == "ynnpack" and probe(CNNZOO_CPU_CONV="eigen") == "xla"
  (flag,) = settings.CPU_CONV_FLAGS["eigen"]
  monkeypatch.setenv(settings.CPU_CONV_ENV, "eigen")
  assert settings.from_env().xla_flags == (flag,)
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
  assert runtime.add_xla_flags((flag,)) == f"--xla_force_host_platform_device_count=2 {flag}"
  assert runtime.add_xla_flags((flag,)) == f"--xla_force_host_platform_device_count=2 {flag}"  # once
  theirs = "--xla_cpu_experimental_ynn_fusion_type=+individual_convolution"
  monkeypatch.setenv("XLA_FLAGS", theirs)
  assert runtime.add_xla_flags((flag,)) == theirs
  assert settings.Settings("onednn").xla_flags == ()  # no XLA flag: oneDNN comes through FFI calls


def test_a_bad_cnnzoo_cpu_conv_is_one_error_line_and_writes_nothing(tmp_path, forkserver):
  proc = forkserver.run(lenet_cli(str(tmp_path / "run"), 1), dict(os.environ, CNNZOO_CPU_CONV="mkl"))
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and lines == ["error: CNNZOO_CPU_CONV must be auto, onednn, ynnpack, eigen, not 'mkl'"]
  assert not (tmp_path / "run").exists()


def test_a_run_directory_given_itself_is_one_run(tmp_path):
  """`experiments.runs RUN`: its checkpoints/ and eval_test/ are parts of it, not unreadable runs;
  an ensemble folder still lists its members."""
  from cnnzoo.evaluation import overview
  run = tmp_path / "run"
  for sub in ("checkpoints/5", "eval_test"):
    (run / sub).mkdir(parents=True)
  (run / "config.json").write_text("{}")
  assert overview.find_runs(str(run)) == [str(run)]
  for k in range(2):
    (tmp_path / "ens" / f"member_{k}" / "checkpoints").mkdir(parents=True)
  (tmp_path / "ens" / "ensemble_eval_test").mkdir()
  (tmp_path / "ens" / "ensemble_eval_test" / "evaluation.json").write_text("{}")  # a report, not a run
  (tmp_path / "ens" / "notes").mkdir()  # a folder with no run inside is still listed (as unreadable)
  assert overview.find_runs(str(tmp_path / "ens")) == [str(tmp_path / "ens" / f"member_{k}") for k in range(2)] + [
      str(tmp_path / "ens" / "notes")]


TCMALLOC_PROBE = """
import os, sys
from cnnzoo import cli
print(os.getpid(), flush=True)
cli.use_tcmalloc()
print(os.getpid(), os.environ.get("LD_PRELOAD"), "libtcmalloc" in open("/proc/self/maps").read(), sys.argv[1:])
"""


def test_a_command_re_executes_itself_under_tcmalloc_where_it_is_installed():
  """cli.use_tcmalloc: the same process (pid), arguments and output, with tcmalloc loaded; a set
  LD_PRELOAD (even empty) is left alone."""
  import subprocess
  from cnnzoo import cli
  lib = next((p for p in cli.TCMALLOC if os.path.exists(p)), None)
  env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
  run = lambda env: subprocess.run([sys.executable, "-c", TCMALLOC_PROBE, "--flag=1"], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=120, check=True).stdout.split("\n")
  kept = run(dict(env, LD_PRELOAD=""))
  assert kept[1].split()[1:] == ["False", "['--flag=1']"] and kept[0] == kept[1].split()[0]
  if lib is None:
    pytest.skip("tcmalloc is not installed here (apt-get install libtcmalloc-minimal4)")
  before, again, after = run(env)[:3]  # the script runs twice in one process: before and after the exec
  assert before == again and after.split() == [before, lib, "True", "['--flag=1']"]


def test_a_status_json_whose_config_is_not_a_name_leaves_the_run_unreadable(tmp_path):
  """A hand-edited status.json ({"config": 5}): the runs table and RESULTS.md's search list the run as
  unreadable with the reason, and go on."""
  from cnnzoo.evaluation import journal, overview
  run = tmp_path / "a"
  run.mkdir()
  (run / "config.json").write_text(json.dumps({"model": {"name": "lenet5"}, "num_epochs": 1, "data": {"name": "digits"}}))
  (run / "status.json").write_text(json.dumps({"config": 5, "state": "finished"}))
  row = overview.describe(str(run), str(tmp_path))
  assert (row.state, row.detail) == ("unreadable", "ValueError: status.json is not cnnzoo's (its config is not a "
                                                   "config file's name)")
  assert "unreadable" in overview.format_table([row])
  assert journal.spec_key(5) is None
