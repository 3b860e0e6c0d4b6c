"""Summary of a registered model: layers, output shapes, parameters, FLOPs.

  python -m experiments.summarize --model=resnet_cifar
  python -m experiments.summarize --model=vgg16 --layers          # the seed's numbered listing
  python -m experiments.summarize --table > docs/models.md         # the README's model table
  python -m experiments.summarize --model=inception_v3 --input_size=150,150 --num_classes=200 \
      --head=gap --head_hidden=1024 --trainable=head                # seed 003: what trains, what is frozen
  python -m experiments.summarize --model=minigooglenet --diagram=minigooglenet.svg   # as Keras' plot_model

--diagram draws the layer graph (name, type and output shape of every layer; branches and merges)
through Graphviz: `pip install graphviz` and Graphviz's `dot` (apt-get install graphviz).
"""

from absl import flags

from cnnzoo import cli, configfile, numbers

_MODEL = flags.DEFINE_string("model", None, "Registered model name.")
_INPUT = flags.DEFINE_list("input_size", None, "H,W[,C] instead of the model's default input.")
_CLASSES = flags.DEFINE_integer("num_classes", None, "Classes of the head.")
_LAYERS = flags.DEFINE_bool("layers", False, "Numbered layer listing (index, path, type, shape, params).")
_TABLE = flags.DEFINE_bool("table", False, "Markdown table of every registered model (README).")
_HEAD = flags.DEFINE_enum("head", None, ["fc", "gap"], "Network surgery: the model without its top plus this head.")
_HEAD_HIDDEN = flags.DEFINE_integer("head_hidden", -1, "Hidden units of --head (-1: fc 256, gap none).")
_DIAGRAM = flags.DEFINE_string("diagram", None, "Write the layer graph to this .svg, .png or .pdf file "
                               "(Keras' plot_model; needs Graphviz) and exit.")
_TRAINABLE = flags.DEFINE_string("trainable", "all", "What trains: all, head, bn, from:LAYER or re:REGEX "
                                 "(prints trainable and frozen counts).")
_IMPORTS = configfile.define_imports()


def main(argv):
  del argv
  from cnnzoo import runtime
  cli.choose_platform()
  runtime.check_platform()
  configfile.import_own(_IMPORTS)
  from cnnzoo import models
  from cnnzoo.models import inspect
  if _TABLE.value:
    print(inspect.markdown_table())
    return
  if not _MODEL.value:
    cli.fail("pass --model=NAME (or --table); models: " + ", ".join(models.list_models()))
  info = models.model_info(_MODEL.value)
  shape = None
  if _INPUT.value:
    if not all(numbers.is_count(d) for d in _INPUT.value) or len(_INPUT.value) not in (2, 3):
      cli.fail(f"--input_size={','.join(_INPUT.value)}: expected H,W or H,W,C as positive integers")
    dims = [int(d) for d in _INPUT.value]
    if min(dims) >= 1:
      numbers.check_image_shape(dims, "--input_size")
    shape = (*dims, info.input_shape[2]) if len(dims) == 2 else tuple(dims)
  if _CLASSES.value is not None and _CLASSES.value < 1:
    cli.fail(f"--num_classes={_CLASSES.value}: must be a positive integer")
  if shape is not None and min(shape) < 1:
    cli.fail(f"--input_size={','.join(_INPUT.value)}: every dimension must be positive")
  if _HEAD.value or _TRAINABLE.value != "all":
    return surgery(info, shape or info.input_shape)
  model = models.create_model(_MODEL.value, num_classes=_CLASSES.value or info.num_classes)
  problem = models.input_problem(model, shape or info.input_shape)
  if problem:
    cli.fail(f"{_MODEL.value} cannot take a {shape} input (its default is {info.input_shape}): {problem}")
  if _DIAGRAM.value:
    return diagram(model, shape or info.input_shape)
  if _LAYERS.value:
    for index, path, kind, out, n in inspect.layer_table(_MODEL.value, shape, _CLASSES.value):
      print(f"{index:4d}  {path:45s} {kind:14s} {str(out):20s} {n:>12,}")
  else:
    print(inspect.tabulate(_MODEL.value, shape, _CLASSES.value))
  s = inspect.summarize(_MODEL.value, shape, _CLASSES.value)
  print(f"{s.name}: input {s.input_shape}, {s.num_classes} classes")
  print(f"trainable params: {s.trainable:,}  non-trainable: {s.non_trainable:,}  "
        f"total: {s.trainable + s.non_trainable:,}")
  print(f"FLOPs per image (forward, XLA cost analysis): {s.flops / 1e9:.3f} G")


def diagram(model, shape) -> None:
  import os
  from cnnzoo import paths
  from cnnzoo.models import diagram as diagram_lib
  path = _DIAGRAM.value
  if os.path.splitext(path)[1].lstrip(".").lower() not in diagram_lib.FORMATS:
    cli.fail(f"--diagram={path}: give a .svg, .png or .pdf file name")
  paths.check_writable(os.path.dirname(os.path.abspath(path)), "--diagram's folder")
  graph = diagram_lib.graph_of(model, tuple(shape))
  diagram_lib.draw(graph, path, title=f"{_MODEL.value}: input {tuple(shape)}, {len(graph.nodes) - 1} layers")
  print(f"wrote {path}: {len(graph.nodes)} boxes, {len(graph.edges)} arrows")


def surgery(info, shape) -> None:
  """A model with --head and / or --trainable: its layer listing, then trainable and frozen counts."""
  import jax
  from cnnzoo import models
  from cnnzoo.models import inspect
  from cnnzoo.models.heads import create_transfer_model
  from cnnzoo.training import trainable
  classes = _CLASSES.value or info.num_classes
  model = (create_transfer_model(info.name, num_classes=classes, head=_HEAD.value, hidden=_HEAD_HIDDEN.value)
           if _HEAD.value else models.create_model(info.name, num_classes=classes))
  problem = models.input_problem(model, shape)
  if problem:
    cli.fail(f"{info.name} cannot take a {shape} input: {problem}")
  layers = trainable.model_layers(model, shape)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jax.numpy.zeros((1, *shape)), train=False))
  resolved = trainable.resolve(_TRAINABLE.value, variables["params"], layers, bool(_HEAD.value))
  is_trainable, _ = trainable.trainable_paths(_TRAINABLE.value, variables["params"], layers, bool(_HEAD.value))
  if _DIAGRAM.value:
    return diagram(model, shape or info.input_shape)
  if _LAYERS.value:
    for index, path, kind, out, n, frozen in inspect.surgery_table(model, shape, layers, is_trainable):
      print(f"{index:4d}  {path:45s} {kind:14s} {str(out):20s} {n:>12,}  {'frozen' if frozen else ''}")
  stats = inspect.count(variables.get("batch_stats", {}))
  total = resolved.trainable + resolved.frozen + stats
  print(f"{info.name}{' + ' + _HEAD.value + ' head' if _HEAD.value else ''}: input {shape}, {classes} classes, "
        f"trainable={resolved.spec}")
  print(f"trainable params: {resolved.trainable:,} of {total:,}  frozen: {resolved.frozen:,} "
        f"(+ {stats:,} BatchNorm statistics)" + inference_note(resolved.inference_modules))


def inference_note(modules) -> str:
  """What runs in inference mode while training (cnnzoo/training/trainable.py)."""
  if modules == (("base",),):
    return "; the frozen base runs in inference mode (no dropout, BatchNorm's moving statistics)"
  return f"; BatchNorm layers in inference mode: {len(modules)}" if modules else ""


if __name__ == "__main__":
  cli.run(main)
