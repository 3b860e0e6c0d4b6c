"""VGG16 network surgery on Flowers-17 (seed 000, 2020-11-21-network-surgery): the ImageNet VGG16
base without its top, the seed's FCHeadNet on it, a head warm-up, then layers 15+ unfrozen.

  python -m experiments.main --config=configs/vgg16_flowers17_finetune.py          # both phases: 0.94
  python -m experiments.main --config=configs/vgg16_flowers17_finetune.py:warmup   # phase 1 alone: 0.90

Phase 1 (epochs 1-25): the base frozen (optim.trainable=head), RMSprop lr 1e-3.
Phase 2 (epochs 26-125): block5 (`summarize --layers` index 15 = block5_conv1, as Keras numbers
VGG16's layers) and the head train, SGD lr 1e-3: a fresh optimizer, as Keras' recompile makes one.
Seed results (test split, 340 images): 0.90 after the warm-up, 0.94 after fine-tuning. (The full
run keeps its epoch-25 checkpoint too: `experiments.evaluate --checkpoint=25` tests the warm-up.)
Left out by the journal, taken from the book code it follows: 224x224 aspect-aware images scaled to
[0, 1], batch 32, augmentation rotation 30, shift 0.1, shear 0.2, zoom 0.2, horizontal flips; the
test split doubles as validation. A kill -9 in either phase resumes in that phase, bitwise.
Weights: vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 from Keras' releases (keras.applications'
VGG16(weights="imagenet", include_top=False) downloads it to ~/.keras/models/) into data/.
Data: 17flowers.tgz from the Oxford VGG site, unpacked into 17flowers/, then
  python -m experiments.build_dataset --layout=flowers17 --src=17flowers --out=data/flowers17-224-hdf5 --size=224
"""

from configs import base, minivggnet_flowers17

VARIANTS = ("warmup",)  # arguments that select another journal run


def get_config(arg=None):
  args = base.parse_args(arg, ("smoke", *VARIANTS))
  c = base.get_config()
  c.journal.run = "VGG16 surgery on Flowers-17: FCHeadNet warm-up, then layers 15+"
  c.journal.seed = "000 (2020-11-21)"
  c.journal.recipe = "journal + book"
  c.journal.metric = "test_accuracy"
  c.journal.figure = 0.94
  c.optim.semantics = "keras"  # Keras 3's update arithmetic, as the journal trained
  c.model.kernel_init = "glorot_uniform"  # the new head as Keras draws it (the base comes from the file)
  c.model.name = "vgg16"
  c.model.head = "fc"  # flatten block5_pool -> Dense 256 -> ReLU -> Dropout 0.5 -> Dense 17
  c.model.keras_weights = "data/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
  c.data = minivggnet_flowers17.get_config().data
  c.data.dir = "data/flowers17-224-hdf5"
  c.data.how_to_get = c.data.how_to_get.replace("flowers17-hdf5", "flowers17-224-hdf5").replace("--size=64",
                                                                                                "--size=224")
  c.data.batch_size = 32
  c.optim.trainable = "head"
  c.num_epochs = 125
  c.stages = ((25, "optim.name=rmsprop,optim.lr=1e-3,optim.trainable=head"),
              (125, "optim.name=sgd,optim.lr=1e-3,optim.trainable=from:15"))
  c.checkpoint.keep_every = 25  # the end of the warm-up stays on disk
  if "warmup" in args:
    c.journal.run, c.journal.figure = "VGG16 surgery on Flowers-17: the FCHeadNet warm-up alone", 0.90
    c.num_epochs = 25
    c.stages = c.stages[:1]
  if "smoke" in args:
    base.smoke(c, (32, 32, 3), 17)  # VGG16's base takes 32x32 (a 1x1x512 block5_pool)
    c.model.keras_weights = ""  # random weights: tests/test_transfer.py loads a Keras file
    c.stages = ((1, "optim.name=rmsprop,optim.lr=1e-3,optim.trainable=head"),
                (2, "optim.name=sgd,optim.lr=1e-3,optim.trainable=from:15"))
    if "warmup" in args:
      c.stages = ((2, c.stages[0][1]),)
  return c
