"""Seed 003's transfer learning on Tiny-ImageNet (experiments 5 and 6): the base of the CIFAR-10
network (configs/seed003_cifar10.py) under a new head, frozen or partly trainable.

  python -m experiments.main --config=configs/seed003_cifar10.py              # first: the base
  python -m experiments.main --config=configs/seed003_transfer.py             # frozen base, 70k images: 0.1806
  python -m experiments.main --config=configs/seed003_transfer.py:moredata    # frozen base, 90k images: 0.1950
  python -m experiments.main --config=configs/seed003_transfer.py:vgg16       # ImageNet VGG16 base: 0.1260
  python -m experiments.main --config=configs/seed003_transfer.py:ft5         # last 5 layers trainable: 0.2071
  python -m experiments.main --config=configs/seed003_transfer.py:ft8         # 0.2341
  python -m experiments.main --config=configs/seed003_transfer.py:ft13        # 0.2659
  python -m experiments.main --config=configs/seed003_transfer.py:ftall       # every layer: 0.3288

Each starts from runs/seed003_cifar10's newest checkpoint (`model.init_from`): the CIFAR network's
layers up to its last dropout become `base`, the classifier is left behind.
Experiment 5: the base frozen, Flatten -> Dense 512 ReLU -> Dropout -> Dense 200 (`model.head=fc`),
"val_acc: 0.1806"; with the training data "increased by a scale of 28.5 %" (70,000 -> 90,000),
"val_acc: 0.1950"; with ImageNet VGG16 as the frozen base instead (`:vgg16`, its block5_pool of
the 32x32 images, 1x1x512), "val_acc: 0.1260". Experiment 6: Flatten -> Dense 1024 ReLU -> Dropout 0.5 -> Dense 200 with the
last N of the base's 24 Keras layers trainable: N = 5 starts at conv2d_6 (`from:conv6`, the seed's
own printout of trainable flags), 8 at conv2d_5 (`from:conv5`), 13 at conv2d_4 (`from:conv4`), all;
"val_acc" 0.2071 / 0.2341 / 0.2659 / 0.3288. The seed names no layers for 8 and 13: counted from
its layer table. Its step times imply the 90,000-image split for experiment 6.
Left out by the seed, chosen here: Adam with Keras' defaults (lr 1e-3), batch 64, 20 epochs, dropout
0.5 in experiment 5's head, pixels scaled to [0, 1], no augmentation.
A frozen base (`optim.trainable=head`) runs in inference mode while the head trains -- its dropout
0.2 / 0.3 / 0.4 off, BatchNorm on its moving statistics -- as the seed's did: experiment 5 fed the
head the base's outputs from Keras' `predict`. (A partly trainable base, experiment 6, trains in
training mode, its frozen BatchNorm layers on moving statistics as Keras 3 runs them.)
The journal's head table contradicts its own base: it lists Flatten 3072 and 1,675,976 head
parameters (3072 x 512 + 512 + 512 x 200 + 200), but the base it describes ends in 2 x 2 x 128 =
512 features; cnnzoo builds that base, so the head has 512 x 512 + 512 + 512 x 200 + 200 = 365,256
parameters (`python -m experiments.summarize --model=seed003_cifar_net --head=fc --head_hidden=512
--num_classes=200 --trainable=head`).
Data (32x32; the 70k / 30k split of configs/seed003_tiny.py, and the 90k / 10k one):
  python -m experiments.build_dataset --layout=tiny_imagenet_200 --src=tiny-imagenet-200 \\
      --out=data/tiny-imagenet-200-32px-70k-hdf5 --size=32 --resize=plain --val=150
  python -m experiments.build_dataset --layout=tiny_imagenet_200 --src=tiny-imagenet-200 \\
      --out=data/tiny-imagenet-200-32px-hdf5 --size=32 --resize=plain
"""

from configs import base, seed003_tiny

FINE_TUNING = {"ft5": ("from:conv6", 0.2071), "ft8": ("from:conv5", 0.2341), "ft13": ("from:conv4", 0.2659),
               "ftall": ("all", 0.3288)}
VARIANTS = ("moredata", "vgg16", *FINE_TUNING)  # arguments that select another journal run


def get_config(arg=None):
  args = base.parse_args(arg, ("smoke", *VARIANTS))
  c = seed003_tiny.get_config()
  c.journal.recipe = "our choice: the seed gives no training hyper-parameters"
  c.model.name = "seed003_cifar_net"
  c.model.head = "fc"
  c.model.head_hidden = 512
  c.model.head_dropout = 0.5
  c.model.init_from = "runs/seed003_cifar10"
  c.journal.run = ("seed 003 transfer: frozen CIFAR-10 base, 70k images (head on its 512 features; the "
                   "journal's table says 3072)")
  c.journal.figure = 0.1806
  c.optim.trainable = "head"
  c.num_epochs = 20
  if args & {"moredata", *FINE_TUNING}:  # the 90,000-image split
    c.data.dir = "data/tiny-imagenet-200-32px-hdf5"
    c.data.how_to_get = seed003_tiny.HOW_TO_GET_70K.replace("-70k", "").replace(" --val=150", "")
  if "vgg16" in args:
    c.journal.run, c.journal.figure = "seed 003 transfer: frozen ImageNet VGG16 base, 70k images", 0.1260
    c.model.name = "vgg16"
    c.model.init_from = ""
    c.model.keras_weights = "data/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
  if "moredata" in args:
    c.journal.run, c.journal.figure = "seed 003 transfer: frozen CIFAR-10 base, 90k images", 0.1950
  for name, (trainable, figure) in FINE_TUNING.items():
    if name in args:
      c.journal.run = ("seed 003 fine-tuning: every layer trainable" if name == "ftall" else
                       f"seed 003 fine-tuning: the last {name[2:]} layers of the CIFAR-10 base trainable")
      c.journal.figure = figure
      c.model.head_hidden = 1024
      c.optim.trainable = trainable
  if "smoke" in args:
    base.smoke(c, (32, 32, 3), 200)
    c.model.init_from = ""  # the base's random initialization (tests/test_journal.py covers init_from)
    c.model.keras_weights = ""
  return c
