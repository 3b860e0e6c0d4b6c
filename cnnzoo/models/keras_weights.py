"""Import Keras weight files into cnnzoo models: Keras 3 `.weights.h5` and legacy Keras 2 `.h5`.

Legacy files (the seeds' `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`, `model.save_weights`
in Keras 2, or `model_weights` inside a full-model `.h5`) list their layers by name (`layer_names`,
`weight_names` attributes); they are matched to cnnzoo layers by name, which is why the Keras-form
models use Keras' layer names. Keras 3 files key layers by class and creation counter
(`layers/conv2d_17/vars/0`) in the order of `model.layers`; they are matched per layer kind
(conv / batch norm / dense) in that order, which each family states with a `keras_order` function.
Arrays are read with h5py; nothing is unpickled.
"""

import dataclasses
import re
from typing import Callable

import flax
import h5py
import jax
import numpy as np

from cnnzoo import models
from cnnzoo.errors import UserError
from cnnzoo.models.resnet_keras import KerasResNet
from cnnzoo.models.vgg import VGG
from cnnzoo.models.inception import InceptionResNetV2, InceptionV3
from cnnzoo.errors import ConfigError


class KerasWeightsError(UserError):
  """The file is not a Keras weight file, or does not fit the model."""


@dataclasses.dataclass
class Layer:
  name: str  # Keras layer name (legacy) or its key (Keras 3: conv2d_17)
  kind: str  # conv | bn | dense
  arrays: list


def _decode(items):
  return [i.decode() if isinstance(i, bytes) else str(i) for i in items]


def _kind(arrays, hint=""):
  if hint.startswith(("conv2d", "conv")) and arrays[0].ndim == 4:
    return "conv"
  if arrays[0].ndim == 4:
    return "conv"
  if arrays[0].ndim == 2:
    return "dense"
  if all(a.ndim == 1 for a in arrays) and len(arrays) in (2, 3, 4):
    return "bn"
  raise KerasWeightsError(f"layer {hint!r}: cannot tell its kind from weights of shapes "
                          f"{[a.shape for a in arrays]}")


def read_keras_file(path: str) -> tuple[list[Layer], bool]:
  """The weighted layers of a Keras weight file in model order, and whether they carry names."""
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    raise KerasWeightsError(f"cannot read {path} as HDF5: {e}") from None
  with f:
    group = f["model_weights"] if "model_weights" in f else f
    if "layer_names" in group.attrs:  # legacy Keras 2 layout
      layers = []
      for name in _decode(group.attrs["layer_names"]):
        arrays = [np.asarray(group[name][w]) for w in _decode(group[name].attrs.get("weight_names", []))]
        if arrays:
          layers.append(Layer(name, _kind(arrays, name), arrays))
      return layers, True
    if "layers" in group:  # Keras 3 .weights.h5
      def order(key):
        m = re.fullmatch(r"(.*?)(?:_(\d+))?", key)
        return m.group(1), int(m.group(2) or 0)
      layers = []
      for key in sorted(group["layers"], key=order):
        entry = group["layers"][key]
        if "layers" in entry and len(entry["layers"]):
          raise KerasWeightsError(f"{path}: layer {key!r} is a nested model; save the inner model's "
                                  "weights on their own")
        if "vars" not in entry or not len(entry["vars"]):
          continue
        arrays = [np.asarray(entry["vars"][str(i)]) for i in range(len(entry["vars"]))]
        layers.append(Layer(key, _kind(arrays, key), arrays))
      return layers, False
  raise KerasWeightsError(f"{path} is not a Keras weight file (no layer_names attribute, no layers/ group)")


def _flax_layers(variables) -> list[tuple[tuple[str, ...], str]]:
  """cnnzoo's weighted layers in creation order: (module path, kind)."""
  out = []
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables["params"]))
  seen = set()
  for key in flat:
    path, leaf = key[:-1], key[-1]
    if path in seen:
      continue
    seen.add(path)
    if leaf in ("scale", "bias") and (path + ("kernel",)) not in flat:
      out.append((path, "bn"))
    elif leaf == "kernel" or (path + ("kernel",)) in flat:
      out.append((path, "conv" if flat[path + ("kernel",)].ndim == 4 else "dense"))
  return out


# Keras' model.layers order where it differs from cnnzoo's creation order, per model family.
def _resnet_keras_order(layers):
  """Keras orders a block's layers by depth: 1_conv, 1_bn, 2_conv, 2_bn, 0_conv, 3_conv, 0_bn, 3_bn."""
  rank = {"preact_bn": 0, "1_conv": 1, "1_bn": 2, "2_conv": 3, "2_bn": 4, "0_conv": 5, "3_conv": 6,
          "0_bn": 7, "3_bn": 8}

  def key(item):
    name = item[0][-1]
    m = re.fullmatch(r"conv(\d+)_block(\d+)_(.*)", name)
    if m:
      return (int(m.group(1)), int(m.group(2)), rank[m.group(3)])
    return (0, 0, 0) if name.startswith("conv1") else (99, 0, 0)
  return sorted(layers, key=key)


def _order_by_conv_sequence(sequence):
  """Orders layers by their conv's position in Keras' conv sequence; a BN goes with its conv
  (`batch_normalization_k` with `conv2d_k`, `NAME_bn` with `NAME`); dense layers come last."""
  position = {name: i for i, name in enumerate(sequence)}

  def conv_of(name):
    if name.startswith("batch_normalization_"):
      return "conv2d_" + name.rsplit("_", 1)[1]
    return name[:-3] if name.endswith("_bn") else name

  return lambda layers: sorted(layers, key=lambda item: position.get(conv_of(item[0][-1]), len(position)))


def _blocks(prefix_convs, blocks):
  """Keras' conv order from per-block permutations of creation order.

  Keras lists a functional model's layers by decreasing depth (longest path to the output), ties
  in creation order; inside an Inception block that interleaves the branches. Each block is
  (number of auto-named convs, their Keras order as offsets, named convs that follow)."""
  seq, k = [f"conv2d_{i}" for i in range(1, prefix_convs + 1)], prefix_convs + 1
  for size, offsets, named in blocks:
    seq += [f"conv2d_{k + o}" for o in offsets] + list(named)
    k += size
  return seq


_A = (7, (3, 1, 4, 0, 2, 5, 6), ())  # 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1
_V3 = _blocks(5, [_A, _A, _A, (4, (1, 2, 0, 3), ()), *[(10, (4, 5, 1, 6, 2, 7, 0, 3, 8, 9), ())] * 4,
                  (6, (2, 3, 0, 4, 1, 5), ()), *[(9, (4, 1, 5, 2, 3, 6, 7, 0, 8), ())] * 2])
_IRV2 = _blocks(5, [_A, *[(6, (3, 1, 4, 0, 2, 5), (f"block35_{i}_conv",)) for i in range(1, 11)],
                    (4, (1, 2, 0, 3), ()),
                    *[(4, (1, 2, 0, 3), (f"block17_{i}_conv",)) for i in range(1, 21)],
                    (7, (4, 0, 2, 5, 1, 3, 6), ()),
                    *[(4, (1, 2, 0, 3), (f"block8_{i}_conv",)) for i in range(1, 11)],
                    (0, (), ("conv_7b",))])


KERAS_ORDER: dict[type, Callable] = {}


def _register_orders():
  KERAS_ORDER.setdefault(KerasResNet, _resnet_keras_order)
  KERAS_ORDER.setdefault(VGG, lambda layers: layers)  # sequential: creation order is Keras' order
  KERAS_ORDER.setdefault(InceptionV3, _order_by_conv_sequence(_V3))
  KERAS_ORDER.setdefault(InceptionResNetV2, _order_by_conv_sequence(_IRV2))


def _assign(variables, path, kind, arrays, layer_name):
  """Puts one Keras layer's arrays into a copy of `variables` at `path`, checking shapes."""
  params = variables["params"]
  for p in path:
    params = params[p]
  if kind in ("conv", "dense"):
    targets = [(params, "kernel")] + ([(params, "bias")] if "bias" in params else [])
  else:
    stats = variables["batch_stats"]
    for p in path:
      stats = stats[p]
    names = [n for n in ("scale", "bias") if n in params]
    targets = [(params, n) for n in names] + [(stats, "mean"), (stats, "var")]
  if len(arrays) != len(targets):
    raise KerasWeightsError(f"Keras layer {layer_name!r} has {len(arrays)} weights; cnnzoo's "
                            f"{'/'.join(path)!r} expects {len(targets)}")
  for (tree, name), array in zip(targets, arrays):
    if tuple(tree[name].shape) != tuple(array.shape):
      raise KerasWeightsError(f"Keras layer {layer_name!r} does not fit cnnzoo's {'/'.join(path)!r}: "
                              f"{name} {tuple(array.shape)} in the file, {tuple(tree[name].shape)} in the model")
    tree[name] = np.asarray(array, dtype=tree[name].dtype)


def load_keras_weights(path: str, model_name: str, *, num_classes: int | None = None,
                       include_top: bool = True, **overrides):
  """Builds `model_name` and fills its variables from the Keras weight file at `path`.

  Args:
    num_classes: classes of the model's head; by default the file's classifier width (or the
      registry's default for a file without a classifier).
    include_top: False builds the convolutional base only; a file with a classifier then has its
      dense layers ignored (as Keras' `include_top=False` does).
  Returns:
    (model, variables) with `params` and, where the model has BatchNorm, `batch_stats`.
  """
  models.model_info(model_name)  # an unknown name fails before the file is read
  _register_orders()
  layers, named = read_keras_file(path)
  file_dense = [l for l in layers if l.kind == "dense"]
  if num_classes is None:
    num_classes = file_dense[-1].arrays[0].shape[1] if file_dense and include_top else \
        models.model_info(model_name).num_classes
  model = models.create_model(model_name, num_classes=num_classes, include_top=include_top, **overrides)
  shape = (1, *models.model_info(model_name).input_shape)
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros(shape, np.float32)))
  variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), flax.core.unfreeze(abstract))
  ours = _flax_layers(variables)
  if not include_top:
    layers = [l for l in layers if l.kind != "dense"] if not any(k == "dense" for _, k in ours) else layers
  if named:
    by_name = {l.name: l for l in layers}
    for p, kind in ours:
      layer = by_name.pop(p[-1], None)
      if layer is None:
        raise KerasWeightsError(f"{path} has no layer named {p[-1]!r} (cnnzoo {model_name}); "
                                f"its layers start {[l.name for l in layers[:4]]}")
      _assign(variables, p, kind, layer.arrays, layer.name)
    extra = [n for n, l in by_name.items() if include_top or l.kind != "dense"]
    if extra:
      raise KerasWeightsError(f"{path} has layers {extra[:3]} that {model_name} does not have")
  else:
    if type(model) not in KERAS_ORDER:
      raise KerasWeightsError(
          f"{path} is a Keras 3 .weights.h5 file, whose layers are ordered by Keras' graph traversal; "
          f"that order is known for {sorted(c.__name__ for c in KERAS_ORDER)} but not yet for "
          f"{type(model).__name__}: use the legacy .h5 weights (layer names) for {model_name}")
    ours = KERAS_ORDER[type(model)](ours)
    for kind in ("conv", "bn", "dense"):
      mine = [p for p, k in ours if k == kind]
      theirs = [l for l in layers if l.kind == kind]
      if len(mine) != len(theirs):
        raise KerasWeightsError(f"{path} has {len(theirs)} {kind} layers, {model_name} has {len(mine)}"
                                + (f"; first unmatched: {theirs[len(mine)].name!r}" if len(theirs) > len(mine) else ""))
      for p, layer in zip(mine, theirs):
        _assign(variables, p, kind, layer.arrays, layer.name)
  return model, jax.tree.map(np.asarray, variables)


def load_into_state(state, config, num_classes: int, sharding=None):
  """`state` with the Keras file `config.model.keras_weights` loaded: into the base of a surgery
  model (`model.head` set; the file's classifier, if any, ignored), or into the whole model (the
  file's classifier must have `num_classes` outputs). KerasWeightsError if it does not fit."""
  head = bool(config.model.get("head"))
  path, name = config.model.keras_weights, config.model.name
  kwargs = config.model.kwargs.to_dict()
  _, variables = load_keras_weights(path, name, include_top=not head,
                                    num_classes=None if head else num_classes, **kwargs)
  params = dict(flax.core.unfreeze(state.params))
  stats = dict(flax.core.unfreeze(state.batch_stats))
  new_params = {**params, "base": variables["params"]} if head else variables["params"]
  new_stats = ({**stats, "base": variables["batch_stats"]} if "batch_stats" in variables else stats) if head \
      else variables.get("batch_stats", {})
  shapes = lambda tree: jax.tree.map(lambda a: tuple(np.shape(a)), tree)
  if shapes(new_params) != shapes(params) or shapes(new_stats) != shapes(stats):
    raise ConfigError(f"--config.model.keras_weights={path} does not fit the model this config builds "
                      f"({name}{' with model.head=' + config.model.head if head else ''})")
  put = (lambda tree: jax.device_put(tree, sharding)) if sharding is not None else (lambda tree: tree)
  return state.replace(params=put(jax.tree.map(np.asarray, new_params)),
                       batch_stats=put(jax.tree.map(np.asarray, new_stats)))
