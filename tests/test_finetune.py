"""Network surgery and fine-tuning: layer numbering as Keras', what trains and what stays frozen
(parameters, optimizer state, BatchNorm), Keras weights in the base, and the two-phase VGG16
recipe as one resumable command."""

import functools
import os

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import cli_batch, fast_keras, quiet, read_json, without_timing
from cnnzoo.models import inspect
from cnnzoo.models.heads import create_transfer_model
from cnnzoo.training import loop, trainable

keras = fast_keras()


def flat(tree):
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(jax.device_get(tree)))


def test_vgg16_layers_are_numbered_as_keras_numbers_them():
  reference = [layer.name for layer in keras.applications.VGG16(weights=None, include_top=False).layers]
  rows = inspect.layer_table("vgg16", include_top=False)
  assert [r[1] for r in rows][1:] == reference[1:] and rows[0][1] == "input"
  assert [r[1] for r in rows].index("block5_conv1") == reference.index("block5_conv1") == 15
  # the surgery model numbers its base the same way, the head after it
  model = create_transfer_model("vgg16", num_classes=17, head="fc")
  layers = trainable.model_layers(model, (32, 32, 3))
  assert ["/".join(p) for p in layers.paths[14:]] == ["base/block5_conv1", "base/block5_conv2", "base/block5_conv3",
                                                       "base/block5_pool", "head/hidden", "head/dropout", "head/out"]
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))["params"]
  by_index, by_name = (trainable.resolve(s, params, layers, True) for s in ("from:15", "from:block5_conv1"))
  assert by_index.labels(params) == by_name.labels(params)
  labels = flat(by_index.labels(params))
  assert {k[1] for k, v in labels.items() if v == "train"} == {"block5_conv1", "block5_conv2", "block5_conv3",
                                                               "hidden", "out"}
  assert by_index.trainable == 3 * (3 * 3 * 512 * 512 + 512) + 512 * 256 + 256 + 256 * 17 + 17
  assert by_index.trainable + by_index.frozen == 14_714_688 + 512 * 256 + 256 + 256 * 17 + 17


def resnet_surgery(spec, **overrides):
  """A small Keras-form ResNet50 (one bottleneck per stage) with a gap head on 32x32 synthetic images."""
  from configs import base
  c = quiet(base.get_config())
  c.model.name = "resnet50_keras"
  c.model.kwargs.stage_sizes = (1, 1, 1, 1)
  c.model.head = "gap"
  c.optim.name, c.optim.lr, c.optim.momentum = "sgd", 0.05, 0.9
  c.optim.trainable = spec
  base.smoke(c, (32, 32, 3), 5)
  for key, value in overrides.items():
    section, field = key.split(".")
    c[section][field] = value
  return c


def test_frozen_parameters_keep_their_values_and_get_no_optimizer_state():
  run = loop.build(resnet_surgery("from:conv5_block1_0_conv"))  # conv5 from its first layer: the shortcut
  before, stats_before = flat(run.state.params), flat(run.state.batch_stats)
  state, _, _ = loop.train_epoch(run, run.state, 0, loop.monitor.ProgressBar(False), log_every=10)
  after, stats_after = flat(state.params), flat(state.batch_stats)
  train = {k for k in before if k[0] == "head" or k[1].startswith("conv5")}
  assert train and len(train) < len(before)
  for k in before:
    if k in train:
      assert not np.array_equal(before[k], after[k]), k
    else:
      assert np.array_equal(before[k], after[k]), k  # bitwise: no update at all
  # optimizer state (SGD momentum) exists for the trainable parameters only
  moments = [x for x in jax.tree.leaves(state.opt_state) if np.ndim(x) > 0]
  assert sorted(x.shape for x in moments) == sorted(before[k].shape for k in train)
  assert sum(np.size(x) for x in moments) == sum(before[k].size for k in train)
  # frozen BatchNorm layers run in inference mode: their moving statistics stay; trainable ones move
  for k in stats_before:
    if k[1].startswith("conv5"):
      assert not np.array_equal(stats_before[k], stats_after[k]), k
    else:
      assert np.array_equal(stats_before[k], stats_after[k]), k


def test_a_frozen_base_runs_without_its_dropout_as_the_seeds_predict_did():
  """seed 003's transfer (experiment 5): the CIFAR-10 base has dropout 0.2 / 0.3 / 0.4; frozen
  under a new head, it runs in inference mode while the head trains, as the seed's base did (its
  outputs came from Keras' predict). The head's own dropout still trains."""
  model = create_transfer_model("seed003_cifar_net", num_classes=5, head="fc", hidden=16, dropout=0.0)
  x = jax.random.uniform(jax.random.key(0), (8, 32, 32, 3))
  variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(1), x)
  head_only = trainable.resolve("head", variables["params"], trainable.model_layers(model, (32, 32, 3)), True)

  @jax.jit
  def train_mode(key):
    with nn.intercept_methods(trainable.inference_modules(head_only.inference_modules)):
      return model.apply(variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"])[0]

  inference = np.asarray(jax.jit(lambda: model.apply(variables, x, train=False))())
  for key in (2, 3):
    assert np.array_equal(np.asarray(train_mode(jax.random.key(key))), inference)
  unfrozen = jax.jit(lambda: model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)},
                                         mutable=["batch_stats"])[0])()
  assert not np.allclose(np.asarray(unfrozen), inference, atol=1e-4)  # the base's dropout, when it trains


def test_a_frozen_batchnorm_normalizes_with_its_moving_statistics_in_training():
  """With the whole base frozen and a head without dropout, the training-mode forward pass is the
  inference-mode one, bitwise (Keras' trainable=False BatchNorm)."""
  model = create_transfer_model("resnet50_keras", num_classes=5, head="gap", stage_sizes=(1, 1, 1, 1))
  x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3))
  variables = jax.jit(model.init)(jax.random.key(1), x)  # eagerly: one compile per op
  rng = np.random.default_rng(0)  # moving statistics away from (0, 1), so that the modes differ
  stats = jax.tree.map(lambda v: jnp.asarray(rng.uniform(0.5, 1.5, v.shape), v.dtype), variables["batch_stats"])
  variables = {**variables, "batch_stats": stats}
  layers = trainable.model_layers(model, (32, 32, 3))
  head_only = trainable.resolve("head", variables["params"], layers, True)
  assert head_only.inference_modules == (("base",),)  # the whole base, BatchNorm layers and all
  by_regex = trainable.resolve("re:^head/", variables["params"], layers, True)  # the same freeze, spelt per layer
  assert set(by_regex.inference_modules) == layers.batchnorm and len(layers.batchnorm) > 10

  def train_mode(frozen):
    with nn.intercept_methods(trainable.inference_modules(frozen)):
      return model.apply(variables, x, train=True, mutable=["batch_stats"])

  inference = jax.jit(lambda: model.apply(variables, x, train=False))()
  for frozen in (head_only, by_regex):
    frozen_out, updates = jax.jit(lambda: train_mode(frozen.inference_modules))()
    assert np.array_equal(np.asarray(frozen_out), np.asarray(inference))
    assert jax.tree.all(jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)),  # NumPy: no
                                     updates["batch_stats"], stats))  # program compiled per leaf shape
  training_out, _ = jax.jit(lambda: train_mode(()))()  # nothing frozen: batch statistics, other logits
  assert not np.allclose(np.asarray(training_out), np.asarray(inference), atol=1e-3)


def test_keras_weights_go_into_the_base_and_a_wrong_file_is_one_error(tmp_path):
  from test_keras_equivalence import randomize, write_legacy
  from cnnzoo.transfer import KerasWeightsError
  from cnnzoo.models.keras_weights import load_into_state
  from configs import vgg16_flowers17_finetune
  reference = randomize(keras.applications.VGG16(weights=None, include_top=False))
  path = str(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
  write_legacy(reference, path, top=False)
  c = quiet(vgg16_flowers17_finetune.get_config("smoke"))
  c.model.keras_weights = path
  run = loop.build(c)
  state = load_into_state(run.state, c, 17)
  params = flat(state.params)
  for layer in ("block1_conv1", "block5_conv3"):
    kernel, bias = reference.get_layer(layer).get_weights()
    assert np.array_equal(params[("base", layer, "kernel")], kernel)
    assert np.array_equal(params[("base", layer, "bias")], bias)
  assert np.array_equal(params[("head", "out", "kernel")], flat(run.state.params)[("head", "out", "kernel")])
  vgg19 = str(tmp_path / "vgg19.h5")
  write_legacy(randomize(keras.applications.VGG19(weights=None, include_top=False)), vgg19, top=False)
  c.model.keras_weights = vgg19
  with pytest.raises(KerasWeightsError, match="has layers .* that vgg16 does not have|vgg19"):
    load_into_state(run.state, c, 17)


def test_summarize_counts_what_trains_as_seed_003_reports(tmp_path):
  inception, vgg = cli_batch([
      {"module": "experiments.summarize", "argv": ["--model=inception_v3", "--input_size=150,150", "--num_classes=200",
                                                   "--head=gap", "--head_hidden=1024", "--trainable=head"]},
      {"module": "experiments.summarize", "argv": ["--model=vgg16", "--input_size=224,224", "--num_classes=17",
                                                   "--head=fc", "--trainable=from:15", "--layers"]}])
  assert inception["rc"] == 0, inception["stderr"]
  # seed 003: InceptionV3 at 150x150 with its new head, base frozen: 2,303,176 of 24,105,960 trainable
  assert "trainable params: 2,303,176 of 24,105,960" in inception["stdout"]
  assert vgg["rc"] == 0, vgg["stderr"]
  lines = vgg["stdout"].splitlines()
  assert lines[0].split()[:2] == ["0", "input"]
  row = {line.split()[1]: line for line in lines if line.strip() and line.split()[0].isdigit()}
  assert row["base/block4_conv3"].split()[0] == "13" and row["base/block4_conv3"].endswith("frozen")
  assert row["base/block5_conv1"].split()[0] == "15" and not row["base/block5_conv1"].endswith("frozen")
  head = 7 * 7 * 512 * 256 + 256 + 256 * 17 + 17  # FCHeadNet on the 7x7x512 block5_pool
  block5 = 3 * (3 * 3 * 512 * 512 + 512)
  assert f"trainable params: {block5 + head:,} of {14_714_688 + head:,}" in vgg["stdout"]


def test_the_two_phase_recipe_resumes_in_phase_2_after_a_kill(tmp_path, forkserver):
  """The README's commands: experiments.build_dataset on a folder of images, then
  configs/vgg16_flowers17_finetune.py (:smoke's two one-epoch phases: epoch 1 trains the head with
  RMSprop, epoch 2 block5 and the head with SGD) on it, from a Keras VGG16 weight file. Killed as
  phase 2 starts and rerun, it ends bitwise equal to the uninterrupted run."""
  from PIL import Image
  from test_keras_equivalence import randomize, write_legacy
  rng = np.random.default_rng(0)
  for label, rgb in (("iris", (60, 40, 200)), ("tulip", (210, 40, 60))):
    for i in range(12):
      os.makedirs(tmp_path / "src" / label, exist_ok=True)
      pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (40, 40, 3)), 0, 255).astype(np.uint8)
      Image.fromarray(pixels).save(tmp_path / "src" / label / f"{i}.png")
  build = forkserver.run(["--layout=folder", f"--src={tmp_path / 'src'}", f"--out={tmp_path / 'hdf5'}", "--size=32",
                          "--val=0.25", "--test=0.25"], module="experiments.build_dataset")
  assert build.returncode == 0, build.stderr[-2000:]
  weights = str(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
  write_legacy(randomize(keras.applications.VGG16(weights=None, include_top=False)), weights, top=False)
  argv = lambda workdir: ["--config=configs/vgg16_flowers17_finetune.py:smoke", f"--workdir={workdir}",
                          "--config.data.name=hdf5", f"--config.data.dir={tmp_path / 'hdf5'}",
                          "--config.model.num_classes=0", f"--config.model.keras_weights={weights}",
                          "--config.monitor.plot=False", "--config.monitor.tensorboard=False",
                          "--config.checkpoint.async_save=False", "--verbosity=0"]
  reference = forkserver.run(argv(tmp_path / "ref"))
  assert reference.returncode == 0, reference.stderr[-3000:]
  assert "stage 1 of 2: epochs 1-1, optim.name=rmsprop, optim.lr=0.001, optim.trainable=head" in reference.stdout
  assert "stage 2 of 2: epochs 2-2, optim.name=sgd, optim.lr=0.001, optim.trainable=from:15 (a fresh optimizer)" \
      in reference.stdout
  killed = forkserver.start(argv(tmp_path / "run"))
  assert killed.wait_for("cnnzoo phase: train epoch 2")
  killed.kill()
  killed.wait()
  assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["1"]
  again = forkserver.run(argv(tmp_path / "run")[:-1])
  assert again.returncode == 0, again.stderr[-3000:]
  assert "resuming after epoch 1 of 2" in again.stdout and "stage 2 of 2" in again.stdout
  results = read_json(tmp_path / "ref", "results.json")
  assert results == read_json(tmp_path / "run", "results.json") and {"iris", "tulip"} <= set(results["test_report"])
  history = without_timing(read_json(tmp_path / "run", "history.json"))
  assert history == without_timing(read_json(tmp_path / "ref", "history.json"))
  assert [h["stage"] for h in history] == [1, 2]


def test_init_from_a_run_with_another_head_copies_the_base(tmp_path, capsys):
  from cnnzoo.training import resume
  from cnnzoo.training.checkpoint import Checkpointer
  first = loop.build(resnet_surgery("all"))
  ckpt = Checkpointer(str(tmp_path / "checkpoints"), best_metric=None, async_save=False)
  ckpt.save(1, first.state.checkpoint_tree(), meta={"identity": first.identity, "history": []},
            metrics={"val_loss": 1.0})
  ckpt.close()
  config = resnet_surgery("head", **{"model.head_hidden": 16})
  config.seed = 1  # other initial weights: the base must come from the first run to pass
  second = loop.build(config)
  assert second.identity["head"] != first.identity["head"]
  assert not np.array_equal(flat(second.state.params)[("base", "conv1_conv", "kernel")],
                            flat(first.state.params)[("base", "conv1_conv", "kernel")])
  state = resume.init_from(second, str(tmp_path))
  assert "its base is copied, the head starts from this run's initialization" in capsys.readouterr().err
  got, mine, theirs = flat(state.params), flat(second.state.params), flat(first.state.params)
  assert {k for k in got if k[0] == "head"} == {k for k in mine if k[0] == "head"} != {k for k in theirs if k[0] == "head"}
  for k in got:
    assert np.array_equal(got[k], theirs[k] if k[0] == "base" else mine[k]), k
  stats, their_stats = flat(state.batch_stats), flat(first.state.batch_stats)
  assert all(np.array_equal(stats[k], their_stats[k]) for k in stats)


def test_bn_and_regex_trainable_sets():
  model = create_transfer_model("resnet50_keras", num_classes=5, head="gap", stage_sizes=(1, 1, 1, 1))
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))["params"]
  layers = trainable.model_layers(model, (32, 32, 3))
  bn = trainable.resolve("bn", params, layers, True)
  labels = flat(bn.labels(params))
  assert {k for k, v in labels.items() if v == "train"} == {k for k in labels if k[-2].endswith("_bn")}
  assert bn.inference_modules == ()  # every BatchNorm trains, so none runs in inference mode
  kernels = trainable.resolve("re:conv5_.*/kernel$", params, layers, True)
  labels = flat(kernels.labels(params))
  assert {k for k, v in labels.items() if v == "train"} == {k for k in labels if k[1].startswith("conv5_")
                                                             and k[-1] == "kernel"}
  assert set(kernels.inference_modules) == layers.batchnorm  # no BatchNorm parameter trains
