"""ImageNet VGG16's block5_pool features of Flowers-17 -> logistic regression (seed 000,
2020-11-19-transfer-learning): no training, one command.

  python -m experiments.main --config=configs/vgg16_flowers17_features.py

The journal: VGG16 without its top, the features "flattened from the feature map of the last POOL
layer" (7 x 7 x 512 = 25,088 per image), then a logistic regression. Seed result: accuracy 0.89 on
the 340 test images ("up to 90%" in the text).
Left out by the journal, taken from the book code it follows: 224 x 224 inputs, Keras'
preprocess_input (caffe), the grid search C in {0.1 ... 10000} with 3-fold cross-validation, a
75 % / 25 % split (here the builder's stratified one; the seed's per-class counts show a random one).
Needs: the ImageNet weights file and Flowers-17 at 224 x 224:
  wget https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 -P data/
  python -m experiments.build_dataset --layout=flowers17 --src=17flowers --out=data/flowers17-224-hdf5 --size=224
"""

from configs import base


def get_config(arg=None):
  c = base.get_config()
  c.model.name = "vgg16"
  c.journal.run = "VGG16 block5_pool features, Flowers-17, logistic regression"
  c.journal.seed = "000 (2020-11-19)"
  c.journal.recipe = "journal + book"
  c.journal.metric = "test_accuracy"
  c.journal.figure = 0.89
  c.model.keras_weights = "data/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
  c.features.use = True
  c.features.layer = "block5_pool"
  c.data.name = "hdf5"
  c.data.dir = "data/flowers17-224-hdf5"
  c.data.how_to_get = ("download 17flowers.tgz from the Oxford VGG site, unpack it into 17flowers/ and run "
                       "`python -m experiments.build_dataset --layout=flowers17 --src=17flowers "
                       "--out=data/flowers17-224-hdf5 --size=224`; the weights: vgg16_weights_tf_dim_ordering_"
                       "tf_kernels_notop.h5 from the keras-applications release into data/")
  c.num_epochs = 0  # nothing is trained
  if "smoke" in base.parse_args(arg):
    smoke(c)
  return c


def smoke(c):
  """Features of a few synthetic 32 x 32 images from the randomly initialized base, two classes."""
  base.smoke(c, (32, 32, 3), 2)
  c.num_epochs = 0
  c.model.keras_weights = "random"
  c.features.C = (1.0, 10.0)
  c.features.batch_size = 8
  return c
