"""Components of one's own (docs/extending.md): the page's own two files, written to a folder
outside the repository, trained from another folder, then evaluated, used for predictions and
resumed with no extra flag; the page's error lines; the registries' refusals."""

import json
import os
import re

import numpy as np
import pytest

from conftest import ROOT, cli_batch, devices_env

PAGE = os.path.join(ROOT, "docs", "extending.md")


def page_files() -> dict:
  """{"my_parts.py": source, ...}: the page's python blocks, each named by its first line."""
  with open(PAGE) as f:
    text = f.read()
  blocks = re.findall(r"```python\n(.*?)```", text, re.S)
  return {b.splitlines()[0].lstrip("# ").strip(): b for b in blocks}


def page_errors() -> list[tuple[str, str]]:
  """[(the page's command's flags, the error line it shows)] from its ```text block."""
  with open(PAGE) as f:
    text = f.read()
  block = re.search(r"```text\n(.*?)```", text, re.S).group(1).splitlines()
  return [(cmd.split("--config=my_config.py", 1)[1].split(), err) for cmd, err in zip(block[::2], block[1::2])]


def write_project(folder, parts_extra: str = "") -> str:
  """The page's my_parts.py (plus `parts_extra`) and my_config.py in `folder`; the config's path."""
  os.makedirs(folder, exist_ok=True)
  files = page_files()
  for name, source in files.items():
    with open(os.path.join(folder, name), "w") as f:
      f.write(source + (parts_extra if name == "my_parts.py" else ""))
  return os.path.join(folder, "my_config.py")


def main(config, workdir, *flags, cwd):
  return {"module": "experiments.main", "argv": [f"--config={config}", f"--workdir={workdir}",
                                                 "--config.monitor.plot=False", "--config.monitor.tensorboard=False",
                                                 *flags], "cwd": str(cwd)}


def history(workdir) -> list[dict]:
  with open(os.path.join(workdir, "history.json")) as f:
    return json.load(f)


def test_a_users_components_train_evaluate_predict_and_resume_with_no_extra_flag(tmp_path):
  config = write_project(tmp_path / "project")
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  run, plain = tmp_path / "runs" / "mine", tmp_path / "runs" / "no_augmentation"
  from PIL import Image
  stripes = np.zeros((16, 16), np.uint8)
  stripes[::4] = stripes[1::4] = 200  # horizontal stripes, as the dataset draws class 0
  Image.fromarray(stripes).save(tmp_path / "stripe.png")
  out = cli_batch([
      main(config, run, cwd=elsewhere),
      main(config, plain, "--config.data.augment=none", cwd=elsewhere),
      {"module": "experiments.evaluate", "argv": [f"--workdir={run}", "--checkpoint=latest"], "cwd": str(tmp_path)},
      {"module": "experiments.predict", "argv": [f"--workdir={run}", "--checkpoint=latest", "--top=2",
                                                 str(tmp_path / "stripe.png")], "cwd": str(tmp_path)},
      main(config, run, "--config.num_epochs=4", cwd=tmp_path),  # a resume, from a third folder
  ])
  plain_before = history(plain)
  out += cli_batch([
      main(config, tmp_path / "runs" / "started", f"--init_from={run}", cwd=elsewhere),
      main(config, plain, "--config.data.augment=none", "--resume_epoch=2", cwd=elsewhere),
      {**main(config, tmp_path / "runs" / "two_devices", cwd=elsewhere), "env": devices_env(2)},
  ])
  for result in out:
    assert result["rc"] == 0, result["stderr"][-2000:]
  trained, evaluated, predicted, resumed, started, back, two = out[0], *out[2:]
  # the schedule of one's own, epoch by epoch: 0.01 * 0.5 ** epoch (config.schedule.factor)
  rates = [h["lr"] for h in history(run)]
  np.testing.assert_allclose(rates, [0.01, 0.005, 0.0025, 0.00125], rtol=1e-6)
  assert re.search(r"test: loss \d\.\d{4}  accuracy \d\.\d{4}  error \d\.\d{4}  \(32 images\)", trained["stdout"])
  # the metric of one's own: in every record, its val_ form followed by the best checkpoint
  for h in history(run):
    assert h["error"] == pytest.approx(1 - h["accuracy"]) and h["val_error"] == pytest.approx(1 - h["val_accuracy"])
  with open(os.path.join(run, "results.json")) as f:
    results = json.load(f)
  assert results["test_error"] == pytest.approx(1 - results["test_accuracy"])
  lowest = min(h["val_error"] for h in history(run))  # checkpoint.best_metric = val_error, mode min
  assert history(run)[results["best_epoch"] - 1]["val_error"] == lowest
  # the augmentation of one's own ran: the same run without it (same seed, batches, initial
  # weights) trains on other images from the first epoch on
  first, without = history(run)[0], history(plain)[0]
  assert first["loss"] != without["loss"], (first, without)
  assert history(run)[:3] != history(plain)[:3]
  assert re.search(r"accuracy +\d\.\d+ +\d+", evaluated["stdout"]), evaluated["stdout"][-1000:]
  assert re.search(r"(horizontal|vertical)", predicted["stdout"]), predicted["stdout"]
  assert "resuming after epoch 3 of 4" in resumed["stdout"] and len(history(run)) == 4
  # --init_from another run of one's own model, --resume_epoch, and two devices
  # (a run started from the trained weights begins where they left off: a lower first-epoch loss)
  assert history(tmp_path / "runs" / "started")[0]["loss"] < history(run)[0]["loss"]
  strip = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "img_per_sec", "data_seconds")} for r in h]
  assert "resuming after epoch 2 of 3" in back["stdout"] and strip(history(plain)) == strip(plain_before)
  assert re.search(r"devices: 2 x ", two["stdout"]), two["stdout"][:1000]


def test_the_other_commands_take_ones_own_components(tmp_path):
  """summarize and --list_components with --imports / --config, an ensemble of the model, features
  extracted from a run on the dataset of one's own, the runs table, and stages that switch between
  cnnzoo's schedule and one's own."""
  config = write_project(tmp_path / "project")
  run, members = tmp_path / "runs" / "mine", tmp_path / "runs" / "pair"
  parts = str(tmp_path / "project" / "my_parts.py")
  out = cli_batch([
      main(config, run, cwd=tmp_path),
      {"module": "experiments.summarize", "argv": [f"--imports={parts}", "--model=tiny_cnn"], "cwd": str(tmp_path)},
      {"module": "experiments.main", "argv": [f"--config={config}", "--list_components"], "cwd": str(tmp_path)},
      main(config, members, "--config.ensemble.members=2", "--config.num_epochs=1", cwd=tmp_path),
      {"module": "experiments.extract_features", "argv": [f"--workdir={run}", "--data=stripes", "--layer=Conv_0",
                                                          f"--out={tmp_path / 'features'}"], "cwd": str(tmp_path)},
      {"module": "experiments.runs", "argv": [str(tmp_path / "runs")], "cwd": str(tmp_path)},
      main(config, tmp_path / "runs" / "staged",  # a stage turns to cnnzoo's constant rate, the next back to halving
           "--config.stages=((1, 'schedule.name=constant'), (3, 'schedule.name=halving,schedule.factor=0.8'))",
           cwd=tmp_path),
  ])
  for result in out:
    assert result["rc"] == 0, result["stderr"][-2000:]
  summary, listing, ensemble, extracted, table, _ = (r["stdout"] for r in out[1:])
  rates = [h["lr"] for h in history(tmp_path / "runs" / "staged")]
  np.testing.assert_allclose(rates, [0.01, 0.01 * 0.8, 0.01 * 0.8 ** 2], rtol=1e-6)
  assert "1,106" in summary  # 3x3x1x8 + 8 conv, 8x8x8 x 2 + 2 dense
  for line in ("models (config.model.name): ", "  stripes: size=16, per_split=64  [my_parts]",
               "  halving: factor=0.5  [my_parts]", "  signum: beta=0.9  [my_parts]",
               "  invert: invert_prob=0.5  [my_parts]", "  poly: per_step=False, warmup_epochs=0, warmup_init_lr=0.0, "
               "end_lr=0.0, decay_epochs=0, power=1.0"):
    assert line in listing, (line, listing)
  assert "error [my_parts]" in listing and "tiny_cnn" in listing
  with open(os.path.join(members, "ensemble_eval_test", "evaluation.json")) as f:
    evaluation = json.load(f)
  assert evaluation["count"] == 32 and evaluation["ensemble_of"] == 2
  assert re.search(r"train: 64 images -> 2048 features each", extracted), extracted  # 16 x 16 x 8
  assert "mine" in table and "pair" in table, table
  with open(os.path.join(run, "config.json")) as f:
    recorded = json.load(f)
  assert recorded["imports"] == ["my_parts"] and recorded["import_dirs"] == [str(tmp_path / "project")]
  assert recorded["schedule"] == {"name": "halving", "from_stage_start": False, "factor": 0.5}
  assert recorded["optim"]["beta"] == 0.9 and recorded["data"]["invert_prob"] == 0.5
  assert recorded["metrics"] == {"train": ["accuracy", "error"], "eval": ["accuracy", "error"]}


CLASH = '''

@cnnzoo.register_schedule("cosine")
def my_cosine(lr, steps_per_epoch, num_epochs, config):
  return lambda step: lr
'''

WRONG_TYPES = '''

@cnnzoo.register_dataset("listed")
def listed(config):
  return [1, 2, 3]


@cnnzoo.register_optimizer("bare")
def bare(learning_rate, config):
  return lambda grads: grads


@cnnzoo.register_augmentation("cropper")
def cropper(key, images, data):
  return images[:, 1:]


@cnnzoo.register_model(input_shape=(16, 16, 1), num_classes=2)
def not_a_module(*, num_classes, **options):
  return "a module"


@cnnzoo.register_schedule("flat")
def flat(lr, steps_per_epoch, num_epochs, config):
  return 0.1


@cnnzoo.register_metric("mean_only")
def mean_only(logits, labels):
  return jnp.mean(logits)
'''


def test_mistakes_with_ones_own_components_are_one_line_and_write_nothing(tmp_path):
  good = write_project(tmp_path / "good")
  clash = write_project(tmp_path / "clash", CLASH)
  wrong = write_project(tmp_path / "wrong", WRONG_TYPES)
  runs = tmp_path / "runs"
  cases = {  # (config, flags) -> the error line
      (good, ("--config.imports=my_partz",)):
          f"error: config.imports: cannot import 'my_partz': no such module (looked in {tmp_path / 'good'} "
          "and the Python path)",
      (good, ("--config.imports=my_parts,broken",)):
          f"error: config.imports: cannot import 'broken': no such module (looked in {tmp_path / 'good'} and the "
          "Python path)",
      (clash, ()): "error: schedule 'cosine' (my_parts) is already registered (cnnzoo's own); choose another name",
      (wrong, ("--config.data.name=listed",)):
          "error: dataset 'listed' (my_parts.listed) returned list, not a cnnzoo.data.Dataset",
      (wrong, ("--config.optim.name=bare",)):
          "error: optimizer 'bare' (my_parts.bare) returned function, not an optax.GradientTransformation",
      (wrong, ("--config.data.augment=cropper",)):
          "error: augmentation 'cropper' (my_parts.cropper) returned (16, 15, 16, 1) for a batch (16, 16, 16, 1); "
          "a batch op keeps the batch's shape",
      (wrong, ("--config.model.name=not_a_module",)):
          "error: model 'not_a_module' (my_parts.not_a_module) returned str, not a flax.linen.Module",
      (wrong, ("--config.schedule.name=flat",)):
          "error: schedule 'flat' (my_parts.flat) returned float, not a function of the step (an optax schedule)",
      (wrong, ("--config.metrics.eval=('accuracy','error','mean_only')",)):
          "error: metric 'mean_only' (my_parts.mean_only) returned () for 2 images; it gives one value per image",
      (good, ("--config.metrics.train=('accuracy','top3')",)):
          "error: --config.metrics.train: 'top3': no such metric; registered: accuracy, error, top5_accuracy",
      (good, ("--config.optim.name=signumm",)):
          "error: --config.optim.name='signumm': no such optimizer; did you mean signum? registered: signum, adam, "
          "rmsprop, sgd",
      (good, ("--config.schedule.factor=0",)): "error: --config.schedule.factor=0.0: must be > 0",
      (good, ("--config.schedule.name=cosine", "--config.schedule.factor=0.8")):
          "error: --config.schedule.factor: no such config field 'factor' for schedule 'cosine' (a setting of "
          "schedule 'halving'); schedule 'cosine' takes decay_epochs, end_lr, per_step, warmup_epochs, warmup_init_lr",
  }
  for flags, line in page_errors():  # the page's own examples
    cases[(good, tuple(flags))] = line.replace("/path/to", str(tmp_path / "good"))
  keys = list(cases)
  out = cli_batch([main(config, runs / f"case{i}", *flags, cwd=tmp_path) for i, (config, flags) in enumerate(keys)])
  for i, ((config, flags), result) in enumerate(zip(keys, out)):
    assert result["rc"] == 2, (flags, result["stderr"][-1500:])
    assert result["stderr"].strip().splitlines() == [cases[(config, flags)]], flags
    assert not os.path.exists(runs / f"case{i}"), flags
  assert not os.path.exists(runs)


def test_the_registries_refuse_a_bad_registration_in_one_line():
  import cnnzoo
  from cnnzoo.registry import RegistryError
  with pytest.raises(RegistryError, match=r"^register_schedule: unknown argument 'per_stepp'"):
    cnnzoo.register_schedule("x", per_stepp=True)
  with pytest.raises(RegistryError, match=r"^optimizer 'y': the default 0.5 of setting 'beta2': must be >= 1.0$"):
    cnnzoo.register_optimizer("y", settings={"beta2": cnnzoo.setting(0.5, low=1.0)})(lambda lr, c: None)
  with pytest.raises(RegistryError, match=r"^schedule 'z': 'from_stage_start' is a field of config.schedule itself"):
    cnnzoo.register_schedule("z", settings={"from_stage_start": 1})(lambda *a: None)
  with pytest.raises(RegistryError, match=r"^register_model: input_shape=\(28, 28\): expected \(height, width, channels\)"):
    cnnzoo.register_model(input_shape=(28, 28), num_classes=10)


def test_import_cnnzoo_imports_no_jax_and_the_contract_is_at_the_top():
  import subprocess
  import sys
  code = ("import sys, cnnzoo; assert 'jax' not in sys.modules, 'jax imported'; "
          "assert sorted(cnnzoo.__all__) == ['Dataset', 'Split', 'create_model', 'list_models', 'register_augmentation', "
          "'register_dataset', 'register_metric', 'register_model', 'register_optimizer', 'register_schedule', 'setting']; "
          "import cnnzoo.data.dataset as d; assert cnnzoo.register_dataset is d.register_dataset; print('ok')")
  result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.stdout.strip() == "ok", result.stderr[-2000:]
