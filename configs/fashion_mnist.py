"""Zalando's Fashion-MNIST (70,000 real 28x28 grayscale images, 10 classes): the journal's families
on real images, each beside a published figure from the dataset's README benchmark table.

  python -m experiments.main --config=configs/fashion_mnist.py                 # MiniVGGNet, the seed's recipe
  python -m experiments.main --config=configs/fashion_mnist.py:ensemble        # three of them averaged
  python -m experiments.main --config=configs/fashion_mnist.py:lenet           # the Keras LeNet notebook
  python -m experiments.main --config=configs/fashion_mnist.py:minigooglenet   # MiniGoogLeNet, shortened
  python -m experiments.main --config=configs/fashion_mnist.py:resnet20        # ResNet20 v1, the Keras example
  python -m experiments.main --config=configs/fashion_mnist.py:resnet20_erase  # ... plus random erasing
  python -m experiments.main --config=configs/fashion_mnist.py:alexnet         # AlexNet-tiny (seed 003)

Data: `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu: the four IDX files in
/usr/share/datasets/fashion-mnist, found there by default), or the four files in a folder given as
--config.data.dir, or tfds `fashion_mnist` when prepared. Train on the 60,000 training images; the
10,000 test images double as the validation data, as the seed did on MNIST and CIFAR-10 (the figure
reported is the last epoch's test accuracy: no epoch or weight is chosen on it). A stratified
validation split instead: --config.data.val_fraction=0.1.

The variants and the published figures they stand beside (Fashion-MNIST README, "Benchmark"):
- (default) MiniVGGNet with the seed's CIFAR-10 optimizer (seed 000, 2020-11-12): SGD 0.01, momentum
  0.9, Nesterov, Keras' time decay, batch 64, pixels / 255, no augmentation; 25 epochs and the
  book's decay a0 / epochs = 0.01 / 25 (the journal's CIFAR-10 run: a0 / batchSize = 0.01 / 64 over
  40 epochs), our choice for a 25-epoch run.
  Beside "VGG16 26M parameters, no preprocessing: 0.935".
- `ensemble`: three such MiniVGGNets (seeds 0, 1, 2) averaged (seed 000, 2020-11-22); also the
  MiniVGGNet's mean +- std over three seeds.
- `lenet`: the seed's LeNet Keras notebook (lenet5_keras, 44,426 params): Adam 1e-3, batch 128,
  20 epochs, pixels / 255. Beside "2 Conv+pooling (TensorFlow's tutorial): 0.916".
- `minigooglenet`: the seed's recipe (seed 000, 2020-12-06: SGD 5e-3, momentum 0.9, poly 2, batch
  64, mean subtraction, shift 0.1 + flips), shortened from 70 to 5 epochs so that it fits a 2-core
  CPU (~1 GFLOP a training image, ~10 minutes an epoch); the poly decay still reaches 0 at the last
  epoch. Beside
  "GoogleNet with cross-entropy loss: 0.937".
- `resnet20`: ResNet20 v1 (the Keras example's network, he_normal kernels) with He et al.'s CIFAR
  SGD (lr 0.1, momentum 0.9) made short, plus our choices: Nesterov, weight decay 5e-4 (He et al.:
  1e-4) as Keras' L2 2.5e-4 on every kernel, batch 128, per-channel standardization, pad-2 random
  crops + horizontal flips, a cosine decay to 0 over 15 epochs (what a 2-core CPU trains in ~25
  minutes), stepped every batch.
  (The Keras example's Adam and steps at 40 / 60 / 80 / 90 % of its epochs would spend the last
  40 % of a short run below 1e-5.)
  Beside "ResNet18: 0.949".
- `resnet20_erase`: the same plus random erasing (p 0.5, Zhong et al.'s defaults) over 30 epochs
  (the cosine stretched to 30: about an hour on a 2-core CPU), the moonshot toward "WRN-28-10 +
  Random Erasing: 0.963" (Zhong et al.: WRN-28-10's error 4.01 % -> 3.65 % with random erasing,
  a 36.5M-parameter network trained for 300 epochs; ResNet20 has 0.27M).
- `alexnet`: seed 003's AlexNet-tiny (21.6M params at 28x28x1): Adam 1e-3, batch 64, pixels / 255,
  no augmentation, 5 epochs (shortened: ~4 minutes an epoch on a 2-core CPU). Beside "AlexNet:
  0.899" (the figure cited with the README's table).
"""

from configs import base

VARIANTS = ("ensemble", "lenet", "minigooglenet", "resnet20", "resnet20_erase", "alexnet")
SHAPE = (28, 28, 1)


def get_config(arg=None):
  args = base.parse_args(arg, ("smoke", *VARIANTS))
  c = base.get_config()
  c.journal.seed = "Fashion-MNIST README"
  c.journal.recipe = "our choice: the journal's MiniVGGNet optimizer, the book's decay a0 / epochs, 25 epochs"
  c.journal.metric = "test_accuracy"
  c.data.name = "fashion_mnist"
  c.data.val_fraction = 0.0  # the test split doubles as validation; the figure is the last epoch's
  c.model.kernel_init = "glorot_uniform"  # Keras' default for Conv2D and Dense (biases zero)
  c.optim.semantics = "keras"  # Keras 3's update arithmetic, as the journal trained
  c.checkpoint.keep_every = 5  # resume at epoch N with a new rate (--resume_epoch)

  # (default) MiniVGGNet, the seed's recipe
  c.model.name = "minivggnet"
  c.journal.run = "MiniVGGNet, Fashion-MNIST, the seed's CIFAR-10 optimizer"
  c.reference.figure, c.reference.source = 0.935, "VGG16 26M parameters, no preprocessing"
  c.data.batch_size = 64
  c.optim.name = "sgd"
  c.optim.lr = 0.01
  c.optim.momentum = 0.9
  c.optim.nesterov = True
  c.schedule.name = "keras_time"
  c.num_epochs = 25
  c.schedule.decay = 0.01 / c.num_epochs  # the book's a0 / epochs

  if "ensemble" in args:
    c.journal.run = "three MiniVGGNets averaged, Fashion-MNIST"
    c.ensemble.members = 3
  if "lenet" in args:
    c.journal.recipe = "journal (the seed's LeNet notebook, on Fashion-MNIST)"
    c.model.name = "lenet5_keras"
    c.journal.run = "LeNet (Keras notebook), Fashion-MNIST, Adam"
    c.reference.figure, c.reference.source = 0.916, "2 Conv+pooling (TensorFlow's tutorial)"
    c.data.batch_size = 128
    c.optim.name, c.optim.lr = "adam", 1e-3
    base.drop(c.optim, "momentum", "nesterov")  # SGD's
    c.schedule.name = "constant"
    base.drop(c.schedule, "decay")
    c.num_epochs = 20
  if "minigooglenet" in args:
    c.journal.recipe = "journal + book, shortened from 70 to 5 epochs"
    c.model.name = "minigooglenet"
    c.journal.run = "MiniGoogLeNet, Fashion-MNIST, poly 2 decay, 5 epochs (shortened from 70)"
    c.reference.figure, c.reference.source = 0.937, "GoogleNet with cross-entropy loss"
    c.data.normalize = "mean"
    c.data.augment = "affine_flip"
    c.data.shift = 0.1
    c.optim.lr, c.optim.nesterov = 5e-3, False
    c.schedule.name, c.schedule.power = "poly", 2.0
    base.drop(c.schedule, "decay")
    c.num_epochs = 5
  if args & {"resnet20", "resnet20_erase"}:
    c.journal.recipe = "our choice: no journal recipe (He et al.'s SGD made short)"
    c.model.name = "resnet20_v1"
    c.journal.run = "ResNet20 v1, Fashion-MNIST, SGD + cosine, crops + flips, 15 epochs"
    c.reference.figure, c.reference.source = 0.949, "ResNet18 (normalization, flips, translation, rotation)"
    c.model.kernel_init = "he_normal"
    c.data.batch_size = 128
    c.data.normalize = "standardize"
    c.data.augment = "crop_flip"
    c.data.crop_padding = 2
    c.optim.lr, c.optim.momentum, c.optim.nesterov = 0.1, 0.9, True
    c.optim.l2 = 2.5e-4  # = weight decay 5e-4 on the gradient (d/dw of 2.5e-4 * w^2)
    c.schedule.name = "cosine"
    base.drop(c.schedule, "decay")
    c.schedule.per_step = True
    c.num_epochs = 15
  if "resnet20_erase" in args:
    c.journal.run = "ResNet20 v1, Fashion-MNIST, SGD + cosine, crops + flips + random erasing, 30 epochs"
    c.reference.figure, c.reference.source = 0.963, "WRN-28-10 + Random Erasing"
    c.data.erase_prob = 0.5
    c.num_epochs = 30
  if "alexnet" in args:
    c.journal.recipe = "our choice: seed 003's network and optimizer, 5 epochs"
    c.model.name = "alexnet_tiny"
    c.journal.run = "AlexNet-tiny (seed 003), Fashion-MNIST, Adam, 5 epochs (shortened)"
    c.reference.figure, c.reference.source = 0.899, "AlexNet"
    c.optim.name, c.optim.lr = "adam", 1e-3
    base.drop(c.optim, "momentum", "nesterov")
    c.schedule.name = "constant"
    base.drop(c.schedule, "decay")
    c.num_epochs = 5
  if "smoke" in args:
    base.smoke(c, SHAPE, 10)
  return c
