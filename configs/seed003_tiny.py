"""Seed 003's Tiny-ImageNet runs on 32x32 images, from scratch: the Part-1 network and AlexNet-tiny.

  python -m experiments.main --config=configs/seed003_tiny.py             # Part 1 network, 0.1535
  python -m experiments.main --config=configs/seed003_tiny.py:alexnet     # AlexNet-tiny, 100 epochs, 0.1037
  python -m experiments.main --config=configs/seed003_tiny.py:alexnet50   # AlexNet-tiny, 50 epochs, 0.1251
  python -m experiments.main --config=configs/seed003_tiny.py:alexnet2    # AlexNet-tiny, 2 classes, 0.996

Seed 003 (a course report, Keras 2) resizes Tiny-ImageNet's 100,000 training images to 32x32 and
holds out 30 % ("validation split 0.3"): 70,000 to train, 30,000 to test. Here that is the
builder's per-class split with 150 of every class's 500 held out (`--val=150`); the seed's "test
accuracy" is our val_accuracy on those 30,000 (the official validation set is our test split).
Part 1: the layer table's network (`seed003_tiny_net`), "Test accuracy: 0.1535". AlexNet-tiny
(`alexnet_tiny`, 22,370,760 params): `fit(batch_size=64, epochs=100)`, "Test accuracy: 0.1037";
stopped at 50 epochs it had 0.1251. On two classes (`batch_size=46, epochs=500`), "Test accuracy:
0.996"; the seed does not say which two: here the first two of the dataset (`data.classes`).
Left out by the seed, chosen here: Adam with Keras' defaults (lr 1e-3), pixels scaled to [0, 1], no
augmentation, batch 64 and 30 epochs for the Part-1 network.
Data:
  python -m experiments.build_dataset --layout=tiny_imagenet_200 --src=tiny-imagenet-200 \\
      --out=data/tiny-imagenet-200-32px-70k-hdf5 --size=32 --resize=plain --val=150
"""

from configs import base

VARIANTS = ("alexnet", "alexnet50", "alexnet2")  # arguments that select another journal run
DATA_32PX_70K = "data/tiny-imagenet-200-32px-70k-hdf5"
HOW_TO_GET_70K = ("download tiny-imagenet-200.zip (CS231n), unzip it and run `python -m experiments.build_dataset "
                  "--layout=tiny_imagenet_200 --src=tiny-imagenet-200 --out=data/tiny-imagenet-200-32px-70k-hdf5 "
                  "--size=32 --resize=plain --val=150`")


def get_config(arg=None):
  args = base.parse_args(arg, ("smoke", *VARIANTS))
  c = base.get_config()
  c.model.name = "seed003_tiny_net"
  c.journal.run = "seed 003 Part-1 network, Tiny-ImageNet 32x32"
  c.journal.seed = "003"
  c.journal.recipe = "our choice: the seed gives no hyper-parameters"
  c.journal.metric = "val_accuracy"  # the seed's test split is our val split (see above)
  c.journal.figure = 0.1535
  c.optim.semantics = "keras"  # Keras' update arithmetic, as the seed trained
  c.model.kernel_init = "glorot_uniform"  # Keras' default for Conv2D and Dense (biases zero)
  c.data.name = "hdf5"
  c.data.dir = DATA_32PX_70K
  c.data.how_to_get = HOW_TO_GET_70K
  c.data.batch_size = 64
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.num_epochs = 30
  c.checkpoint.keep_every = 10
  if args & {"alexnet", "alexnet50", "alexnet2"}:
    c.journal.recipe = "journal (batch, epochs) + our choice: the optimizer"
    c.model.name = "alexnet_tiny"
    c.journal.run, c.journal.figure, c.num_epochs = "AlexNet-tiny, Tiny-ImageNet 32x32, 100 epochs", 0.1037, 100
  if "alexnet50" in args:
    c.journal.run, c.journal.figure, c.num_epochs = "AlexNet-tiny, Tiny-ImageNet 32x32, 50 epochs", 0.1251, 50
  if "alexnet2" in args:
    c.model.name = "alexnet_tiny"
    c.journal.run, c.journal.figure, c.num_epochs = "AlexNet-tiny, Tiny-ImageNet 32x32, 2 classes", 0.996, 500
    c.data.classes = (0, 1)
    c.data.batch_size = 46
    c.checkpoint.keep_every = 100
  if "smoke" in args:
    base.smoke(c, (32, 32, 3), 2 if "alexnet2" in args else 200)
  return c
