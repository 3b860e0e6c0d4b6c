"""Every bad input to an entry point: one `error:` line on stderr, exit status 2, nothing written
or overwritten. The command lines run through the real entry points (`python -m MODULE ARGV`),
forked one after another from the worker's preloaded fork server (tests/cli_batch.py), so that
the cases cost no imports of their own."""

import json
import os
import re

import h5py
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, cli_batch

MAIN = ["experiments.main", "--config=configs/lenet_digits.py", "--workdir={run}"]
BUILD = ["experiments.build_dataset"]
SUMMARIZE = ["experiments.summarize"]
EVALUATE = ["experiments.evaluate"]
EXTRACT = ["experiments.extract_features"]
LOGREG = ["experiments.train_logreg"]
PREDICT = ["experiments.predict"]
FINETUNE = ["experiments.main", "--config=configs/vgg16_flowers17_finetune.py:smoke", "--workdir={run}"]
FEATURES = ["experiments.main", "--config=configs/vgg16_flowers17_features.py:smoke", "--workdir={run}"]

# (entry point and flags, the message the one line must contain); {run} is a fresh workdir,
# other {names} are fixtures made by `fixtures` below.
CASES = [
    # issue 27's families: config files that load but are not configs, paths that pass a permission
    # test but cannot be created, JAX platforms this machine lacks, damaged HDF5 chunks, NaN features
    (MAIN[:1] + ["--config={latin1_config}", "--workdir={run}"], "line 1 is not UTF-8 text (byte 0xe9); save it as"),
    (MAIN[:1] + ["--config={dict_config}", "--workdir={run}"], "get_config() returned dict, not an ml_collections"),
    (MAIN[:1] + ["--config={partial_config}", "--workdir={run}"], "it lacks the field(s) config.checkpoint, "
     "config.data, config.early_stop and 25 more of configs/base.py"),
    (MAIN[:2] + ["--workdir={run}/" + "a" * 300], "cannot write there (File name too long: "),
    (MAIN[:2] + ["--workdir=/proc/cnnzoo-test-run"], "--workdir=/proc/cnnzoo-test-run: cannot write there ("),
    (BUILD + ["--layout=folder", "--src={folder}", "--out=/sys/cnnzoo-test-out", "--size=8"],
     "--out=/sys/cnnzoo-test-out: cannot write there ("),
    (MAIN + ["--config.data.name=hdf5", "--config.data.dir={damaged_chunks}", "--config.model.input_shape=()"],
     "damaged_chunks/train.h5: it is damaged (Can't synchronously read data"),
    (LOGREG + ["--features={nan_features}", "--out={out}"], "train_features.h5: 1 of 6 images have NaN or infinite "
     "features"),
    (BUILD + ["--layout=folder", "--src={folder}", "--out={out}", "--test=0"], "--test=0 leaves no test split"),
    (BUILD + ["--layout=folder", "--src={folder}", "--out={out}", "--size=100000"], "--size=100000: at most 8192 "
     "pixels a side (each stored image takes SIZE x SIZE x channels bytes: 27.9 GiB here)"),
    (MAIN[:1] + ["--config=configs/lenet_digits.py:smoke", "--workdir={run}"], "JAX cannot start the platform JAX_PLATFORMS='cuda' asks "
     "for (no installed JAX backend has that name)", {"JAX_PLATFORMS": "cuda"}),
    (SUMMARIZE + ["--model=lenet5", "--diagram={out}.txt"], ".txt: give a .svg, .png or .pdf file name"),
    (SUMMARIZE + ["--model=lenet5", "--diagram={file}/lenet.svg"], "is a file, not a directory"),
    (SUMMARIZE + ["--model=lenet5", "--diagram={out}.svg"], "--diagram needs Graphviz's dot program: apt-get "
     "install graphviz", {"PATH": "/nonexistent"}),
    (MAIN[:1] + ["--config=configs/lenet_digits.py:smoke", "--workdir={run}"], "XLA_FLAGS='--xla_bogus_flag=1': "
     "Unknown flag in XLA_FLAGS: --xla_bogus_flag=1; correct or unset XLA_FLAGS", {"XLA_FLAGS": "--xla_bogus_flag=1"}),
    # seeds, crops, NaN shares and statistics, partial datasets
    (MAIN + ["--config.seed=4294967296"], "--config.seed=4294967296: must be >= 0 and <= 4294967295"),
    (MAIN + ["--config.data.split_seed=99999999999"], "--config.data.split_seed=99999999999: must be >= 0 and <="),
    (MAIN + ["--config.data.test_crop=ten"], "--config.data.test_crop=ten averages ten crop_size windows: set"),
    (BUILD + ["--layout=folder", "--src={folder}", "--out={out}", "--val=nan"], "--val=nan: give a fraction in [0, 1)"),
    (MAIN + ["--config.data.name=hdf5", "--config.data.dir={nan_mean}"],
     "mean.json holds a mean or std that is not a finite number"),
    (MAIN + ["--config.data.name=hdf5", "--config.data.dir={train_only}"],
     "holds train.h5 but no test.h5: a partial dataset; rebuild it with"),
    # network surgery and what trains (cnnzoo/models/heads.py, cnnzoo/training/trainable.py)
    (FINETUNE + ["--config.stages=()", "--config.optim.trainable=from:block9_conv1"],
     "optim.trainable=from:block9_conv1: no layer named 'block9_conv1'; the layers are: block1_conv1, block1_conv2, "
     "block1_pool,"),
    (MAIN + ["--config.optim.trainable=from:99"], "optim.trainable=from:99: the model's layers are numbered 1.."),
    (MAIN + ["--config.optim.trainable=re:conv[5"], "optim.trainable=re:conv[5: not a regular expression"),
    (MAIN + ["--config.optim.trainable=re:nothing_matches"], "optim.trainable=re:nothing_matches: no parameter "
     "would train"),
    (FINETUNE + ["--config.stages=((1, 'optim.trainable=from:nowhere'), (2, 'optim.lr=0.1'))"],
     "optim.trainable=from:nowhere: no layer named 'nowhere'"),
    (FINETUNE + ["--config.model.head=dense"], "--config.model.head='dense': choose one of '', 'fc', 'gap'"),
    (FINETUNE + ["--config.model.keras_weights=/no/such/vgg16.h5"],
     "--config.model.keras_weights=/no/such/vgg16.h5: no such file"),
    (FINETUNE + ["--config.model.keras_weights={file}"], "cannot read"),
    (FINETUNE + ["--config.model.keras_weights=random"], "--config.model.keras_weights=random: only a features run "
     "(features.use) takes it"),
    (FEATURES + ["--config.model.keras_weights="], "features.use needs model.keras_weights: a Keras .h5 file of "
     "vgg16, or `random` for its random initialization"),
    (MAIN + ["--config.optim.trainable=head"], "optim.trainable=head freezes the base of a surgery model: set "
     "model.head=fc or gap"),
    (MAIN + ["--config.optim.trainable=everything"], "--config.optim.trainable='everything': choose all, head, bn, "
     "from:LAYER or re:REGEX"),
    (MAIN + ["--config.optim.trainable=bn"], "optim.trainable=bn: this model has no BatchNorm layers"),
    (MAIN + ["--config.model.head=fc"], "model.head=fc flattens the base's last feature map, which 'lenet5' does not "
     "give"),
    (SUMMARIZE + ["--model=vgg16", "--head=fc", "--trainable=from:block0"], "no layer named 'block0'"),
    (MAIN + ["--config.data.batch_size=0"], "--config.data.batch_size=0: must be >= 1"),
    (MAIN + ["--config.data.batch_size=-4"], "--config.data.batch_size=-4: must be >= 1"),
    (MAIN + ["--config.data.eval_batch_size=-1"], "data.eval_batch_size=-1: must be >= 0"),
    (MAIN + ["--config.data.batch_size=5000"], "fewer than one batch"),
    (MAIN + ["--config.num_epochs=0"], "--config.num_epochs=0: must be >= 1"),
    (MAIN + ["--config.seed=-1"], "--config.seed=-1: must be >= 0"),
    (MAIN + ["--config.optim.lr=-1"], "--config.optim.lr=-1.0: must be > 0"),
    (MAIN + ["--config.optim.lr=nan"], "--config.optim.lr=nan: expected a finite number"),
    (MAIN + ["--config.optim.lr=fast"], "could not convert string to float: 'fast'"),
    (MAIN + ["--config.optim.name=sgd", "--config.optim.momentum=2"], "--config.optim.momentum=2.0: must be >= 0 and < 1"),
    (MAIN + ["--config.optim.momentum=0.9"], "--config.optim.momentum: no such config field 'momentum' for optimizer "
     "'adam' (a setting of optimizer 'rmsprop', optimizer 'sgd'); optimizer 'adam' takes b1, b2, eps, semantics, "
     "weight_decay"),
    (MAIN + ["--config.optim.b1=1.5"], "--config.optim.b1=1.5: must be >= 0 and < 1"),
    (MAIN + ["--config.optim.eps=0"], "--config.optim.eps=0.0: must be > 0"),
    (MAIN + ["--config.optim.l2=-1"], "--config.optim.l2=-1.0: must be >= 0"),
    (MAIN + ["--config.optim.label_smoothing=2"], "label_smoothing=2.0: must be >= 0 and < 1"),
    (MAIN + ["--config.optim.name=lion"], "--config.optim.name='lion': no such optimizer; registered: adam, rmsprop, sgd"),
    (MAIN + ["--config.optim.lrr=0.1"], "--config.optim.lrr: no such config field 'lrr'; did you mean 'lr'?"),
    (MAIN + ["--config.schedule.name=expo"], "--config.schedule.name='expo': no such schedule; did you mean step or "
     "poly? registered: step, poly, constant, cosine, keras_time, linear, piecewise"),
    (MAIN + ["--config.schedule.name=step", "--config.schedule.step_every=0"], "--config.schedule.step_every=0: must be >= 1"),
    (MAIN + ["--config.schedule.warmup_epochs=30"], "warmup_epochs=30: must be less than num_epochs=20"),
    (MAIN + ["--config.schedule.name=poly", "--config.schedule.power=0"], "--config.schedule.power=0.0: must be > 0"),
    (MAIN + ["--config.schedule.name=keras_time", "--config.schedule.decay=-1"], "--config.schedule.decay=-1.0: must be >= 0"),
    (MAIN + ["--config.data.image_size=0"], "--config.data.image_size=0: must be >= 1"),
    (MAIN + ["--config.data.crop_padding=-1"], "--config.data.crop_padding=-1: must be >= 0"),
    (MAIN + ["--config.data.crop_size=40"], "data.crop_size=40 must be between 1 and the images' 32x32"),
    (MAIN + ["--config.data.erase_prob=2"], "--config.data.erase_prob=2.0: must be >= 0 and <= 1"),
    (MAIN + ["--config.data.normalize=standardize", "--config.data.std=(0.2, 0.2, 0.2)"],
     "--config.data.std has 3 values but the images have 1 channel(s)"),
    (MAIN + ["--config.data.augment=affine", "--config.data.shift=1.5"], "--config.data.shift=1.5: must be >= 0 and < 1"),
    (MAIN + ["--config.data.augment=bogus"], "--config.data.augment='bogus': no such augmentation; registered: affine, "
     "affine_flip, crop, crop_flip, flip, none"),
    (MAIN + ["--config.data.normalize=bogus"], "unknown normalization 'bogus'"),
    (MAIN + ["--config.data.on_device=maybe"], "--config.data.on_device='maybe': choose one of"),
    (MAIN + ["--config.steps_per_dispatch=-1"], "--config.steps_per_dispatch=-1: must be >= 0"),
    (MAIN + ["--config.data.val_fraction=1.5"], "--config.data.val_fraction=1.5: must be > 0 and < 1"),
    (MAIN + ["--config.data.test_crop=five"], "unknown evaluation crop 'five'"),
    (MAIN + ["--config.checkpoint.keep=0"], "--config.checkpoint.keep=0: must be >= 1"),
    (MAIN + ["--config.checkpoint.best_metric=bogus"], "--config.checkpoint.best_metric='bogus': choose one of"),
    (MAIN + ["--config.checkpoint.best_mode=bogus"], "--config.checkpoint.best_mode='bogus': choose one of 'min', 'max'"),
    (MAIN + ["--config.model.dtype=bogus"], "--config.model.dtype='bogus': choose one of"),
    (MAIN + ["--config.model.num_classes=-1"], "--config.model.num_classes=-1: must be >= 0"),
    (MAIN + ["--config.model.num_classes=7"], "model.num_classes=7 but dataset 'digits' has 10 classes"),
    (MAIN + ["--config.model.name=lenet"], "unknown model 'lenet'; did you mean lenet5"),
    (MAIN + ["--config.model.name=alexnet"], "model 'alexnet' cannot take the data's 32x32x1 images (it is built for 227x227x3"),
    (MAIN + ["--config.data.name=bogus"], "tensorflow-datasets cannot open 'bogus'"),
    (MAIN + ["--config.data.name=hdf5", "--config.data.dir={empty}"], "no HDF5 dataset at"),
    (MAIN + ["--config.data.name=hdf5", "--config.data.dir={no_images}"], "has no 'images'"),
    (MAIN + ["--config.data.name=hdf5", "--config.data.dir={bad_labels}"], "labels run from 0 to 12 but there are 3 class names"),
    (MAIN + ["--config.data.name=hdf5", "--config.data.dir={bad_mean}"], "mean.json is not the builders' mean file"),
    (MAIN + ["--config.data.name=hdf5", "--config.data.dir={not_hdf5}"], "is not a readable HDF5 file"),
    (["experiments.main", "--config=configs/lenet_digits.py", "--workdir={file}"], "is a file, not a directory"),
    (["experiments.main", "--config=configs/lenet_digits.py", "--workdir={file}/run"], "is a file, not a directory"),
    (MAIN + ["--num_processes=2"], "--coordinator_address is missing"),
    (MAIN + ["--coordinator_address=localhost:1", "--num_processes=2", "--process_id=5"], "--process_id=5 must be in 0..1"),
    (MAIN + ["--resume_epoch=3"], "--resume_epoch=3: no such checkpoint"),
    (MAIN + ["--init_from={empty}"], "no checkpoints directory in"),
    (MAIN + ["extra"], "unexpected arguments: extra"),
    (MAIN + ["--workdirr=x"], "Unknown command line flag 'workdirr'"),
    (["experiments.main", "--config=configs/lenet_digit.py", "--workdir={run}"], "cannot load the config"),
    (["experiments.main", "--config=configs/lenet_digits.py:smok", "--workdir={run}"], "unknown config argument 'smok'"),
    (["experiments.main", "--config=configs/resnet_tiny.py", "--workdir={run}"], "--layout=tiny_imagenet_200"),
    (["experiments.main", "--config=configs/resnet_cifar10.py", "--workdir={run}", "--config.data.dir={empty}"],
     "tfds build cifar10"),
    (["experiments.main", "--config=configs/alexnet_dogs_vs_cats.py", "--workdir={run}"],
     "--layout=dogs_vs_cats --src=dogs-vs-cats"),
    (BUILD + ["--layout=folder", "--src={missing}", "--out={out}"], "is not a folder"),
    (BUILD + ["--layout=folder", "--src={file}", "--out={out}"], "is not a folder"),
    (BUILD + ["--layout=bogus", "--src={folder}", "--out={out}"], "value should be one of"),
    (BUILD + ["--layout=folder", "--src={folder}", "--out={out}", "--size=0"], "--size=0: the image side must be"),
    (BUILD + ["--layout=folder", "--src={folder}", "--out={out}", "--val=0.7", "--test=0.5"], "sum must be below 1"),
    (BUILD + ["--layout=folder", "--src={folder}", "--out={out}", "--val=-0.1"], "a split share of -0.1 cannot work"),
    (BUILD + ["--layout=folder", "--src={folder}", "--out={file}"], "is a file, not a directory"),
    (BUILD + ["--layout=folder", "--src={folder}", "--out={built}"], "already holds train.h5; pass --overwrite"),
    (BUILD + ["--layout=flowers17", "--src={folder}", "--out={out}"], "is not Oxford 17 flowers"),
    (BUILD + ["--layout=tiny_imagenet_200", "--src={tiny}", "--out={out}"], "class 0 has 3 images, not more than the 50"),
    (BUILD + ["--layout=tiny_imagenet_200", "--src={tiny}", "--out={out}", "--test=0.1"], "--test does not apply"),
    (BUILD + ["--layout=tiny_imagenet_200", "--src={tiny}", "--out={out}", "--val=0.5"], "takes a whole number of images"),
    (BUILD + ["--layout=folder", "--src={folder}", "--out={out}", "--seed=-1"], "--seed=-1: must be >= 0"),
    (BUILD + ["--layout=folder", "--src={folder}", "--out={file}/sub"], "is a file, not a directory"),
    (BUILD + ["--layout=folder", "--src={no_images}", "--out={out}"], "has no class sub-folders"),
    (BUILD + ["--layout=folder", "--src={text_only}", "--out={out}"], "cat holds no image (.jpg, .jpeg, .png, .bmp, .gif, .webp, .tif, .tiff, .ppm); add images or remove the folder"),
    (BUILD + ["--layout=folder", "--src={unreadable}", "--out={out}"], "could be read"),
    (SUMMARIZE, "pass --model=NAME"),
    (SUMMARIZE + ["--model=lenet5", "extra"], "unexpected arguments: extra"),
    (BUILD + ["--layout=folder", "--src={folder}", "--out={out}", "extra"], "unexpected arguments: extra"),
    (SUMMARIZE + ["--model=nope"], "unknown model 'nope'"),
    (SUMMARIZE + ["--model=vgg16", "--input_size=8,8"], "vgg16 cannot take a (8, 8, 3) input"),
    (SUMMARIZE + ["--model=lenet5", "--num_classes=0"], "--num_classes=0: must be a positive integer"),
    (SUMMARIZE + ["--model=lenet5", "--input_size=a,b"], "expected H,W or H,W,C as positive integers"),
    (SUMMARIZE + ["--model=lenet5", "--input_size=0,0"], "every dimension must be positive"),
    (SUMMARIZE + ["--model=inception_v3", "--input_size=32,32"], "outputs an empty"),
    (MAIN + ["--config.model.name=inception_v3"], "model 'inception_v3' cannot take the data's 32x32x1 images"),
    (MAIN + ["--config.model.input_shape=(64, 64, 3)"], "--config.model.input_shape=(64, 64, 3) but the data's images are (32, 32, 1)"),
    (MAIN + ["--config.data.name=synthetic", "--config.model.num_classes=3", "--config.data.synthetic_sizes=(8, 0, 8)"],
     "synthetic_sizes=(8, 0, 8): expected (train, val, test) image counts >= 1"),
    (MAIN + ["--config.data.name=hdf5", "--config.data.dir={mixed_sizes}"], "every split must have one size"),
    (MAIN + ["--init_from="], "--init_from is empty"),
    (MAIN + ["--init_from={empty}:abc"], "no checkpoints directory"),
    (["experiments.main", "--config=configs/lenet_digits.py", "--workdir="], "--workdir is empty"),
    (["experiments.main", "--config={syntax_error}", "--workdir={run}", "--config.optim.lr=1"], "line 1: invalid syntax"),
    (["experiments.main", "--config={raises}", "--workdir={run}"], "cannot load the config: RuntimeError: boom"),
    (["experiments.main", "--config={no_get_config}", "--workdir={run}"], "has no get_config() function"),
    (["experiments.main", "--config=configs/missing.py", "--workdir={run}", "--config.optim.lr=1"], "is not a file"),
    (MAIN + ["--config.stages=((30, 'optim.lr=1e-4'),)"], "the last stage ends at epoch 30 but num_epochs is 20"),
    (MAIN + ["--config.stages=((20, 'data.batch_size=8'),)"], "data.batch_size cannot change within a run"),
    (MAIN + ["--config.stages=((10, 'optim.lr=1e-3'), (5, 'optim.lr=1e-4'))"], "not after the previous stage's 10"),
    (MAIN + ["--config.plateau.use=True", "--config.plateau.factor=1.5"], "--config.plateau.factor=1.5: must be > 0 and < 1"),
    (MAIN + ["--config.plateau.use=True", "--config.plateau.monitor=val_los"], "--config.plateau.monitor='val_los': choose one of"),
    (MAIN + ["--config.early_stop.use=True", "--config.early_stop.patience=-1"], "--config.early_stop.patience=-1: must be >= 0"),
    (MAIN + ["--config.early_stop.use=True", "--config.early_stop.mode=up"], "--config.early_stop.mode='up': choose one of"),
    (EVALUATE, "Flag --workdir must have a value other than None"),
    (EVALUATE + ["--workdir={missing}"], "no such directory"),
    (EVALUATE + ["--workdir={empty}"], "has no config.json: not a run directory"),
    (EVALUATE + ["--workdir={bad_config_run}"], "config.json: Expecting"),
    (EVALUATE + ["--workdir={empty}", "--split=train"], "value should be one of <test|val>"),
    (EVALUATE + ["--workdir={no_checkpoints_run}"], "has no checkpoints directory"),
    (EVALUATE + ["--workdir={no_checkpoints_run}", "--workdir={no_checkpoints_run}"], "the same --workdir is given twice"),
    (EVALUATE + ["--workdir={no_checkpoints_run}", "--workdir={run_link}"], "the same --workdir is given twice ("),
    (MAIN[:2] + ["--workdir={linked_lock}"], "linked_lock/.lock is a symbolic link ("),
    (MAIN + ["--flagfile={looped_flags}"], "--flagfile: the flag files include each other in a loop ("),
    (MAIN + ["--flagfile={missing}"], "--flagfile: Unable to open flagfile: [Errno 2] No such file or directory"),
    (EVALUATE + ["--workdir={no_checkpoints_run}", "--out={file}"], "is a file, not a directory"),
    (EVALUATE + ["--workdir={empty}", "extra"], "unexpected arguments: extra"),
    (EXTRACT + ["--data={built}", "--out={out}"], "give --keras_weights=FILE (with --model=NAME) or --workdir=RUN"),
    (EXTRACT + ["--keras_weights={file}", "--data={built}", "--out={out}"], "--keras_weights needs --model=NAME"),
    (EXTRACT + ["--model=vgg16", "--keras_weights={file}", "--data={built}", "--out={out}"], "cannot read"),
    (EXTRACT + ["--model=vgg16", "--keras_weights={file}", "--data={built}", "--out={out}", "--splits=train,dev"],
     "--splits=train,dev: choose from train, val, test"),
    (EXTRACT + ["--model=vgg16", "--keras_weights={file}", "--data={built}", "--out={file}"], "is a file, not a directory"),
    (EXTRACT + ["--workdir={empty}", "--data={built}", "--out={out}"], "has no config.json"),
    (EXTRACT + ["--model=vgg16", "--keras_weights={file}", "--out={out}"], "Flag --data must have a value"),
    (LOGREG + ["--features={empty}"], "no train_features.h5 (write it with experiments.extract_features)"),
    # numbers that are not ASCII digits, sizes past XLA's arithmetic, splits too small to stratify,
    # one class or no image to fit, a name the terminal's encoding lacks
    (SUMMARIZE + ["--model=lenet5", "--input_size=\u00b2,\u00b2"], "expected H,W or H,W,C as positive integers"),
    (SUMMARIZE + ["--model=lenet5", "--input_size=3000000000,3000000000"],
     "--input_size=3000000000,3000000000: at most 32768 pixels a side and 1,073,741,824 values an image"),
    (MAIN + ["--init_from={checkpoints_only}:\u00b2"], "the epoch after ':' must be a whole number"),
    (MAIN + ["--config.data.val_fraction=0.001"], "--config.data.val_fraction=0.001 holds out 2 of 1437 images, "
     "leaving 1435: each side needs at least one image of each of the 10 classes"),
    (LOGREG + ["--features={one_class_features}", "--out={out}"], "the training features hold one class only"),
    (LOGREG + ["--features={no_train_features}", "--out={out}"], "the training features hold no image"),
    (PREDICT + ["--workdir={damaged_dataset_run}", "{file}"], "dataset.json is damaged (JSONDecodeError: "),
    (MAIN + ["--config.data.name=hdf5", "--config.data.dir={nchw}"], "train.h5: images are (4, 3, 8, 8), not N x H x W x "
     "C with 1 or 3 channels (stored channels-first, N x C x H x W: write np.transpose(images, (0, 2, 3, 1)))"),
    (MAIN + ["--config.data.eval_batch_size=100000000"], "--config.data.eval_batch_size=100000000: one batch of "
     "(32, 32, 1) images takes 381.5 GiB as float32, more than half of this machine's"),
    (LOGREG + ["--features={empty}", "--C=a,b"], "--C=a,b: expected comma-separated positive numbers"),
    (LOGREG + ["--features={empty}", "--jobs=0"], "--jobs=0: a positive number of parallel fits"),
    (LOGREG + ["--features={empty}", "--load={missing}"], "cannot read"),
    (LOGREG + ["--features={empty}", "--out={file}"], "is a file, not a directory"),
    (PREDICT + ["--workdir={empty}"], "give the image files to classify after the flags"),
    (PREDICT + ["{file}"], "give --workdir=RUN or --keras_weights=FILE (with --model=NAME), one of the two"),
    (PREDICT + ["--keras_weights={file}", "{file}"], "--keras_weights needs --model=NAME"),
    (PREDICT + ["--workdir={empty}", "{file}"], "has no config.json"),
    (PREDICT + ["--workdir={empty}", "--top=0", "{file}"], "--top=0"),
    (["experiments.main", "--config=configs/minivggnet_cifar10_ensemble.py:smoke", "--workdir={run}",
      "--resume_epoch=2"], "--resume_epoch / --init_from apply to one run"),
    (["experiments.main", "--config=configs/minivggnet_cifar10_ensemble.py", "--workdir={run}",
      "--config.ensemble.members=-1"], "--config.ensemble.members=-1: must be >= 0"),
]


def write_h5(directory, labels_max=2, images=True, class_names=True, mean="ok", shape=(4, 8, 8, 3)):
  os.makedirs(directory)
  for split in ("train", "val", "test"):
    with h5py.File(os.path.join(directory, f"{split}.h5"), "w") as f:
      if images:
        f["images"] = np.zeros(shape, np.uint8)
      f["labels"] = np.array([0, 1, 2, labels_max], np.int32)
      if class_names:
        f.attrs["class_names"] = [b"a", b"b", b"c"]
  with open(os.path.join(directory, "mean.json"), "w") as f:
    f.write('{"R": 1, "G": 2, "B": 3, "std": [1, 1, 1]}' if mean == "ok" else mean)


def write_damaged_hdf5(directory):
  """A dataset whose train.h5 opens (its metadata is intact) but whose compressed image chunks do
  not decompress."""
  write_h5(directory)
  path = os.path.join(directory, "train.h5")
  os.remove(path)
  with h5py.File(path, "w") as f:
    f.create_dataset("images", data=np.random.default_rng(0).integers(0, 256, (64, 8, 8, 3), np.uint8),
                     chunks=(8, 8, 8, 3), compression="gzip")
    f["labels"] = np.arange(64) % 3
    f.attrs["class_names"] = [b"a", b"b", b"c"]
    start = f["images"].id.get_chunk_info(3).byte_offset
  with open(path, "r+b") as f:
    f.seek(start)
    f.write(b"\xff" * 64)


def image(path, size=(12, 10)):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.new("RGB", size, (120, 30, 200)).save(path)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
  base = tmp_path_factory.mktemp("bad_inputs")
  f = {name: str(base / name) for name in ("empty", "no_images", "bad_labels", "bad_mean", "not_hdf5",
                                            "file", "missing", "folder", "built", "tiny", "mixed_sizes",
                                            "syntax_error", "raises", "no_get_config", "text_only", "unreadable",
                                            "bad_config_run", "no_checkpoints_run", "nan_mean", "train_only",
                                            "latin1_config", "dict_config", "partial_config", "damaged_chunks",
                                            "nan_features", "one_class_features", "no_train_features",
                                            "checkpoints_only", "damaged_dataset_run", "nchw", "run_link",
                                            "linked_lock", "looped_flags")}
  os.makedirs(f["empty"])
  os.makedirs(f["bad_config_run"])
  open(os.path.join(f["bad_config_run"], "config.json"), "w").write("{not json")
  os.makedirs(f["no_checkpoints_run"])
  open(os.path.join(f["no_checkpoints_run"], "config.json"), "w").write('{"model": {}, "data": {}}')
  write_h5(f["no_images"], images=False)
  write_h5(f["bad_labels"], labels_max=12)
  write_h5(f["bad_mean"], mean="{garbage")
  write_h5(f["nan_mean"], mean='{"mean": [1, NaN, 3], "std": [1, 1, 1]}')
  write_h5(f["train_only"])
  for split in ("val", "test"):
    os.remove(os.path.join(f["train_only"], f"{split}.h5"))
  os.makedirs(f["not_hdf5"])
  for split in ("train", "val", "test"):
    open(os.path.join(f["not_hdf5"], f"{split}.h5"), "w").write("not hdf5")
  open(f["file"], "w").write("a file")
  for c in ("cat", "dog"):
    for i in range(6):
      image(os.path.join(f["folder"], c, f"{i}.png"))
  write_h5(f["built"])
  write_h5(f["mixed_sizes"])
  for c in ("cat", "dog"):
    for i in range(6):
      os.makedirs(os.path.join(f["text_only"], c), exist_ok=True)
      open(os.path.join(f["text_only"], c, f"{i}.txt"), "w").write("not an image")
      os.makedirs(os.path.join(f["unreadable"], c), exist_ok=True)
      open(os.path.join(f["unreadable"], c, f"{i}.jpg"), "w").write("not a jpeg")
  with h5py.File(os.path.join(f["mixed_sizes"], "val.h5"), "a") as h:
    del h["images"]
    h["images"] = np.zeros((4, 16, 16, 3), np.uint8)
  for name, text in (("syntax_error", "def get_config(:\n"), ("no_get_config", "x = 1\n"),
                     ("raises", "def get_config(arg=None):\n  raise RuntimeError('boom')\n")):
    f[name] += ".py"
    open(f[name], "w").write(text)
  for name, text in (("latin1_config", "# caf\xe9 au lait\ndef get_config(arg=None):\n  return None\n"),
                     ("dict_config", "def get_config(arg=None):\n  return {'model': {'name': 'lenet5'}}\n"),
                     ("partial_config", "import ml_collections\n\ndef get_config(arg=None):\n  return "
                      "ml_collections.ConfigDict({'model': {'name': 'lenet5'}})\n")):
    f[name] += ".py"
    open(f[name], "wb").write(text.encode("latin-1"))
  write_damaged_hdf5(f["damaged_chunks"])
  for name, rows in (("one_class_features", np.zeros(6, np.int64)), ("no_train_features", np.zeros(0, np.int64))):
    os.makedirs(f[name])
    for split in ("train", "test"):
      labels = rows if split == "train" else np.arange(4) % 2
      with h5py.File(os.path.join(f[name], f"{split}_features.h5"), "w") as h:
        h["features"], h["labels"] = np.ones((len(labels), 4), np.float32), labels
        h.attrs["class_names"] = ["a", "b"]
  os.makedirs(os.path.join(f["checkpoints_only"], "checkpoints"))
  write_h5(f["nchw"], shape=(4, 3, 8, 8))
  os.symlink(f["no_checkpoints_run"], f["run_link"])
  f["looped_flags"] += ".txt"  # a flag file that includes itself: absl warned twice and went on
  open(f["looped_flags"], "w").write(f"--flagfile={f['looped_flags']}\n")
  os.makedirs(f["linked_lock"])  # its .lock points at a file of the user's: truncated by a run before
  open(os.path.join(base, "precious.txt"), "w").write("precious")
  os.symlink(os.path.join(base, "precious.txt"), os.path.join(f["linked_lock"], ".lock"))  # an ensemble's member given again through a link  # channels first: it trained on 3-pixel-high images before
  os.makedirs(f["damaged_dataset_run"])  # a dataset.json cut short (a full disk, a hand edit)
  open(os.path.join(f["damaged_dataset_run"], "config.json"), "w").write('{"model": {}, "data": {}}')
  open(os.path.join(f["damaged_dataset_run"], "dataset.json"), "w").write('{"name": "digits", "class_')
  os.makedirs(f["nan_features"])
  for split in ("train", "test"):
    with h5py.File(os.path.join(f["nan_features"], f"{split}_features.h5"), "w") as h:
      features = np.ones((6, 4), np.float32)
      features[2, 1] = np.nan
      h["features"], h["labels"] = features, np.arange(6) % 2
      h.attrs["class_names"] = ["a", "b"]
  wnids = ["n0001", "n0002"]
  open(os.path.join(os.makedirs(f["tiny"]) or f["tiny"], "wnids.txt"), "w").write("\n".join(wnids))
  for w in wnids:
    for i in range(3):
      image(os.path.join(f["tiny"], "train", w, "images", f"{w}_{i}.JPEG"))
  image(os.path.join(f["tiny"], "val", "images", "val_0.JPEG"))
  open(os.path.join(f["tiny"], "val", "val_annotations.txt"), "w").write("val_0.JPEG\tn0001\t0\t0\t1\t1\n")
  return base, f


def snapshot(root):
  return {os.path.join(d, n): (os.path.getsize(os.path.join(d, n)), os.path.getmtime(os.path.join(d, n)))
          for d, _, names in os.walk(root) for n in names}


@pytest.mark.parametrize("part", [0, 1])  # every other case: the two halves run on the two workers
def test_every_bad_input_gets_one_error_line_status_2_and_writes_nothing(fixtures, tmp_path, part):
  base, f = fixtures
  cases, expected = [], []
  for i, (argv, message, *env) in enumerate(CASES):
    names = dict(f, run=str(tmp_path / f"run{i}"), out=str(tmp_path / f"out{i}"))
    cases.append({"module": argv[0], "argv": [a.format(**names) for a in argv[1:]], "cwd": ROOT,
                  **({"env": {**os.environ, **env[0]}} if env else {})})
    expected.append(message)
  assert len(CASES) >= 40 and len({(c["module"], *c["argv"]) for c in cases}) == len(CASES)
  cases, expected = cases[part::2], expected[part::2]
  before = snapshot(base)
  results = cli_batch(cases)
  if os.environ.get("CNNZOO_BAD_INPUTS_REPORT"):  # the record: every command line and the line it printed
    # both halves add their lines, each after its case's number: `sort -n FILE | cut -f2-` orders them
    def masked(text):
      text = text.replace(str(tmp_path), "TMP").replace(str(base), "FIXTURES")
      return re.sub(r"a{20,}", lambda m: f"aaa…({len(m.group())} a)", text)
    with open(os.environ["CNNZOO_BAD_INPUTS_REPORT"], "a") as out:
      for i, (case, r) in enumerate(zip(cases, results)):
        argv = masked(" ".join(case["argv"]))
        out.write(f"{part + 2 * i}\t- `{case['module']} {argv}` (rc {r['rc']}): `{masked(r['stderr'].strip())}`\n")
  failures = []
  for case, message, r in zip(cases, expected, results):
    lines = [line for line in r["stderr"].splitlines() if line.strip()]
    ok = (r["rc"] == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0])
    if not ok:
      failures.append(f"{case['module']} {' '.join(case['argv'])}\n  rc {r['rc']}, {len(lines)} stderr lines: "
                      f"{(lines[0] if lines else '')[:300]} ... {(lines[-1] if lines else '')[:200]}")
  assert not failures, f"{len(failures)} of {len(cases)} cases break the rule:\n" + "\n".join(failures)
  assert snapshot(base) == before  # no fixture was touched
  written = [p for p in tmp_path.rglob("*") if p.is_file()]
  assert not written, written


def test_the_python_api_raises_user_errors(tmp_path):
  from cnnzoo.errors import UserError
  from cnnzoo.models import create_model
  from cnnzoo.transfer import load_keras_weights
  for bad in (0, -1, "ten", 2.5):
    with pytest.raises(UserError, match="a model needs a positive integer number of classes"):
      create_model("lenet5", num_classes=bad)
  with pytest.raises(UserError, match="unknown model 'lenet'"):
    create_model("lenet", num_classes=10)
  with pytest.raises(UserError, match="'lenet5' does not take the overrides \\['bogus'\\]"):
    create_model("lenet5", num_classes=10, bogus=1)
  with pytest.raises(UserError, match="cannot read"):
    load_keras_weights(str(tmp_path / "missing.h5"), "vgg16")
  (tmp_path / "text.h5").write_text("not hdf5")
  with pytest.raises(UserError, match="cannot read"):
    load_keras_weights(str(tmp_path / "text.h5"), "vgg16")
  with h5py.File(tmp_path / "other.h5", "w") as h:
    h["images"] = np.zeros(3)
  with pytest.raises(UserError, match="not a Keras weight file"):
    load_keras_weights(str(tmp_path / "other.h5"), "vgg16")
  with pytest.raises(UserError, match="unknown model"):
    load_keras_weights(str(tmp_path / "other.h5"), "vgg17")


def test_the_cli_exit_does_what_the_interpreter_does_at_exit():
  """cnnzoo.cli.exit_now (every entry point ends through it, skipping the module teardown: benchmarks/exit_teardown.py):
  the status as SystemExit's, other threads joined, atexit handlers run, buffered output flushed."""
  import subprocess
  import sys
  script = ("import atexit, sys, threading, time\n"
            "from cnnzoo import cli\n"
            "atexit.register(lambda: print('atexit ran'))\n"
            "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
            "print('buffered', end='')\n"
            "cli.exit_now(sys.argv[1] if not sys.argv[1].isdigit() else int(sys.argv[1]))\n")
  for code, status, out, err in (("3", 3, "bufferedthread done\natexit ran\n", ""),
                                 ("0", 0, "bufferedthread done\natexit ran\n", ""),
                                 ("bye", 1, "bufferedthread done\natexit ran\n", "bye\n")):
    proc = subprocess.run([sys.executable, "-c", script, code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (status, out, err)


def test_a_name_the_terminal_cannot_encode_is_escaped_not_a_traceback(tmp_path):
  """stdout / stderr in ASCII (LANG=C, a pipe with PYTHONIOENCODING=ascii): the error line names the
  path with its non-ASCII letters escaped."""
  import subprocess
  import sys
  missing = tmp_path / "caf\u00e9" / "x.py"
  env = dict(os.environ, PYTHONIOENCODING="ascii")
  r = subprocess.run([sys.executable, "-m", "experiments.main", f"--config={missing}"], cwd=ROOT, env=env,
                     capture_output=True, timeout=120)
  assert r.returncode == 2, r.stderr[-2000:]
  assert r.stderr.decode("ascii").strip() == f"error: cannot load the config: {tmp_path}/caf\\xe9/x.py is not a file"


def test_a_flag_file_may_hold_config_overrides(tmp_path, forkserver):
  """--config.FIELD lines of a --flagfile are overrides as on the command line."""
  flags_file = tmp_path / "flags.txt"
  flags_file.write_text("--config=configs/lenet_digits.py\n--config.num_epochs=1\n--config.monitor.progress=False\n")
  child = forkserver.run([f"--flagfile={flags_file}", f"--workdir={tmp_path / 'run'}", "--config.monitor.plot=False"])
  assert child.returncode == 0, child.stderr[-2000:]
  with open(tmp_path / "run" / "history.json") as f:
    assert len(json.load(f)) == 1
