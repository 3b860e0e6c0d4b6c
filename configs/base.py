"""Defaults shared by every experiment config. Experiment files import this and override fields.

Pure data: nothing here imports cnnzoo.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Every field a config may set, with its default; each section is built by the function below."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_epochs = 10
  # Train steps per compiled call on a device-resident training split, as one loop: 0 = auto (the
  # steps between progress-bar updates; 1 when batches come from the host or over several CPU
  # devices), 1 = a call per step. On one CPU device every setting trains bitwise the same.
  c.steps_per_dispatch = 0
  c.journal = _journal()
  c.reference = _reference()
  c.model = _model()
  c.data = _data()
  c.optim = _optim()
  c.schedule = _schedule()
  # Multi-stage recipes (cnnzoo/training/stages.py): ((END_EPOCH, "optim.lr=1e-4,schedule.name=..."), ...)
  c.stages = ()
  c.plateau = _plateau()
  c.early_stop = _early_stop()
  c.checkpoint = _checkpoint()
  c.features = _features()
  c.ensemble = _ensemble()
  c.monitor = _monitor()
  return c


def _journal() -> ml_collections.ConfigDict:
  # What this config reproduces: listed by `python -m experiments.main --list_configs`, compared
  # with ours by RESULTS.md. figure 0: the journal reports none.
  d = ml_collections.ConfigDict()
  d.run = ""  # the journal's run, in a few words
  d.seed = ""  # the seed note that reports it
  d.recipe = ""  # where its hyper-parameters come from: journal | journal + book | our choice: why
  d.metric = "val_accuracy"  # val_accuracy | test_accuracy: what the figure is
  d.figure = 0.0
  return d


def _reference() -> ml_collections.ConfigDict:
  # A published figure on the same dataset this config stands beside (configs/fashion_mnist.py):
  # RESULTS.md's "Reproduced on real data here" section lists each run of it, with mean +- std over seeds.
  d = ml_collections.ConfigDict()
  d.figure = 0.0  # test accuracy
  d.source = ""  # who published it, with what
  return d


def _model() -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict()
  d.name = ""
  d.num_classes = 0  # 0: take it from the dataset
  d.input_shape = ()  # (): the registry's default, or the dataset's images
  d.dtype = "float32"  # compute dtype; "bfloat16" on GPUs (parameters stay float32)
  d.kwargs = ml_collections.ConfigDict()  # overrides of the model's fields
  d.kernel_init = "flax"  # flax | glorot_uniform (Keras' default) | he_normal: conv / dense kernels
  # Network surgery (cnnzoo/models/heads.py): the model without its classifier plus a new head
  d.head = ""  # "" (the model's own classifier) | fc (the seed's FCHeadNet) | gap (global pool + Dense)
  d.head_hidden = -1  # hidden Dense units of the head (-1: fc 256, gap none)
  d.head_dropout = -1.0  # dropout before the head's output (-1: fc 0.5, gap none)
  d.keras_weights = ""  # a Keras .h5 loaded at the start (the base only when model.head is set); with
  #                       features.use also `random`: the base's random initialization (a baseline)
  d.init_from = ""  # a fresh run starts from this run's weights, "DIR[:EPOCH]" (as --init_from does)
  return d


def _data() -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict()
  d.name = "digits"  # digits | synthetic | hdf5 | a tfds name (cifar10, mnist, ...)
  d.dir = ""  # hdf5: the builder's output folder; tfds: data_dir ("" = tfds' default)
  d.how_to_get = ""  # shown when the dataset is missing
  d.max_in_memory_gb = 8.0  # hdf5: splits up to this size are read into memory once
  d.on_device = "auto"  # auto | yes | no: keep a split's uint8 images on every device
  d.max_on_device_gb = 2.0  # auto: the largest split kept on the device
  d.prefetch = 2  # host batches prepared ahead by a background thread (0 = none)
  d.image_size = 32  # digits: resize the 8x8 images to this size
  d.resize = 0  # tfds: resize images to this square size (aspect-aware; cats_vs_dogs needs it)
  d.val_fraction = 0.1  # digits / tfds without a validation split
  d.test_fraction = 0.2  # digits / tfds without a test split (cats_vs_dogs)
  d.split_seed = 0
  d.classes = ()  # a subset of the classes (names or indices), relabelled 0..k-1 in this order
  d.synthetic_sizes = (64, 32, 32)  # synthetic: train / val / test images
  d.batch_size = 64  # global batch, split over all devices
  d.eval_batch_size = 0  # 0: same as batch_size
  d.normalize = "scale"  # scale (x/255) | mean (x - channel mean) | standardize
  d.std = ()  # standardize: per-channel std in [0, 1] units (() = the dataset's, from mean.json)
  d.crop_size = 0  # >0: the model sees size x size windows: random in training (the seed's
  #                       PatchPreprocessor), data.eval_crop / data.test_crop views in evaluation
  d.eval_crop = "center"  # validation views: center | resize (whole image) | ten (10-crop average)
  d.test_crop = ""  # test views ("" = eval_crop); the seed's AlexNet reports "ten"
  d.augment = "none"  # none | crop | flip | crop_flip | affine | affine_flip
  d.crop_padding = 4  # crop: zero padding before the random crop
  d.rotation = 0.0  # affine (Keras ImageDataGenerator ranges): degrees
  d.shift = 0.0  # affine: fraction of height / width
  d.zoom = 0.0  # affine: scale in [1 - zoom, 1 + zoom]
  d.shear = 0.0  # affine: degrees
  d.erase_prob = 0.0  # random erasing (seed 001's eraser) after the augmentation above
  d.erase_area = (0.02, 0.4)  # fraction of the image
  d.erase_ratio = 0.3  # aspect ratio in [r, 1 / r]
  return d


def _optim() -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict()
  d.name = "sgd"  # sgd | adam | rmsprop
  d.semantics = "optax"  # optax | keras: Keras 3's update arithmetic (cnnzoo/training/keras_optim.py)
  d.lr = 0.01
  d.momentum = 0.0
  d.nesterov = False
  d.b1 = 0.9
  d.b2 = 0.999
  d.eps = 1e-7  # Keras' default epsilon for Adam and RMSprop
  d.rho = 0.9  # RMSprop
  d.l2 = 0.0  # Keras kernel_regularizer=l2(.) on every kernel, added to the loss
  d.l2_conv_only = False  # ... on the convolution kernels alone (the Dense layers unregularized)
  d.weight_decay = 0.0  # decoupled weight decay on kernels
  d.label_smoothing = 0.0
  d.aux_loss_weight = 0.3  # auxiliary classifiers (GoogLeNet's aux_logits=True), Szegedy et al.
  d.clip_grad_norm = 0.0
  d.trainable = "all"  # all | head | bn | from:LAYER | re:REGEX (cnnzoo/training/trainable.py)
  return d


def _schedule() -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict()
  d.name = "constant"  # constant | poly | linear | step | piecewise | cosine | keras_time
  d.per_step = False  # False: the rate changes at epoch boundaries, as Keras callbacks do
  d.power = 1.0  # poly
  d.end_lr = 0.0  # poly, cosine
  d.decay_epochs = 0  # poly, cosine: epochs to reach end_lr (0 = num_epochs)
  d.step_every = 10  # step: epochs between decays
  d.step_factor = 0.5  # step: multiplier per decay
  d.step_offset = 0  # step: added to the 0-based epoch (the book's step_decay: 1, see minivggnet_cifar10)
  d.boundaries = (0,)  # piecewise: epochs where the rate is multiplied ...
  d.scales = (1.0,)  # ... by these factors
  d.decay = 0.0  # keras_time: lr / (1 + decay * iterations)
  d.warmup_epochs = 0
  d.warmup_init_lr = 0.0
  d.from_stage_start = False  # with stages: the schedule's epoch 0 is the stage's first epoch
  return d


def _plateau() -> ml_collections.ConfigDict:
  # Keras' ReduceLROnPlateau and EarlyStopping (cnnzoo/training/callbacks.py), off unless `use`
  d = ml_collections.ConfigDict()
  d.use = False
  d.monitor = "val_loss"
  d.factor = 0.1
  d.patience = 10
  d.mode = "auto"
  d.min_delta = 1e-4
  d.cooldown = 0
  d.min_lr = 0.0
  return d


def _early_stop() -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict()
  d.use = False
  d.monitor = "val_loss"
  d.patience = 0
  d.mode = "auto"
  d.min_delta = 0.0
  d.start_from_epoch = 0
  d.restore_best = False  # test with the best epoch's weights (its checkpoint must be kept)
  return d


def _checkpoint() -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict()
  d.keep = 3  # the last K epochs ...
  d.best_metric = "val_loss"  # ... plus the best by this metric ("" = none)
  d.best_mode = "min"
  d.keep_every = 0  # also keep every N-th epoch (for --resume_epoch later)
  d.async_save = True
  return d


def _features() -> ml_collections.ConfigDict:
  # Feature extraction + logistic regression instead of training (cnnzoo/transfer/pipeline.py):
  # the journal's VGG16 / ResNet50 features runs, from model.keras_weights
  d = ml_collections.ConfigDict()
  d.use = False
  d.layer = "features"  # the output taken (features = pooled; block5_pool, ...)
  d.preprocess = ""  # Keras preprocess_input mode ("" = the model family's: caffe, tf, torch)
  d.batch_size = 64
  d.C = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)  # the seed's grid search (3-fold)
  d.max_iter = 150
  d.jobs = 1  # parallel fits (-1: every core)
  return d


def _ensemble() -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict()
  d.members = 0  # >0: train this many runs (seeds seed, seed+1, ...) in WORKDIR/member_K,
  #                         then evaluate their averaged probabilities (WORKDIR/ensemble_eval_test)
  return d


def _monitor() -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict()
  d.progress = True
  d.log_every_steps = 20
  d.plot = True
  # history.png: at most one redraw per this many seconds (and at the end); a redraw costs ~0.5 s of
  # CPU beside the training, ~1 s of the README's 20-second first command at 5 s
  d.plot_min_seconds = 30.0
  d.tensorboard = True
  return d


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
