"""Backbone features of every image of a dataset -> HDF5 (seed 000's extract_features.py).

  python -m experiments.extract_features --model=vgg16 \
      --keras_weights=vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 \
      --data=data/flowers17-hdf5 --layer=block5_pool --out=features/flowers17_vgg16
  python -m experiments.extract_features --model=resnet50_keras --keras_weights=resnet50_notop.h5 \
      --data=data/dogs-vs-cats-hdf5 --out=features/dogs_vs_cats_resnet50
  python -m experiments.extract_features --workdir=runs/lenet_digits --data=digits --out=features/digits

--data is a folder built by experiments.build_dataset, `digits`, `fashion_mnist` / `mnist` (their IDX
files), or a tensorflow-datasets name.
Writes OUT/{train,val,test}_features.h5 (`features` N x D float32, `labels`, `class_names`), then
`python -m experiments.train_logreg --features=OUT` fits the seed's logistic regression.
"""

from absl import flags

from cnnzoo import cli, configfile

_MODEL = flags.DEFINE_string("model", None, "Zoo model (its convolutional base) for --keras_weights.")
_WEIGHTS = flags.DEFINE_string("keras_weights", None, "Keras .h5 / .weights.h5 file of --model.")
_WORKDIR = flags.DEFINE_string("workdir", None, "A cnnzoo run instead: its model, checkpoint and preprocessing.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "latest", "With --workdir: best, latest or an epoch.")
_DATA = flags.DEFINE_string("data", None, "Builder HDF5 folder, digits, fashion_mnist, mnist or a tfds name.")
_LAYER = flags.DEFINE_string("layer", "features", "Output to take (features = pooled; block5_pool, ...).")
_PREPROCESS = flags.DEFINE_enum("preprocess", None, ["caffe", "tf", "torch", "scale"],
                                "Keras preprocess_input mode (default: the one of --model's family).")
_OUT = flags.DEFINE_string("out", None, "Output folder.")
_SIZE = flags.DEFINE_integer("image_size", 0, "With --keras_weights: side of the images the model gets "
                             "(0: its default, 224 for VGG16); others are resized.", lower_bound=0)
_BATCH = flags.DEFINE_integer("batch_size", 64, "Images per forward pass.", lower_bound=1)
_SPLITS = flags.DEFINE_list("splits", ["train", "val", "test"], "Splits to extract.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace features files already in --out.")
_IMPORTS = configfile.define_imports()
_LIST = flags.DEFINE_bool("list_layers", False, "Print the --layer names the model has, then stop.")
flags.mark_flags_as_required(["data", "out"])


def main(argv):
  del argv
  cli.quiet_logs()
  from cnnzoo import runtime
  cli.choose_platform()
  runtime.check_platform()
  configfile.import_own(_IMPORTS)
  from cnnzoo.transfer import features
  if bool(_WEIGHTS.value) == bool(_WORKDIR.value):
    cli.fail("give --keras_weights=FILE (with --model=NAME) or --workdir=RUN, one of the two")
  if _WEIGHTS.value and not _MODEL.value:
    cli.fail("--keras_weights needs --model=NAME (the zoo model the file belongs to, e.g. vgg16)")
  bad = [s for s in _SPLITS.value if s not in ("train", "val", "test")]
  if bad or not _SPLITS.value:
    cli.fail(f"--splits={','.join(_SPLITS.value)}: choose from train, val, test")
  features.run(model=_MODEL.value, keras_weights=_WEIGHTS.value, workdir=_WORKDIR.value,
               checkpoint=_CHECKPOINT.value, data=_DATA.value, layer=_LAYER.value,
               preprocess=_PREPROCESS.value, image_size=_SIZE.value, out=_OUT.value, batch_size=_BATCH.value,
               splits=_SPLITS.value, list_layers=_LIST.value, overwrite=_OVERWRITE.value)


if __name__ == "__main__":
  cli.start_compute()  # tcmalloc, and oneDNN's handlers compiling (a first run) while main() imports JAX
  cli.run(main)
