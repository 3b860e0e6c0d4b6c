"""AlexNet from scratch on Kaggle Dogs-vs-Cats (seed 2020-11-23) with the seed's HDF5 pipeline:
images stored at 256x256, random 227x227 patches in training, the whole image resized to 227 for
validation and the 10-crop average (four corners + center, and their mirrors) for the test.

  python -m experiments.main --config=configs/alexnet_dogs_vs_cats.py --workdir=runs/alexnet_dogs

The network: "our AlexNet" of the journal is the one it built layer by layer in seed 001 (one
tower, LRN after conv1 and conv2, dropout 0.5 before each 4096-unit layer: model `alexnet`), kept
here. The book code the journal follows trains another AlexNet on this data -- BatchNormalization
after every conv and dense layer instead of LRN, dropout 0.25 after each pooling layer -- which
cnnzoo does not build; where the journal names its own network, that network wins.
The journal gives no hyper-parameters for this run; these are ours, taken from the book's recipe
for this dataset where it has one: Adam lr 1e-3, batch 128, 75 epochs, mean subtraction, rotation
20 deg / shift 0.2 / shear 0.15 deg / zoom 0.15 / flips, 227x227 patches, 10-crop test; L2 2e-4 on
every kernel is our choice (the book's regularization belongs to its BatchNorm network).
Data: the seed's split of Kaggle's 25,000 training images (2,500 val and 2,500 test carved out):
download train.zip from kaggle.com/c/dogs-vs-cats, unzip it and run
  python -m experiments.build_dataset --layout=dogs_vs_cats --src=dogs-vs-cats \\
      --out=data/dogs-vs-cats-hdf5 --size=256
"""

from configs import base


def get_config(arg=None):
  c = base.get_config()
  c.journal.run = "AlexNet from scratch, Dogs-vs-Cats"
  c.journal.seed = "2020-11-23"
  c.journal.recipe = "our choice: the journal gives no hyper-parameters (the book's where it has them)"
  c.journal.metric = "test_accuracy"
  c.journal.figure = 0.0
  c.optim.semantics = "keras"  # Keras 3's update arithmetic, as the journal trained
  c.model.kernel_init = "glorot_uniform"  # Keras' default for Conv2D and Dense (biases zero)
  c.model.name = "alexnet"  # seed 001's AlexNet (LRN), 227x227
  c.data.name = "hdf5"
  c.data.dir = "data/dogs-vs-cats-hdf5"
  c.data.how_to_get = ("download train.zip from kaggle.com/c/dogs-vs-cats, unzip it into dogs-vs-cats/ "
                       "and run `python -m experiments.build_dataset --layout=dogs_vs_cats "
                       "--src=dogs-vs-cats --out=data/dogs-vs-cats-hdf5 --size=256`")
  c.data.crop_size = 227
  c.data.eval_crop = "resize"
  c.data.test_crop = "ten"
  c.data.batch_size = 128
  c.data.normalize = "mean"
  c.data.augment = "affine_flip"
  c.data.rotation, c.data.shift, c.data.shear, c.data.zoom = 20.0, 0.2, 0.15, 0.15
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.optim.l2 = 2e-4
  c.num_epochs = 75
  c.checkpoint.keep_every = 5
  if "smoke" in base.parse_args(arg):  # synthetic 112x112 images, 99x99 patches (AlexNet's smallest comfortable size)
    base.smoke(c, (112, 112, 3), 2)
    c.data.crop_size = 99
  return c
