"""ShallowNet on the 3-class animals set (seed 000, 2020-11-10-first-CNN-shallownet): one conv layer.

  python -m experiments.main --config=configs/shallownet_animals.py

The journal: "One Conv layer structure for identifying animals of 3 classes ... Average accuracy is
just about 70%". Nothing else is given; from the book code it follows: the Kaggle "animals" set
(dogs, cats, pandas, 1,000 each), 32x32 images scaled to [0, 1], a 75 % / 25 % split with the
test split as validation, SGD lr 0.005, batch 32, 100 epochs, no augmentation.
Data: any folder with one sub-folder of images per class, e.g. animals/{cats,dogs,panda}/*.jpg:
  python -m experiments.build_dataset --layout=folder --src=animals --out=data/animals-hdf5 --size=32 \\
      --resize=plain --val=0 --test=0.25
"""

from configs import base


def get_config(arg=None):
  c = base.get_config()
  c.model.name = "shallownet"
  c.journal.run = "ShallowNet, animals (3 classes)"
  c.journal.seed = "000 (2020-11-10)"
  c.journal.recipe = "journal + book"
  c.journal.metric = "test_accuracy"
  c.journal.figure = 0.70
  c.optim.semantics = "keras"  # Keras' update arithmetic, as the journal trained
  c.model.kernel_init = "glorot_uniform"  # Keras' default for Conv2D and Dense (biases zero)
  c.data.name = "hdf5"
  c.data.dir = "data/animals-hdf5"
  c.data.how_to_get = ("put the animals images in animals/<class>/ and run `python -m experiments.build_dataset "
                       "--layout=folder --src=animals --out=data/animals-hdf5 --size=32 --resize=plain --val=0 "
                       "--test=0.25`")
  c.data.batch_size = 32
  c.optim.name = "sgd"
  c.optim.lr = 0.005
  c.num_epochs = 100
  c.checkpoint.keep_every = 25
  if "smoke" in base.parse_args(arg):
    base.smoke(c, (32, 32, 3), 3)
  return c
