"""Defaults shared by every experiment config. Experiment files import this and override fields.

Pure data: nothing here imports cnnzoo.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_epochs = 10
  # Train steps per compiled call on a device-resident training split, as one loop: 0 = auto (the
  # steps between progress-bar updates; 1 when batches come from the host or over several CPU
  # devices), 1 = a call per step. On one CPU device every setting trains bitwise the same.
  c.steps_per_dispatch = 0

  # What this config reproduces: listed by `python -m experiments.main --list_configs`, compared
  # with ours by RESULTS.md. figure 0: the journal reports none.
  c.journal = ml_collections.ConfigDict()
  c.journal.run = ""  # the journal's run, in a few words
  c.journal.seed = ""  # the seed note that reports it
  c.journal.recipe = ""  # where its hyper-parameters come from: journal | journal + book | our choice: why
  c.journal.metric = "val_accuracy"  # val_accuracy | test_accuracy: what the figure is
  c.journal.figure = 0.0
  # A published figure on the same dataset this config stands beside (configs/fashion_mnist.py):
  # RESULTS.md's "Reproduced on real data here" section lists each run of it, with mean +- std over seeds.
  c.reference = ml_collections.ConfigDict()
  c.reference.figure = 0.0  # test accuracy
  c.reference.source = ""  # who published it, with what

  c.model = ml_collections.ConfigDict()
  c.model.name = ""
  c.model.num_classes = 0  # 0: take it from the dataset
  c.model.input_shape = ()  # (): the registry's default, or the dataset's images
  c.model.dtype = "float32"  # compute dtype; "bfloat16" on GPUs (parameters stay float32)
  c.model.kwargs = ml_collections.ConfigDict()  # overrides of the model's fields
  c.model.kernel_init = "flax"  # flax | glorot_uniform (Keras' default) | he_normal: conv / dense kernels
  # Network surgery (cnnzoo/models/transfer.py): the model without its classifier plus a new head
  c.model.head = ""  # "" (the model's own classifier) | fc (the seed's FCHeadNet) | gap (global pool + Dense)
  c.model.head_hidden = -1  # hidden Dense units of the head (-1: fc 256, gap none)
  c.model.head_dropout = -1.0  # dropout before the head's output (-1: fc 0.5, gap none)
  c.model.keras_weights = ""  # a Keras .h5 loaded at the start (the base only when model.head is set)
  c.model.init_from = ""  # a fresh run starts from this run's weights, "DIR[:EPOCH]" (as --init_from does)

  c.data = ml_collections.ConfigDict()
  c.data.name = "digits"  # digits | synthetic | hdf5 | a tfds name (cifar10, mnist, ...)
  c.data.dir = ""  # hdf5: the builder's output folder; tfds: data_dir ("" = tfds' default)
  c.data.how_to_get = ""  # shown when the dataset is missing
  c.data.max_in_memory_gb = 8.0  # hdf5: splits up to this size are read into memory once
  c.data.on_device = "auto"  # auto | yes | no: keep a split's uint8 images on every device
  c.data.max_on_device_gb = 2.0  # auto: the largest split kept on the device
  c.data.prefetch = 2  # host batches prepared ahead by a background thread (0 = none)
  c.data.image_size = 32  # digits: resize the 8x8 images to this size
  c.data.resize = 0  # tfds: resize images to this square size (aspect-aware; cats_vs_dogs needs it)
  c.data.val_fraction = 0.1  # digits / tfds without a validation split
  c.data.test_fraction = 0.2  # digits / tfds without a test split (cats_vs_dogs)
  c.data.split_seed = 0
  c.data.classes = ()  # a subset of the classes (names or indices), relabelled 0..k-1 in this order
  c.data.synthetic_sizes = (64, 32, 32)  # synthetic: train / val / test images
  c.data.batch_size = 64  # global batch, split over all devices
  c.data.eval_batch_size = 0  # 0: same as batch_size
  c.data.normalize = "scale"  # scale (x/255) | mean (x - channel mean) | standardize
  c.data.std = ()  # standardize: per-channel std in [0, 1] units (() = the dataset's, from mean.json)
  c.data.crop_size = 0  # >0: the model sees size x size windows: random in training (the seed's
  #                       PatchPreprocessor), data.eval_crop / data.test_crop views in evaluation
  c.data.eval_crop = "center"  # validation views: center | resize (whole image) | ten (10-crop average)
  c.data.test_crop = ""  # test views ("" = eval_crop); the seed's AlexNet reports "ten"
  c.data.augment = "none"  # none | crop | flip | crop_flip | affine | affine_flip
  c.data.crop_padding = 4  # crop: zero padding before the random crop
  c.data.rotation = 0.0  # affine (Keras ImageDataGenerator ranges): degrees
  c.data.shift = 0.0  # affine: fraction of height / width
  c.data.zoom = 0.0  # affine: scale in [1 - zoom, 1 + zoom]
  c.data.shear = 0.0  # affine: degrees
  c.data.erase_prob = 0.0  # random erasing (seed 001's eraser) after the augmentation above
  c.data.erase_area = (0.02, 0.4)  # fraction of the image
  c.data.erase_ratio = 0.3  # aspect ratio in [r, 1 / r]

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "sgd"  # sgd | adam | rmsprop
  c.optim.semantics = "optax"  # optax | keras: Keras 3's update arithmetic (cnnzoo/training/keras_optim.py)
  c.optim.lr = 0.01
  c.optim.momentum = 0.0
  c.optim.nesterov = False
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-7  # Keras' default epsilon for Adam and RMSprop
  c.optim.rho = 0.9  # RMSprop
  c.optim.l2 = 0.0  # Keras kernel_regularizer=l2(.) on every kernel, added to the loss
  c.optim.l2_conv_only = False  # ... on the convolution kernels alone (the Dense layers unregularized)
  c.optim.weight_decay = 0.0  # decoupled weight decay on kernels
  c.optim.label_smoothing = 0.0
  c.optim.aux_loss_weight = 0.3  # auxiliary classifiers (GoogLeNet's aux_logits=True), Szegedy et al.
  c.optim.clip_grad_norm = 0.0
  c.optim.trainable = "all"  # all | head | bn | from:LAYER | re:REGEX (cnnzoo/training/trainable.py)

  c.schedule = ml_collections.ConfigDict()
  c.schedule.name = "constant"  # constant | poly | linear | step | piecewise | cosine | keras_time
  c.schedule.per_step = False  # False: the rate changes at epoch boundaries, as Keras callbacks do
  c.schedule.power = 1.0  # poly
  c.schedule.end_lr = 0.0  # poly, cosine
  c.schedule.decay_epochs = 0  # poly, cosine: epochs to reach end_lr (0 = num_epochs)
  c.schedule.step_every = 10  # step: epochs between decays
  c.schedule.step_factor = 0.5  # step: multiplier per decay
  c.schedule.step_offset = 0  # step: added to the 0-based epoch (the book's step_decay: 1, see minivggnet_cifar10)
  c.schedule.boundaries = (0,)  # piecewise: epochs where the rate is multiplied ...
  c.schedule.scales = (1.0,)  # ... by these factors
  c.schedule.decay = 0.0  # keras_time: lr / (1 + decay * iterations)
  c.schedule.warmup_epochs = 0
  c.schedule.warmup_init_lr = 0.0
  c.schedule.from_stage_start = False  # with stages: the schedule's epoch 0 is the stage's first epoch

  # Multi-stage recipes (cnnzoo/training/stages.py): ((END_EPOCH, "optim.lr=1e-4,schedule.name=..."), ...)
  c.stages = ()

  # Keras' ReduceLROnPlateau and EarlyStopping (cnnzoo/training/callbacks.py), off unless `use`
  c.plateau = ml_collections.ConfigDict()
  c.plateau.use = False
  c.plateau.monitor = "val_loss"
  c.plateau.factor = 0.1
  c.plateau.patience = 10
  c.plateau.mode = "auto"
  c.plateau.min_delta = 1e-4
  c.plateau.cooldown = 0
  c.plateau.min_lr = 0.0
  c.early_stop = ml_collections.ConfigDict()
  c.early_stop.use = False
  c.early_stop.monitor = "val_loss"
  c.early_stop.patience = 0
  c.early_stop.mode = "auto"
  c.early_stop.min_delta = 0.0
  c.early_stop.start_from_epoch = 0
  c.early_stop.restore_best = False  # test with the best epoch's weights (its checkpoint must be kept)

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.keep = 3  # the last K epochs ...
  c.checkpoint.best_metric = "val_loss"  # ... plus the best by this metric ("" = none)
  c.checkpoint.best_mode = "min"
  c.checkpoint.keep_every = 0  # also keep every N-th epoch (for --resume_epoch later)
  c.checkpoint.async_save = True

  # Feature extraction + logistic regression instead of training (cnnzoo/transfer/pipeline.py):
  # the journal's VGG16 / ResNet50 features runs, from model.keras_weights
  c.features = ml_collections.ConfigDict()
  c.features.use = False
  c.features.layer = "features"  # the output taken (features = pooled; block5_pool, ...)
  c.features.preprocess = ""  # Keras preprocess_input mode ("" = the model family's: caffe, tf, torch)
  c.features.batch_size = 64
  c.features.C = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)  # the seed's grid search (3-fold)
  c.features.max_iter = 150
  c.features.jobs = 1  # parallel fits (-1: every core)
  c.features.random_weights = False  # smoke runs only: the base's random initialization, no weight file

  c.ensemble = ml_collections.ConfigDict()
  c.ensemble.members = 0  # >0: train this many runs (seeds seed, seed+1, ...) in WORKDIR/member_K,
  #                         then evaluate their averaged probabilities (WORKDIR/ensemble_eval_test)

  c.monitor = ml_collections.ConfigDict()
  c.monitor.progress = True
  c.monitor.log_every_steps = 20
  c.monitor.plot = True
  # history.png: at most one redraw per this many seconds (and at the end); a redraw costs ~0.5 s of
  # CPU beside the training, ~1 s of the README's 20-second first command at 5 s
  c.monitor.plot_min_seconds = 30.0
  c.monitor.tensorboard = True
  return c


def parse_args(arg, allowed=("smoke",)) -> set:
  """The comma-separated words of `configs/NAME.py:ARG`; a word the config does not know is an error."""
  words = {w for w in (arg or "").split(",") if w}
  unknown = sorted(words - set(allowed))
  if unknown:
    raise ValueError(f"unknown config argument {unknown[0]!r}; this config accepts {', '.join(allowed)}")
  return words


def smoke(c: ml_collections.ConfigDict, image_shape, num_classes: int) -> ml_collections.ConfigDict:
  """Shrinks `c` to a few steps on synthetic images of the model's shape (the `:smoke` argument)."""
  c.data.name = "synthetic"
  c.model.input_shape = tuple(image_shape)
  c.model.num_classes = num_classes
  c.data.synthetic_sizes = (8, 4, 4)  # 2 steps an epoch, one batch each to evaluate: the tests run
  c.data.batch_size = 4  # every config's smoke run, and the big models' steps take seconds at batch 8
  c.data.eval_batch_size = 4
  c.num_epochs = 2
  if len(c.stages) > 1:  # a multi-stage recipe: one epoch per stage, each with its overrides
    c.stages = tuple((i + 1, overrides) for i, (_, overrides) in enumerate(c.stages))
    c.num_epochs = len(c.stages)
  elif c.stages:
    c.stages = ((2, c.stages[0][1]),)
  c.monitor.progress = False
  return c
