"""Classify image files: the top-5 classes with their probabilities.

  python -m experiments.predict --workdir=runs/minivggnet_flowers17 photo1.jpg photo2.jpg
  python -m experiments.predict --model=vgg16 --keras_weights=vgg16_weights_tf_dim_ordering_tf_kernels.h5 \
      --class_names=tiny-imagenet-200/words.txt cat.jpg

A run predicts with its best checkpoint (--checkpoint) and its own preprocessing; a Keras file with
Keras' preprocess_input for the family. An image that does not decode is skipped with a warning.
"""

from absl import flags

from cnnzoo import cli, configfile

_WORKDIR = flags.DEFINE_string("workdir", None, "A cnnzoo run directory.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "With --workdir: best, latest or an epoch.")
_MODEL = flags.DEFINE_string("model", None, "Zoo model for --keras_weights (with its classifier).")
_WEIGHTS = flags.DEFINE_string("keras_weights", None, "Keras .h5 / .weights.h5 file of --model.")
_PREPROCESS = flags.DEFINE_enum("preprocess", None, ["caffe", "tf", "torch", "scale"],
                                "With --keras_weights: Keras preprocess_input mode (default: the family's).")
_NAMES = flags.DEFINE_string("class_names", None, "words.txt (ID<TAB>name) or one name per line.")
_TOP = flags.DEFINE_integer("top", 5, "How many classes to print per image.", lower_bound=1)
_IMPORTS = configfile.define_imports()


def main(argv):
  paths = argv[1:]
  if not paths:
    cli.fail("give the image files to classify after the flags")
  if bool(_WEIGHTS.value) == bool(_WORKDIR.value):
    cli.fail("give --workdir=RUN or --keras_weights=FILE (with --model=NAME), one of the two")
  if _WEIGHTS.value and not _MODEL.value:
    cli.fail("--keras_weights needs --model=NAME (the zoo model the file belongs to, e.g. vgg16)")
  cli.quiet_logs()
  from cnnzoo import runtime
  cli.choose_platform()
  runtime.check_platform()
  configfile.import_own(_IMPORTS)
  from cnnzoo.evaluation import predict
  predictor = (predict.from_run(_WORKDIR.value, _CHECKPOINT.value) if _WORKDIR.value
               else predict.from_keras(_MODEL.value, _WEIGHTS.value, _PREPROCESS.value))
  if _NAMES.value:
    predictor.class_names = predict.read_class_names(_NAMES.value, predictor.class_names)
  predict.predict_files(predictor, paths, top=_TOP.value)


if __name__ == "__main__":
  cli.start_compute()  # tcmalloc, and oneDNN's handlers compiling (a first run) while main() imports JAX
  cli.run(main, positional=True)
