"""Summary of a registered model: layers, output shapes, parameters, FLOPs.

  python -m experiments.summarize --model=resnet_cifar
  python -m experiments.summarize --model=vgg16 --layers          # the seed's numbered listing
  python -m experiments.summarize --table > docs/models.md         # the README's model table
"""

from absl import flags

from cnnzoo import cli

_MODEL = flags.DEFINE_string("model", None, "Registered model name.")
_INPUT = flags.DEFINE_list("input_size", None, "H,W[,C] instead of the model's default input.")
_CLASSES = flags.DEFINE_integer("num_classes", None, "Classes of the head.")
_LAYERS = flags.DEFINE_bool("layers", False, "Numbered layer listing (index, path, type, shape, params).")
_TABLE = flags.DEFINE_bool("table", False, "Markdown table of every registered model (README).")


def main(argv):
  del argv
  from cnnzoo import parallel
  parallel.choose_platform()
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
    if not all(d.isdigit() for d in _INPUT.value) or len(_INPUT.value) not in (2, 3):
      cli.fail(f"--input_size={','.join(_INPUT.value)}: expected H,W or H,W,C as positive integers")
    dims = [int(d) for d in _INPUT.value]
    shape = (*dims, info.input_shape[2]) if len(dims) == 2 else tuple(dims)
  if _CLASSES.value is not None and _CLASSES.value < 1:
    cli.fail(f"--num_classes={_CLASSES.value}: must be a positive integer")
  if shape is not None and min(shape) < 1:
    cli.fail(f"--input_size={','.join(_INPUT.value)}: every dimension must be positive")
  model = models.create_model(_MODEL.value, num_classes=_CLASSES.value or info.num_classes)
  problem = models.input_problem(model, shape or info.input_shape)
  if problem:
    cli.fail(f"{_MODEL.value} cannot take a {shape} input (its default is {info.input_shape}): {problem}")
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


if __name__ == "__main__":
  cli.run(main)
