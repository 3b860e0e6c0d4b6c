"""MiniVGGNet on Oxford Flowers-17 with and without augmentation (seed 2020-11-17,
data-augmentation): 1,360 images, 80 per class, 75 % / 25 % stratified; the test split doubles as
validation, as in the seed.

  python -m experiments.main --config=configs/minivggnet_flowers17.py --workdir=runs/flowers_aug
  python -m experiments.main --config=configs/minivggnet_flowers17.py:noaug --workdir=runs/flowers_noaug

Seed results on the 340 test images: accuracy 0.57 without augmentation (overfitting from about
epoch 20), 0.67 with it. The journal gives no recipe; ours: 64x64 aspect-aware images scaled to
[0, 1], SGD lr 0.05, batch 32, 100 epochs, Keras ImageDataGenerator ranges rotation 30 deg, shift
0.1, shear 0.2 deg, zoom 0.2, horizontal flips.
Data: download 17flowers.tgz from the Oxford VGG site, unpack it (jpg/image_0001.jpg ...) and run
  python -m experiments.build_dataset --layout=flowers17 --src=17flowers --out=data/flowers17-hdf5 --size=64
"""

from configs import base

VARIANTS = ("noaug",)  # arguments that select another journal run (listed by --list_configs)


def get_config(arg=None):
  c = base.get_config()
  c.model.name = "minivggnet"
  c.journal.run = "MiniVGGNet, Flowers-17, with augmentation"
  c.journal.seed = "2020-11-17"
  c.journal.recipe = "our choice: the journal gives no recipe"
  c.journal.metric = "test_accuracy"
  c.journal.figure = 0.67
  c.optim.semantics = "keras"  # Keras 3's update arithmetic, as the journal trained
  c.model.kernel_init = "glorot_uniform"  # Keras' default for Conv2D and Dense (biases zero)
  c.data.name = "hdf5"
  c.data.dir = "data/flowers17-hdf5"
  c.data.how_to_get = ("download 17flowers.tgz from the Oxford VGG site, unpack it into 17flowers/ and run "
                       "`python -m experiments.build_dataset --layout=flowers17 --src=17flowers "
                       "--out=data/flowers17-hdf5 --size=64`")
  c.data.batch_size = 32
  c.data.augment = "affine_flip"
  c.data.rotation, c.data.shift, c.data.shear, c.data.zoom = 30.0, 0.1, 0.2, 0.2
  c.optim.name = "sgd"
  c.optim.lr = 0.05
  c.num_epochs = 100
  args = base.parse_args(arg, ("smoke", "noaug"))
  if "noaug" in args:
    c.data.augment = "none"
    base.drop(c.data, "rotation", "shift", "shear", "zoom")  # affine_flip's
    c.journal.run = "MiniVGGNet, Flowers-17, without augmentation"
    c.journal.figure = 0.57
  if "smoke" in args:
    base.smoke(c, (64, 64, 3), 17)
  return c
