"""The seed's ResNet on Tiny-ImageNet-200 (seed 2020-12-12): stages (3, 4, 6), filters (64, 128,
256, 512), 5x5 stem + max pool, pre-activation bottlenecks.

  python -m experiments.main --config=configs/resnet_tiny.py           # run 4: poly 1 over 75 epochs
  python -m experiments.main --config=configs/resnet_tiny.py:stops     # run 3: 1e-1, 1e-2 at 25, 1e-3 at 35
  python -m experiments.main --config=configs/resnet_tiny.py:past75    # run 4 continued past epoch 75

SGD momentum 0.9, lr 1e-1 decaying linearly (poly, power 1) over 75 epochs, L2 5e-4, batch 64,
mean subtraction (the dataset's RGB means). Seed result: validation accuracy 0.5547 at epoch 75.
Augmentation (the journal is silent): the book's Tiny-ImageNet recipe the journal follows, as
deepergooglenet_tiny.py on the same data -- rotation 18, zoom 0.15, shift 0.2, shear 0.15,
horizontal flips.
Run 3 (`:stops`): "we are forced to stop at epoch 25 (lr=1e-2) and 35 (lr=1e-3) respectively, adjust
the learning rate and continue. The first 47 epoches gives the following" (a plot, no figure):
1e-1 to epoch 25, 1e-2 to 35, 1e-3 to 47, one command.
`:past75`: "After epoch 75 I still proceed with a learning rate decay, the validation loss starts
to increase and we cannot proceed any further": run 4, then from epoch 75 the journal's restart
(`_new_start_at_epoch = 75, _new_lr = 1e-3`, its poly_decay of power 1) as a second stage, 1e-3
decaying linearly to 0 over 25 more epochs (the journal gives neither the length nor a figure;
Keras would have fed its poly_decay the epochs 75.. of a 75-epoch horizon, a rate of 0 and below,
so the decay here is counted from the stage's start).
Data: HDF5 files from the seed's split (train minus 50/class, those as val, official val as test)
in data/tiny-imagenet-200-hdf5/: download tiny-imagenet-200.zip (CS231n), unzip it and run
  python -m experiments.build_dataset --layout=tiny_imagenet_200 --src=tiny-imagenet-200 \
      --out=data/tiny-imagenet-200-hdf5
"""

from configs import base

VARIANTS = ("stops", "past75")  # arguments that select another journal run


def get_config(arg=None):
  args = base.parse_args(arg, ("smoke", *VARIANTS))
  c = base.get_config()
  c.model.name = "resnet_tiny"
  c.journal.run = "the seed ResNet, Tiny-ImageNet, poly 1 over 75 epochs (run 4)"
  c.journal.seed = "2020-12-12"
  c.journal.recipe = "journal + book"
  c.journal.metric = "val_accuracy"
  c.journal.figure = 0.5547
  c.optim.semantics = "keras"  # Keras 3's update arithmetic, as the journal trained
  c.model.kernel_init = "glorot_uniform"  # Keras' default for Conv2D and Dense (biases zero)
  c.data.name = "hdf5"
  c.data.dir = "data/tiny-imagenet-200-hdf5"
  c.data.how_to_get = ("download tiny-imagenet-200.zip from the CS231n site, unzip it and run "
                       "`python -m experiments.build_dataset --layout=tiny_imagenet_200 "
                       "--src=tiny-imagenet-200 --out=data/tiny-imagenet-200-hdf5`")
  c.data.batch_size = 64
  c.data.normalize = "mean"
  c.data.augment = "affine_flip"  # the book's ImageDataGenerator for Tiny-ImageNet
  c.data.rotation, c.data.zoom, c.data.shift, c.data.shear = 18.0, 0.15, 0.2, 0.15
  c.optim.name = "sgd"
  c.optim.lr = 1e-1
  c.optim.momentum = 0.9
  c.optim.l2 = 5e-4
  c.schedule.name = "poly"
  c.schedule.power = 1.0
  c.num_epochs = 75
  c.checkpoint.keep_every = 5
  if "stops" in args:
    c.journal.run, c.journal.figure = "the seed ResNet, Tiny-ImageNet, stopped at 25 and 35 (run 3)", 0.0
    c.schedule.name = "constant"
    base.drop(c.schedule, "power")  # poly's
    c.num_epochs = 47
    c.stages = ((25, "optim.lr=1e-1"), (35, "optim.lr=1e-2"), (47, "optim.lr=1e-3"))
  if "past75" in args:
    c.journal.recipe = "journal + our choice: 25 epochs after epoch 75"
    c.journal.run, c.journal.figure = "the seed ResNet, Tiny-ImageNet, run 4 continued past epoch 75", 0.0
    c.num_epochs = 100
    c.schedule.decay_epochs = 75  # run 4's line: 1e-1 to 0 at epoch 75
    c.stages = ((75, "optim.lr=1e-1"), (100, "optim.lr=1e-3,schedule.from_stage_start=True,schedule.decay_epochs=0"))
  if "smoke" in args:
    base.smoke(c, (64, 64, 3), 200)
    c.data.synthetic_sizes = (16, 8, 8)
    c.model.kwargs.stage_sizes = (1, 1, 1)  # one block per stage (compile time; see resnet_cifar10.py)
  return c
