"""Seed 003's experiment 4: ImageNet InceptionV3, frozen, under a new head on Tiny-ImageNet at 150x150.

  python -m experiments.main --config=configs/inceptionv3_tiny_frozen.py

InceptionV3(weights="imagenet", include_top=False) -> global average pooling -> Dense 1024 ReLU ->
Dense 200 softmax, every base layer frozen, Adam lr 1e-4, 150x150 images, the seed's 70,000 / 30,000
split. Seed result: "Test accuracy: 0.004233", chance level ("our training goes well but the
validation is not learning at all"); the seed's test split is our val split.
Keras 2 (the seed's) ran the frozen base's BatchNorm layers with batch statistics in training, a
likely cause of that figure; cnnzoo follows Keras 3 (moving statistics), so expect a higher one.
Left out by the seed, chosen here: 10 epochs, batch 64, Keras' preprocess for InceptionV3 is not
used (the seed feeds x / 255; so do we), no augmentation.
Needs: the ImageNet weights file and the 150x150 build (6.8 GB):
  wget https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 -P data/
  python -m experiments.build_dataset --layout=tiny_imagenet_200 --src=tiny-imagenet-200 \\
      --out=data/tiny-imagenet-200-150px-70k-hdf5 --size=150 --resize=plain --val=150
"""

from configs import base


def get_config(arg=None):
  c = base.get_config()
  c.model.name = "inception_v3"
  c.model.head = "gap"
  c.model.head_hidden = 1024
  c.model.keras_weights = "data/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
  c.journal.run = "seed 003 InceptionV3 (ImageNet), frozen base, Tiny-ImageNet 150x150"
  c.journal.seed = "003"
  c.journal.recipe = "journal (Adam 1e-4) + our choice: epochs and batch"
  c.journal.metric = "val_accuracy"
  c.journal.figure = 0.0042
  c.optim.semantics = "keras"
  c.model.kernel_init = "glorot_uniform"  # the new head's Dense layers (Keras' default)
  c.data.name = "hdf5"
  c.data.dir = "data/tiny-imagenet-200-150px-70k-hdf5"
  c.data.how_to_get = ("download tiny-imagenet-200.zip (CS231n), unzip it and run `python -m experiments.build_dataset "
                       "--layout=tiny_imagenet_200 --src=tiny-imagenet-200 --out=data/tiny-imagenet-200-150px-70k-hdf5 "
                       "--size=150 --resize=plain --val=150`; the weights: inception_v3_weights_tf_dim_ordering_tf_"
                       "kernels_notop.h5 from the keras-applications release into data/")
  c.data.batch_size = 64
  c.optim.name = "adam"
  c.optim.lr = 1e-4
  c.optim.trainable = "head"
  c.num_epochs = 10
  if "smoke" in base.parse_args(arg):
    base.smoke(c, (75, 75, 3), 200)  # InceptionV3's smallest input
    c.model.keras_weights = ""  # random weights (tests/test_transfer.py loads Keras files)
    c.model.kwargs.grids = 1  # the 35x35 section only: seconds to compile (test_keras_equivalence has them all)
  return c
