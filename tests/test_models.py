"""Registry, shapes and parameter counts of every registered model (jax.eval_shape: no memory)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnzoo import models
from cnnzoo.models import registry
from cnnzoo.registry import RegistryError

# (trainable, non-trainable) at each model's registry defaults, and where the figure comes from.
# Non-trainable = BatchNorm moving mean + variance = Keras' "Non-trainable params".
EXPECTED = {
    "alexnet": (62_378_344, 0, "seed 001 AlexNet table (single tower, 227x227, LRN)"),
    "alexnet_owt": (61_100_840, 0, "torchvision docs (AlexNet, one weird trick)"),
    "alexnet_tiny": (22_369_544, 1_216, "seed 003 table: 22,370,760 total, 22,369,544 trainable"),
    "alexnet_flowers17": (28_075_633, 21_136, "seed 001 Keras code, rebuilt in Keras 3 (keras_refs)"),
    "seed003_tiny_net": (122_584, 576, "seed 003 Part 1 table: 123,160 total"),
    "seed003_cifar_net": (293_034, 896, "seed 003 exp. 5: 288,800 up to the dropout (asserted below) + head"),
    "seed003_transfer_head": (1_675_976, 0, "seed 003 exp. 5 dense head table: 1,675,976"),
    "resnet20": (269_722, 1_376, "He et al. 2015 Table 6: 0.27M (asserted rounded below)"),
    "resnet32": (464_154, 2_272, "He et al. 2015 Table 6: 0.46M"),
    "resnet44": (658_586, 3_168, "He et al. 2015 Table 6: 0.66M"),
    "resnet56": (853_018, 4_064, "He et al. 2015 Table 6: 0.85M"),
    "resnet110": (1_727_962, 8_096, "He et al. 2015 Table 6: 1.7M"),
    "resnet20_v1": (273_066, 1_376, "Keras example resnet_v1, rebuilt in Keras 3: 274,442 total"),
    "resnet32_v1": (467_946, 2_272, "Keras example resnet_v1 (same code as resnet20_v1)"),
    "resnet44_v1": (662_826, 3_168, "Keras example resnet_v1"),
    "resnet56_v1": (857_706, 4_064, "Keras example resnet_v1"),
    "resnet110_v1": (1_734_666, 8_096, "Keras example resnet_v1, rebuilt in Keras 3"),
    "resnet20_v2": (570_602, 3_488, "Keras example resnet_v2, rebuilt in Keras 3"),
    "resnet56_v2": (1_663_338, 10_400, "Keras example resnet_v2, rebuilt in Keras 3"),
    "resnet110_v2": (3_302_442, 20_768, "Keras example resnet_v2"),
    "resnet164": (4_941_546, 31_136, "Keras example resnet_v2 depth 164, rebuilt in Keras 3"),
    "googlenet": (6_624_904, 14_560, "torchvision docs: 6,624,904 (aux heads off; with them: below)"),
    "minigooglenet": (1_652_826, 3_424, "seed 2020-12-06 MiniGoogLeNet, rebuilt in Keras 3: 1,656,250 total"),
    "deepergooglenet": (3_657_992, 9_984, "seed 2020-12-10 DeeperGoogLeNet, rebuilt in Keras 3"),
    "inception_v3": (23_817_352, 34_432, "keras.applications.InceptionV3: 23,851,784 total (logits equal)"),
    "inception_resnet_v2": (55_813_192, 60_544, "keras.applications.InceptionResNetV2: 55,873,736 (logits equal)"),
    "inception_v4": (42_679_816, 63_168, "timm inception_v4 model card: 42.7M (asserted rounded below)"),
    "inception_resnet_v1": (22_756_328, 27_040, "no exact reference: built from the paper's Figs. 14-20"),
    "vgg11": (132_863_336, 0, "torchvision docs"),
    "vgg11_bn": (132_868_840, 5_504, "torchvision docs"),
    "vgg13": (133_047_848, 0, "torchvision docs"),
    "vgg13_bn": (133_053_736, 5_888, "torchvision docs"),
    "vgg16": (138_357_544, 0, "torchvision docs; keras.applications.VGG16 (logits equal)"),
    "vgg16_bn": (138_365_992, 8_448, "torchvision docs"),
    "vgg19": (143_667_240, 0, "torchvision docs; keras.applications.VGG19 (logits equal)"),
    "vgg19_bn": (143_678_248, 11_008, "torchvision docs"),
    "resnet50_keras": (25_583_592, 53_120, "keras.applications.ResNet50: 25,636,712 total (logits equal)"),
    "resnet101_keras": (44_601_832, 105_344, "keras.applications.ResNet101: 44,707,176 total"),
    "resnet152_keras": (60_268_520, 151_424, "keras.applications.ResNet152: 60,419,944 total"),
    "resnet50v2_keras": (25_568_360, 45_440, "keras.applications.ResNet50V2: 25,613,800 total"),
    "resnet101v2_keras": (44_577_896, 97_664, "keras.applications.ResNet101V2: 44,675,560 total"),
    "resnet152v2_keras": (60_236_904, 143_744, "keras.applications.ResNet152V2: 60,380,648 total"),
    "shallownet": (99_203, 0, "arithmetic (896 + 32*32*32*3 + 3); Keras rebuild below"),
    "lenet5": (61_706, 0, "LeNet-5 ReLU/max-pool form: 156 + 2,416 + 48,120 + 10,164 + 850"),
    "lenet5_keras": (44_426, 0, "seed LeNet notebook (28x28, valid convs); Keras rebuild below"),
    "minivggnet": (2_169_770, 1_408, "seed 2020-11-12 MiniVGGNet; Keras rebuild below"),
    "resnet_cifar": (873_872, 12_230, "seed 2020-12-12 ResNet.build (9,9,9); Keras rebuild below"),
    "resnet_tiny": (2_252_046, 13_702, "seed 2020-12-12 ResNet.build (3,4,6); Keras rebuild below"),
    "resnet18": (11_689_512, 9_600, "torchvision docs"),
    "resnet34": (21_797_672, 17_024, "torchvision docs"),
    "resnet50": (25_557_032, 53_120, "torchvision docs"),
    "resnet101": (44_549_160, 105_344, "torchvision docs"),
    "resnet152": (60_192_808, 151_424, "torchvision docs"),
}
SMALL = ["shallownet", "lenet5", "lenet5_keras", "minivggnet"]


def abstract_variables(name, **overrides):
  """(variables, output) shapes of `name` on a batch of 2, from one trace (cached per arguments:
  tracing the largest models takes seconds, and several tests ask for the same one)."""
  return _abstract(name, tuple(sorted(overrides.items())))


@functools.lru_cache(maxsize=None)
def _abstract(name, overrides):
  overrides = dict(overrides)
  info = models.model_info(name)
  model = models.create_model(name, num_classes=overrides.pop("num_classes", info.num_classes), **overrides)
  x = jax.ShapeDtypeStruct((2, *info.input_shape), jnp.float32)
  rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
  out, variables = jax.eval_shape(lambda x: model.init_with_output(rngs, x, train=False), x)
  return variables, out


def count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_every_model_has_a_reference():
  assert sorted(EXPECTED) == models.list_models()


@pytest.mark.parametrize("name", models.list_models())
def test_param_counts_and_output_shape(name):
  variables, out = abstract_variables(name)
  trainable, non_trainable, _ = EXPECTED[name]
  assert count(variables["params"]) == trainable
  assert count(variables.get("batch_stats", {})) == non_trainable
  assert out.shape == (2, models.model_info(name).num_classes)


@pytest.mark.parametrize("name", models.list_models())
def test_include_top_false_returns_pooled_features(name):
  _, out = abstract_variables(name, include_top=False)
  assert out.ndim == 2 and out.shape[0] == 2
  assert out.shape[1] not in (0, models.model_info(name).num_classes) or name == "shallownet"


# include_top=False parameter totals (trainable + BN statistics) the seeds quote.
NOTOP = {"vgg16": 14_714_688, "seed003_cifar_net": 288_800, "inception_v3": 21_802_784}  # seeds 001-003


@pytest.mark.parametrize("name", sorted(NOTOP))
def test_convolutional_base_counts(name):
  variables, _ = abstract_variables(name, include_top=False)
  assert count(variables) == NOTOP[name]


@pytest.mark.parametrize("name,millions", [("resnet20", 0.27), ("resnet32", 0.46), ("resnet44", 0.66),
                                           ("resnet56", 0.85), ("resnet110", 1.7)])
def test_cifar_resnets_match_he_et_al_table_6(name, millions):
  variables, _ = abstract_variables(name)
  digits = 2 if millions < 1 else 1
  assert round(count(variables["params"]) / 1e6, digits) == millions


def test_inception_v4_matches_timm_model_card():
  variables, _ = abstract_variables("inception_v4")
  assert round(count(variables["params"]) / 1e6, 1) == 42.7


def test_googlenet_with_auxiliary_heads_matches_torchvision():
  variables, _ = abstract_variables("googlenet", aux_logits=True)
  assert count(variables["params"]) == 13_004_888  # torchvision googlenet(aux_logits=True)


def test_resnet_features_width():
  _, out = abstract_variables("resnet50", include_top=False)
  assert out.shape == (2, 2048)
  _, out = abstract_variables("resnet_tiny", include_top=False)
  assert out.shape == (2, 512)


def numpy_init(model, x):
  """Variables of `model` drawn with NumPy on the shapes jax.eval_shape gives: kernels N(0, 1/fan_in),
  BatchNorm scales and variances 1, other vectors 0. A jitted model.init would compile one XLA
  program of ~100 random-number kernels per model (14 s for MiniGoogLeNet on 2 cores); the
  gradient test needs weights that keep activations finite, not flax's exact draw."""
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if leaf.ndim >= 2:
      return rng.normal(0, 1 / np.sqrt(np.prod(leaf.shape[:-1])), leaf.shape).astype(leaf.dtype)
    return np.full(leaf.shape, 1 if ("scale" in name or "var" in name) else 0, leaf.dtype)  # NumPy: no
    # program per leaf shape, as jnp.full would compile

  abstract = jax.eval_shape(lambda: model.init({"params": jax.random.key(1)}, x, train=False))
  return jax.tree_util.tree_map_with_path(draw, abstract)


@pytest.mark.parametrize("name,overrides", [(n, {}) for n in SMALL] + [
    ("resnet_cifar", {"stage_sizes": (1, 2, 1)}),  # the seed's blocks, fewer of them (compile time)
    ("resnet18", {"stage_sizes": (1, 1, 1, 1)}),  # post-activation basic blocks
    ("resnet50", {"stage_sizes": (1, 1, 1, 1)}),  # post-activation bottlenecks
    ("resnet20", {}), ("resnet20_v1", {}), ("resnet20_v2", {}), ("minigooglenet", {}),
    ("seed003_tiny_net", {}), ("alexnet_tiny", {})])
def test_finite_outputs_and_gradients_reach_every_parameter(name, overrides):
  info = models.model_info(name)
  model = models.create_model(name, num_classes=info.num_classes, **overrides)
  if info.input_shape[0] > 64:
    info = registry.ModelInfo(name, None, (64, 64, 3), info.num_classes, "")
  x = jax.random.uniform(jax.random.key(0), (4, *info.input_shape))
  variables = numpy_init(model, x)
  labels = jnp.arange(4) % info.num_classes

  def loss(params):
    logits, _ = model.apply({**variables, "params": params}, x, train=True,
                            rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels])

  value, grads = jax.device_get(jax.jit(jax.value_and_grad(loss))(variables["params"]))  # NumPy checks below:
  assert np.isfinite(value)  # an eager `g != 0` on a device array would compile a program per leaf shape
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert np.all(np.isfinite(g)), path
    assert np.any(g != 0), f"no gradient reaches {jax.tree_util.keystr(path)}"


def test_unknown_model_lists_close_matches():
  with pytest.raises(models.UnknownModelError, match="did you mean.*resnet50"):
    models.create_model("resnet05", num_classes=10)


def test_duplicate_registration_is_an_error():
  with pytest.raises(RegistryError, match="'lenet5' .* is already registered .cnnzoo's own.; choose another name"):
    @registry.register_model(input_shape=(32, 32, 3), num_classes=10)
    def lenet5(*, num_classes):  # noqa: F811  (the clash is the point)
      return None


def test_list_models_pattern():
  assert models.list_models("resnet1*") == [
      "resnet101", "resnet101_keras", "resnet101v2_keras", "resnet110", "resnet110_v1", "resnet110_v2",
      "resnet152", "resnet152_keras", "resnet152v2_keras", "resnet164", "resnet18"]
  assert models.list_models("vgg1?") == ["vgg11", "vgg13", "vgg16", "vgg19"]
  assert models.list_models("lenet*") == ["lenet5", "lenet5_keras"]


def test_named_intermediates_for_feature_extraction():
  model = models.create_model("resnet_cifar", num_classes=10)
  x = jnp.zeros((1, 32, 32, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  _, state = jax.eval_shape(lambda v: model.apply(v, x, mutable=["intermediates"]), variables)
  inter = state["intermediates"]
  assert inter["stage1"][0].shape == (1, 32, 32, 64)
  assert inter["stage3"][0].shape == (1, 8, 8, 256)
  assert inter["features"][0].shape == (1, 256)


def test_bfloat16_compute_keeps_float32_params_and_logits():
  model = models.create_model("minivggnet", num_classes=10, dtype=jnp.bfloat16)
  x = jnp.zeros((2, 32, 32, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  assert {p.dtype for p in jax.tree.leaves(variables["params"])} == {jnp.dtype("float32")}
  assert jax.eval_shape(lambda v: model.apply(v, x), variables).dtype == jnp.float32


def test_batchnorm_is_flax_s_layer_in_keras_arithmetic():
  """layers.BatchNorm: flax's nn.BatchNorm's variables (names, shapes, initial values), its batch
  statistics and moving averages bit for bit (two-pass variances), and its outputs to rounding,
  in training and inference; bfloat16 compute returns bfloat16; what it does not do is refused."""
  import flax.linen as nn
  from cnnzoo.models.layers import BatchNorm, normalize
  x = jax.random.normal(jax.random.key(0), (8, 5, 5, 6)) * 3 + 2
  ours = BatchNorm(momentum=0.9, epsilon=1e-3)
  theirs = nn.BatchNorm(momentum=0.9, epsilon=1e-3, use_fast_variance=False)
  variables = ours.init(jax.random.key(1), x, use_running_average=False)
  assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape, theirs.init(jax.random.key(1), x, False))
  variables = {"params": {"scale": jnp.linspace(0.5, 1.5, 6), "bias": jnp.linspace(-1, 1, 6)},
               "batch_stats": {"mean": jnp.linspace(-0.2, 0.2, 6), "var": jnp.linspace(0.8, 1.2, 6)}}
  (y, new), (y_ref, new_ref) = (m.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
                                for m in (ours, theirs))
  for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(new_ref)):
    assert np.array_equal(a, b)
  # the two forms round differently (a few ulps of the largest output; 0.5-0.8 ulp measured)
  close = lambda a, b: np.testing.assert_allclose(a, b, atol=8 * np.finfo(np.float32).eps * np.abs(b).max(), rtol=0)
  close(y, y_ref)
  mean, var = x.mean((0, 1, 2)), jnp.square(x - x.mean((0, 1, 2))).mean((0, 1, 2))
  inv = jax.lax.rsqrt(var + 1e-3) * variables["params"]["scale"]
  assert np.array_equal(y, x * inv + (variables["params"]["bias"] - mean * inv))  # Keras' ops.batch_normalization
  y_eval = ours.apply(variables, x, use_running_average=True)
  close(y_eval, theirs.apply(variables, x, use_running_average=True))
  stats = variables["batch_stats"]
  assert np.array_equal(y_eval, normalize(x, stats["mean"], stats["var"], variables["params"]["scale"],
                                          variables["params"]["bias"], 1e-3))
  half = BatchNorm(use_running_average=False, dtype=jnp.bfloat16).init_with_output(jax.random.key(1), x)[0]
  assert half.dtype == jnp.bfloat16
  with pytest.raises(NotImplementedError):
    BatchNorm(use_running_average=False, axis_name="batch").init(jax.random.key(1), x)
