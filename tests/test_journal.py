"""The journal's runs as configs: the switches they needed (per-pixel mean, no BatchNorm, a plain
run's base under a new head, seed 003's trainable layer counts) and RESULTS.md's generator."""

import json
import os
import re

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, cli_batch, quiet
from cnnzoo.data import ops, sources
from cnnzoo.errors import ConfigError
from cnnzoo.training import loop, trainable


def flat(tree):
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(jax.device_get(tree)))


def test_pixel_mean_subtracts_the_training_mean_image_before_the_augmentation():
  """The Keras ResNet example: x / 255 minus the training set's mean image, then
  ImageDataGenerator; a flip after the subtraction differs from one before it."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 4, 6, 3), dtype=np.uint8)
  mean = sources.mean_image(images, chunk=2)  # chunks add up like one pass
  assert mean.shape == (4, 6, 3) and np.allclose(mean, images.mean(axis=0) / 255.0, atol=1e-6)
  cfg = lambda **kw: __import__("ml_collections").ConfigDict(
      {"normalize": "pixel_mean", "augment": "flip", "crop_size": 0, "erase_prob": 0.0, "eval_crop": "center",
       "test_crop": "", "std": (), "crop_padding": 4, **kw})
  train, val, _ = ops.make_preprocess(cfg(), None, None, (4, 6, 3), mean)
  np.testing.assert_allclose(val(images)[0], images / 255.0 - mean, atol=1e-6)
  key = jax.random.key(3)
  flip = np.asarray(jax.random.bernoulli(jax.random.split(key, 4)[1], 0.5, (5, 1, 1, 1)))
  normalized = images / 255.0 - mean
  expected = np.where(flip, normalized[:, :, ::-1], normalized)
  assert flip.any() and not flip.all()
  np.testing.assert_allclose(train(key, images), expected, atol=1e-6)
  with pytest.raises(ConfigError, match="needs data.crop_size=0"):
    ops.make_preprocess(cfg(crop_size=2), None, None, (4, 6, 3), mean)
  with pytest.raises(ConfigError, match="mean image of shape"):
    ops.make_preprocess(cfg(), None, None, (4, 6, 3), mean[:2])


def test_a_pixel_mean_run_keeps_its_mean_image_for_predict(tiny_digits, tmp_path):
  from cnnzoo.evaluation import predict
  tiny_digits.data.normalize = "pixel_mean"
  tiny_digits.num_epochs = 1
  loop.train_and_evaluate(tiny_digits, str(tmp_path))
  run = loop.build(tiny_digits, abstract=True)
  np.testing.assert_array_equal(np.load(tmp_path / "mean_image.npy"), sources.mean_image(run.dataset.train.images))
  predictor = predict.from_run(str(tmp_path), "latest")  # reads it back; the same probabilities as the test
  probs = np.asarray(predictor.apply(run.dataset.test.images[:4]))
  assert probs.shape == (4, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name,kwargs,params,stats", [
    ("minivggnet", {}, 2_169_770, 1_408), ("minivggnet", {"batch_norm": False}, 2_168_362, 0),
    ("resnet18", {"stem": "cifar"}, 11_173_962, 9_600), ("resnet18", {"stem": "cifar", "batch_norm": False}, 11_164_362, 0)])
def test_the_batchnorm_switch_removes_every_batchnorm_layer(name, kwargs, params, stats):
  """MiniVGGNet and ResNet-18 (CIFAR stem: 11,173,962, the usual PyTorch CIFAR count) without BatchNorm:
  seed 000's and seed 002's comparisons. The difference is exactly the BN scales and offsets."""
  from cnnzoo import models
  from cnnzoo.training.state import count_params
  model = models.create_model(name, num_classes=10, **kwargs)
  v = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  assert (count_params(v["params"]), count_params(v.get("batch_stats", {}))) == (params, stats)


def seed003(arg):
  from configs import seed003_transfer
  c = quiet(seed003_transfer.get_config(f"{arg},smoke"))
  c.checkpoint.async_save = False
  return c


@pytest.mark.parametrize("arg,layers", [("ft5", ("conv6", "bn6")), ("ft8", ("conv5", "bn5", "conv6", "bn6")),
                                        ("ft13", ("conv4", "bn4", "conv5", "bn5", "conv6", "bn6"))])
def test_seed003_fine_tuning_trains_the_last_n_keras_layers(arg, layers):
  """The last 5 / 8 / 13 of the CIFAR network's 24 Keras layers (conv, ReLU, BN, pools, dropouts)
  hold these parameters; the head trains too, nothing else does."""
  config = seed003(arg)
  run = loop.build(config, abstract=True)
  spec = run.stages[0].trainable
  labels = flat(spec.labels(run.state.params))
  assert sorted({k[1] for k, v in labels.items() if v == "train" and k[0] == "base"}) == sorted(layers)
  assert {k[1] for k, v in labels.items() if k[0] == "head"} == {"hidden", "out"}
  assert all(v == "train" for k, v in labels.items() if k[0] == "head")
  conv = {"conv4": 3 * 3 * 64 * 64 + 64, "conv5": 3 * 3 * 64 * 128 + 128, "conv6": 3 * 3 * 128 * 128 + 128}
  bn = {"bn4": 128, "bn5": 256, "bn6": 256}
  head = 512 * 1024 + 1024 + 1024 * 200 + 200
  assert spec.trainable == sum({**conv, **bn}[n] for n in layers) + head


def test_a_plain_runs_layers_become_the_base_of_a_surgery_run(tmp_path, capsys):
  """Seed 003: the CIFAR-10 network trained whole, then its layers up to the classifier under a new
  head on Tiny-ImageNet (model.init_from in the config; --init_from does the same)."""
  from configs import seed003_cifar10
  from cnnzoo.training.checkpoint import Checkpointer
  plain = quiet(seed003_cifar10.get_config("smoke"))
  plain.seed = 7
  first = loop.build(plain)
  ckpt = Checkpointer(str(tmp_path / "cifar" / "checkpoints"), best_metric=None, async_save=False)
  ckpt.save(3, first.state.checkpoint_tree(), meta={"identity": first.identity, "history": []},
            metrics={"val_loss": 1.0})
  ckpt.close()
  config = seed003("")
  config.model.init_from = str(tmp_path / "cifar")
  config.num_epochs = 1
  config.stages = ()
  loop.train_and_evaluate(config, str(tmp_path / "tiny"))
  assert "its layers up to the classifier become the base" in capsys.readouterr().err
  from cnnzoo.training.restore import restore_run
  _, run, state, _ = restore_run(str(tmp_path / "tiny"), "1")
  got, theirs = flat(state.params), flat(first.state.params)
  for path, value in theirs.items():  # trainable=head: the base is the CIFAR run's, unchanged by training
    if path[0] != "head":
      np.testing.assert_array_equal(got[("base", *path)], value)
  assert ("head", "out", "kernel") in got and got[("head", "out", "kernel")].shape == (512, 200)
  # a config whose starting run is not there says which run to train first
  config.model.init_from = str(tmp_path / "missing")
  with pytest.raises(Exception, match="train that run first"):
    loop.train_and_evaluate(config, str(tmp_path / "other"))
  assert not (tmp_path / "other").exists()


def write_run(directory, spec, epochs, planned, val, test=None, metric="val_accuracy", state="finished"):
  os.makedirs(directory / "checkpoints", exist_ok=True)
  (directory / "config.json").write_text(json.dumps({"model": {"name": "m"}, "num_epochs": planned,
                                                     "data": {"name": "d"}, "journal": {"metric": metric}}))
  (directory / "history.json").write_text(json.dumps(
      [{"epoch": e + 1, "val_accuracy": v, "seconds": 30.0} for e, v in enumerate(val[:epochs])]))
  (directory / "status.json").write_text(json.dumps({"state": state, "config": spec, "command": f"python -m ... {spec}"}))
  if test is not None:
    (directory / "results.json").write_text(json.dumps({"test_accuracy": test, "hardware": "1 x cpu (test)"}))
  (directory / "history.png").write_bytes(b"png")


def test_results_md_puts_ours_beside_the_seeds_figure(tmp_path):
  """experiments.results: the newest non-smoke run of each journal config, shortened runs said so,
  the others listed with their command and dataset; bad --out in one line."""
  runs = tmp_path / "runs"
  write_run(runs / "lenet_digits", "configs/lenet_digits.py", 20, 20, [0.5] * 20, test=0.9833, metric="test_accuracy")
  write_run(runs / "flowers", "configs/minivggnet_flowers17.py:noaug", 100, 100, [0.5] * 100, test=0.61,
            metric="test_accuracy")
  write_run(runs / "tiny", "configs/resnet_tiny.py", 5, 75, [0.2, 0.3, 0.35, 0.31, 0.33], test=0.3)
  write_run(runs / "smoke", "configs/minigooglenet_cifar10.py:smoke", 2, 2, [0.1, 0.1], test=0.1)
  out = tmp_path / "RESULTS.md"
  results, bad, missing = cli_batch([
      {"module": "experiments.results", "argv": [str(runs), f"--out={out}"], "cwd": ROOT},
      {"module": "experiments.results", "argv": [str(runs), f"--out={tmp_path / 'x.txt'}"], "cwd": ROOT},
      {"module": "experiments.results", "argv": [str(tmp_path / "nowhere")], "cwd": ROOT}])
  assert results["rc"] == 0, results["stderr"]
  text = out.read_text()
  rows = {line.split("|")[2].strip(" `"): line for line in text.splitlines() if line.startswith("| ") and "`" in line}
  assert "| none reported (seed none (offline first run)) | 0.9833 | 20 |" in rows["configs/lenet_digits.py"]
  assert "[history.png](results/lenet_digits.png)" in rows["configs/lenet_digits.py"]
  assert (tmp_path / "results" / "minivggnet_flowers17-noaug.png").read_bytes() == b"png"
  assert "10m00s" in rows["configs/lenet_digits.py"] and "1 x cpu (test)" in rows["configs/lenet_digits.py"]
  assert "| test_accuracy 0.57 (seed 2020-11-17) | 0.6100 | 100 |" in rows["configs/minivggnet_flowers17.py:noaug"]
  assert "| 0.3300 (0.3500) | 5 of 75, shortened |" in rows["configs/resnet_tiny.py"]
  assert "not run here" in rows["configs/minigooglenet_cifar10.py"]  # a smoke run never counts
  assert "not run here" in rows["configs/minivggnet_flowers17.py"]  # the :noaug run is another row
  assert "- **MiniGoogLeNet, CIFAR-10, poly 2 decay**: `python -m experiments.main --config=configs/minigooglenet_cifar10.py`" in text
  assert "needs cifar10: prepare it once with `pip install tensorflow && tfds build cifar10`" in text
  assert f"{out}: " in results["stdout"] and "with a run of ours" in results["stdout"]
  from cnnzoo.evaluation.journal import list_configs
  assert len(rows) == len(list_configs())  # every journal run has its row
  for r, message in ((bad, "give a .md file name"), (missing, "no such directory")):
    lines = r["stderr"].strip().splitlines()
    assert r["rc"] == 2 and len(lines) == 1 and message in lines[0], r


def test_results_md_lists_every_seed_of_a_real_data_config_with_mean_and_std(tmp_path):
  """The "Reproduced on real data here" section: each seed's run (the newest one a seed), the mean
  and sample std over seeds, an ensemble against its best member, unfinished runs left out."""
  from cnnzoo.evaluation import journal, results_page

  recipes = {j.config: j.recipe for j in journal.journal_runs(os.path.join(ROOT, "configs"))}

  def real_run(directory, spec, seed, test, epochs=25, speeds=(800.0, 900.0, 1000.0)):
    write_run(directory, spec, epochs, 25, [0.9] * epochs, test=test, metric="test_accuracy")
    (directory / "config.json").write_text(json.dumps({**recipes[spec], "seed": seed}))
    results = json.loads((directory / "results.json").read_text())
    (directory / "results.json").write_text(json.dumps({**results, "best_epoch": 20 + seed}))
    (directory / "history.json").write_text(json.dumps(
        [{"epoch": e + 1, "val_accuracy": 0.9, "seconds": 60.0, "img_per_sec": speeds[e % len(speeds)]}
         for e in range(epochs)]))

  runs = tmp_path / "runs"
  for k, acc in enumerate((0.93, 0.94, 0.95)):
    real_run(runs / "ens" / f"member_{k}", "configs/fashion_mnist.py:ensemble", k, acc)
  (runs / "ens" / "ensemble_eval_test").mkdir()
  (runs / "ens" / "ensemble_eval_test" / "evaluation.json").write_text(json.dumps({"rank1": 0.9555}))
  real_run(runs / "lenet_old", "configs/fashion_mnist.py:lenet", 0, 0.50)
  os.utime(runs / "lenet_old" / "status.json", (1, 1))
  real_run(runs / "lenet", "configs/fashion_mnist.py:lenet", 0, 0.8964, epochs=20)
  write_run(runs / "resnet", "configs/fashion_mnist.py:resnet20", 3, 30, [0.9] * 3)  # running: no results.json
  real_run(runs / "lenet_resumed", "configs/fashion_mnist.py:lenet", 0, 0.99)  # another recipe: not counted
  status = json.loads((runs / "lenet_resumed" / "status.json").read_text())
  status["command"] = ("python -m experiments.main --config=configs/fashion_mnist.py:lenet --workdir=x "
                       "--resume_epoch=10 --config.optim.lr=1e-4")
  (runs / "lenet_resumed" / "status.json").write_text(json.dumps(status))  # the newest lenet run
  assert journal.same_recipe("python -m experiments.main --config=c.py:x --workdir=w --config.seed=3 "
                             "--config.monitor.plot=False")
  assert not journal.same_recipe("python -m experiments.main --config=c.py --config.optim.lr=0.1")
  real_run(runs / "digits", "configs/lenet_digits.py", 0, 0.98)  # no reference figure: the journal's table
  real_run(runs / "older", "configs/fashion_mnist.py:lenet", 5, 0.5)  # an older version of the recipe
  config = json.loads((runs / "older" / "config.json").read_text())
  config["optim"]["lr"] = 0.1
  (runs / "older" / "config.json").write_text(json.dumps(config))
  real_run(runs / "lenet_changed", "configs/fashion_mnist.py:lenet", 6, 0.5)  # resumed with new settings
  (runs / "lenet_changed" / "config.until_epoch10.json").write_text("{}")
  configs = journal.journal_runs(os.path.join(ROOT, "configs"))
  real, ensembles = journal.find_real([str(runs)], configs)
  assert ("lenet_digits", frozenset()) not in real
  plots = results_page.copy_real_plots(real, str(tmp_path / "results"))
  assert sorted(os.listdir(tmp_path / "results")) == [
      "fashion_mnist-ensemble-seed0.png", "fashion_mnist-ensemble-seed1.png", "fashion_mnist-ensemble-seed2.png",
      "fashion_mnist-lenet-seed0.png"]
  text = "\n".join(results_page.render_real(configs, real, ensembles, str(tmp_path), plots))
  rows = {line.split("|")[2].strip(" `"): line for line in text.splitlines() if line.startswith("| ") and "`" in line}
  assert "| 0.9400 +- 0.0100 (n=3) | 3 (0, 1, 2) | 0.9555 (best member 0.9500, seed 2) |" in rows[
      "configs/fashion_mnist.py:ensemble"]
  assert "| 0.916 (2 Conv+pooling (TensorFlow's tutorial)) | 0.8964 (n=1) | 1 (0) | - |" in rows[
      "configs/fashion_mnist.py:lenet"]
  assert "| not run here |" in rows["configs/fashion_mnist.py:resnet20"]
  assert "| see `configs/fashion_mnist.py:ensemble`: its members are this recipe's seeds |" in rows[
      "configs/fashion_mnist.py"]
  assert ("| configs/fashion_mnist.py:ensemble | 1 | 0.9400 | 21 | 25 | 25m00s | 900 | 1 x cpu (test) | "
          "[history.png](results/fashion_mnist-ensemble-seed1.png) |") in text
  assert "| configs/fashion_mnist.py:lenet | 0 | 0.8964 | 20 | 20 | 20m00s | 900 |" in text
  assert (tmp_path / "results" / "fashion_mnist-lenet-seed0.png").read_bytes() == b"png"


def test_the_readme_lists_every_journal_run():
  from cnnzoo.evaluation.journal import list_configs
  readme = open(os.path.join(ROOT, "README.md")).read()
  missing = [r["config"] for r in list_configs() if f"| `{r['config'].replace('configs/', '')}` |" not in readme]
  assert not missing, f"README's Experiments table lacks {missing}"


def test_a_class_subset_is_relabelled_in_the_order_given():
  """data.classes (seed 003's 2-class AlexNet run): only those classes' images, labels 0..k-1."""
  from cnnzoo.data.sources import Dataset, Split, select_classes
  rng = np.random.default_rng(0)
  split = lambda n: Split(rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8), np.arange(n, dtype=np.int32) % 4)
  ds = Dataset("toy", split(12), split(8), split(4), ["a", "b", "c", "d"])
  sub = select_classes(ds, ("c", 0))
  assert sub.class_names == ["c", "a"] and len(sub.train) == 6 and len(sub.test) == 2
  np.testing.assert_array_equal(sub.train.labels, [1, 0, 1, 0, 1, 0])  # a=0 -> 1, c=2 -> 0
  np.testing.assert_array_equal(sub.train.images, ds.train.images[[0, 2, 4, 6, 8, 10]])
  assert sub.mean == pytest.approx(sources.channel_stats(sub.train.images)[0])
  for bad, message in ((("z", "a"), "'z' is not a class of toy"), ((7, 0), "7 is not a class index"),
                       (("a",), "at least two different classes"), (("a", 0), "at least two different")):
    with pytest.raises(ConfigError, match=message):
      select_classes(ds, bad)


def test_a_field_added_after_a_run_counts_as_its_default():
  """RESULTS.md keeps a run whose config.json predates a new config field while the config leaves
  that field at its default, and drops it once the config sets the field to something else."""
  from cnnzoo.evaluation.journal import same_config
  defaults = {"schedule": {"name": "constant", "step_offset": 0}, "seed": 0}
  run = {"schedule": {"name": "step"}, "seed": 0}
  assert same_config(run, {"schedule": {"name": "step", "step_offset": 0}, "seed": 0}, defaults)
  assert not same_config(run, {"schedule": {"name": "step", "step_offset": 1}, "seed": 0}, defaults)
  assert not same_config(run, {"schedule": {"name": "poly", "step_offset": 0}, "seed": 0}, defaults)
  assert not same_config({**run, "gone": 1}, {"schedule": {"name": "step", "step_offset": 0}, "seed": 0}, defaults)
  assert not same_config(run, {"schedule": {"name": "step", "new": 1}, "seed": 0}, defaults)  # no default known


def test_every_journal_run_says_where_its_recipe_comes_from():
  """RESULTS.md's recipe column: journal, journal + book, or our choice with why."""
  from cnnzoo.evaluation.journal import journal_runs
  runs = journal_runs(os.path.join(ROOT, "configs"))
  bad = [(j.config, j.recipe_source) for j in runs if not re.match(r"(journal( \+ book)?\b|our choice: \S)", j.recipe_source)]
  assert not bad, bad
  sources = {j.config: j.recipe_source for j in runs}
  assert sources["configs/lenet_mnist.py"] == "journal"
  assert sources["configs/lenet_digits.py"].startswith("our choice: a stand-in")


def test_the_resnet_recipes_augment_as_the_book_they_follow():
  """Where the journal is silent on augmentation, the book code it follows decides (issue 29):
  Tiny-ImageNet's ResNet augments as DeeperGoogLeNet on the same data (rotation 18, zoom 0.15,
  shift 0.2, shear 0.15, flips); CIFAR-10's shifts 0.1 and flips and subtracts the per-pixel mean."""
  from configs import deepergooglenet_tiny, resnet_cifar10, resnet_tiny
  from cnnzoo.training import components

  def data(module):
    c = module.get_config()
    components.resolve(c)  # the augmentation's settings at their defaults where the config leaves them
    return c.data

  fields = lambda d: (d.augment, d.rotation, d.zoom, d.shift, d.shear, d.crop_size)
  tiny = data(resnet_tiny)
  assert fields(tiny) == fields(data(deepergooglenet_tiny)) == ("affine_flip", 18.0, 0.15, 0.2, 0.15, 0)
  cifar = data(resnet_cifar10)
  assert fields(cifar) == ("affine_flip", 0.0, 0.0, 0.1, 0.0, 0) and cifar.normalize == "pixel_mean"
  assert resnet_cifar10.get_config("l2small").optim.l2 == 1e-4 and resnet_cifar10.get_config().optim.l2 == 5e-4


def test_one_broken_config_file_is_named_and_the_others_are_listed(tmp_path, capsys):
  """A work-in-progress config with a NameError beside a good one: one warning line naming it, and
  the good one's runs listed (--list_configs and experiments.results read configs/ so)."""
  import shutil
  from cnnzoo.evaluation import journal
  shutil.copy(os.path.join(ROOT, "configs", "lenet_digits.py"), tmp_path / "lenet_digits.py")
  (tmp_path / "draft.py").write_text("def get_config(arg=None):\n  return undefined_name\n")
  runs = journal.journal_runs(str(tmp_path))
  assert [r.config for r in runs] == ["configs/lenet_digits.py"]
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("warning: ") and err[0].endswith(
      "draft.py left out: it fails to load (NameError: name 'undefined_name' is not defined)")
