"""Build train/val/test HDF5 files and mean.json from an image archive's folder.

  python -m experiments.build_dataset --layout=tiny_imagenet_200 --src=tiny-imagenet-200 \
      --out=data/tiny-imagenet-200-hdf5 --size=64
  python -m experiments.build_dataset --layout=flowers17 --src=17flowers --out=data/flowers17-hdf5 --size=64
  python -m experiments.build_dataset --layout=folder --src=gray_pngs --out=data/gray-hdf5 --size=28 --grayscale

Layouts: tiny_imagenet_200, flowers17, dogs_vs_cats, folder (one sub-folder per class).
"""

import math

from absl import flags

from cnnzoo import cli

_LAYOUT = flags.DEFINE_enum("layout", None, ["tiny_imagenet_200", "flowers17", "dogs_vs_cats", "folder"],
                            "Layout of --src.")
_SRC = flags.DEFINE_string("src", None, "Unpacked archive folder.")
_OUT = flags.DEFINE_string("out", None, "Output folder for {train,val,test}.h5 and mean.json.")
_SIZE = flags.DEFINE_integer("size", 64, "Output images are SIZE x SIZE x 3 (x 1 with --grayscale).")
_GRAYSCALE = flags.DEFINE_bool("grayscale", False, "Write 1-channel images (colour files converted to luma).")
_RESIZE = flags.DEFINE_enum("resize", "aspect", ["aspect", "plain"],
                            "aspect: shorter side to SIZE, then center crop (the seed); plain: stretch.")
_SEED = flags.DEFINE_integer("seed", 0, "Split seed (the output is reproducible).")
_VAL = flags.DEFINE_float("val", None, "Validation share: a fraction (folder, flowers17), an image count "
                          "(dogs_vs_cats) or images per class (tiny_imagenet_200); default: the seed's.")
_TEST = flags.DEFINE_float("test", None, "Test share, as --val (not for tiny_imagenet_200).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace the dataset files already in --out.")
flags.mark_flags_as_required(["layout", "src", "out"])

_SPLIT_ARGS = {"tiny_imagenet_200": ("val_per_class", None), "flowers17": ("val_fraction", "test_fraction"),
               "dogs_vs_cats": ("val_count", "test_count"), "folder": ("val_fraction", "test_fraction")}


def main(argv):
  del argv
  from cnnzoo.data import builders
  names = _SPLIT_ARGS[_LAYOUT.value]
  if _SEED.value < 0:
    cli.fail(f"--seed={_SEED.value}: must be >= 0")
  split_args = {"seed": _SEED.value}
  for flag, value in (("--val", _VAL.value), ("--test", _TEST.value)):
    if value is not None and not math.isfinite(value):
      cli.fail(f"{flag}={value}: give a fraction in [0, 1) or a number of images")
  for name, flag, value in zip(names, ("--val", "--test"), (_VAL.value, _TEST.value)):
    if value is not None and not name:
      cli.fail(f"{flag} does not apply to --layout={_LAYOUT.value} (its test split is the "
               "archive's official validation set)")
    if value is not None and name.endswith(("count", "per_class")) and value != int(value):
      cli.fail(f"{flag}={value:g}: --layout={_LAYOUT.value} takes a whole number of images here")
    if flag == "--test" and value == 0:
      cli.fail("--test=0 leaves no test split, and a dataset needs one (its final report); give --test a share, "
               "or --val=0 to let the test split double as the validation split, as the seed's Flowers-17 did")
    if value is not None:
      split_args[name] = int(value) if name.endswith(("count", "per_class")) else float(value)
  report = builders.build(_LAYOUT.value, _SRC.value, _OUT.value, _SIZE.value, _RESIZE.value,
                          overwrite=_OVERWRITE.value, channels=1 if _GRAYSCALE.value else 3, **split_args)
  counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items())
  print(f"wrote {_OUT.value}: {counts}; mean {'gray' if _GRAYSCALE.value else 'RGB'} {tuple(round(m, 2) for m in report['mean'])}, "
        f"std {tuple(round(s, 2) for s in report['std'])}")
  if report["skipped"]:
    print(f"skipped {len(report['skipped'])} unreadable image(s): " + ", ".join(report["skipped"][:10]))


if __name__ == "__main__":
  cli.run(main)
