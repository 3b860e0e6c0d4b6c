"""ImageNet ResNet50's pooled features of Dogs-vs-Cats -> logistic regression (seed 000, 2020-11-23):
no training, one command.

  python -m experiments.main --config=configs/resnet50_dogs_vs_cats_features.py

The journal: "a 99% validation accuracy model by using ResNet trained on imagenet and concatenate it
with a Logistic regression"; report: accuracy 0.99 on 6,250 test images.
Left out by the journal: which ResNet (ResNet50, as the book code it follows; the 2,048 features
after global average pooling), Keras' preprocess_input (caffe), the C grid (the journal names none: the book's 0.1 ... 10000,
as for Flowers-17).
The journal tested on 25 % of the 25,000 images; the builder's default split keeps 2,500 for
validation and 2,500 for test (`--val=0 --test=6250` reproduces the journal's share). Images are
stored at 256 (the AlexNet run's build) and resized to 224 for ResNet50.
Needs: the ImageNet weights file and Kaggle's train.zip:
  wget https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 -P data/
  python -m experiments.build_dataset --layout=dogs_vs_cats --src=train --out=data/dogs-vs-cats-hdf5 --size=256
"""

from configs import base, vgg16_flowers17_features


def get_config(arg=None):
  c = base.get_config()
  c.model.name = "resnet50_keras"
  c.journal.run = "ResNet50 pooled features, Dogs-vs-Cats, logistic regression"
  c.journal.seed = "000 (2020-11-23)"
  c.journal.recipe = "journal + book"
  c.journal.metric = "test_accuracy"
  c.journal.figure = 0.99
  c.model.keras_weights = "data/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
  c.features.use = True
  c.features.layer = "features"  # global average pooling: 2,048 per image
  c.data.name = "hdf5"
  c.data.dir = "data/dogs-vs-cats-hdf5"
  c.data.how_to_get = ("download train.zip of Kaggle's Dogs vs. Cats, unzip it and run `python -m "
                       "experiments.build_dataset --layout=dogs_vs_cats --src=train --out=data/dogs-vs-cats-hdf5 "
                       "--size=256`; the weights: resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 from the "
                       "keras-applications release into data/")
  c.num_epochs = 0  # nothing is trained
  if "smoke" in base.parse_args(arg):
    vgg16_flowers17_features.smoke(c)
    c.model.kwargs.stage_sizes = (1, 1, 1, 1)  # one block per stage: seconds to compile
  return c
