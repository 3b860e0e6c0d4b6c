"""Defaults shared by every experiment config. Experiment files import this and override fields.

Pure data: nothing here imports cnnzoo.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Every field a config may set, with its default; each section is built by the function below."""
  c = ml_collections.ConfigDict()
  # Modules of one's own (components registered with @cnnzoo.register_model, ...) that every entry
  # point imports before it builds anything; the config file's folder is importable (docs/extending.md)
  c.imports = ()
  # Folders put on the Python path for them: the entry point records the config file's own folder here
  c.import_dirs = ()
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
  c.metrics = _metrics()
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
  # The dataset's settings and the augmentation's sit beside these fields, declared by each
  # (`python -m experiments.main --list_components`): digits: image_size, val_fraction,
  # test_fraction, split_seed; mnist / fashion_mnist: dir, val_fraction, split_seed; hdf5: dir,
  # max_in_memory_gb; synthetic: synthetic_sizes, split_seed; a tfds name: dir, val_fraction,
  # test_fraction, split_seed, resize; crop: crop_padding; affine: rotation, shift, zoom, shear.
  d = ml_collections.ConfigDict()
  d.name = "digits"  # digits | synthetic | hdf5 | mnist | fashion_mnist | one's own | a tfds name (cifar10, ...)
  d.how_to_get = ""  # shown when the dataset is missing
  d.on_device = "auto"  # auto | yes | no: keep a split's uint8 images on every device
  d.max_on_device_gb = 2.0  # auto: the largest split kept on the device
  d.prefetch = 2  # host batches prepared ahead by a background thread (0 = none)
  d.classes = ()  # a subset of the classes (names or indices), relabelled 0..k-1 in this order
  d.batch_size = 64  # global batch, split over all devices
  d.eval_batch_size = 0  # 0: same as batch_size
  d.normalize = "scale"  # scale (x/255) | mean (x - channel mean) | standardize
  d.std = ()  # standardize: per-channel std in [0, 1] units (() = the dataset's, from mean.json)
  d.crop_size = 0  # >0: the model sees size x size windows: random in training (the seed's
  #                       PatchPreprocessor), data.eval_crop / data.test_crop views in evaluation
  d.eval_crop = "center"  # validation views: center | resize (whole image) | ten (10-crop average)
  d.test_crop = ""  # test views ("" = eval_crop); the seed's AlexNet reports "ten"
  d.augment = "none"  # none | crop | flip | crop_flip | affine | affine_flip | one's own
  d.erase_prob = 0.0  # random erasing (seed 001's eraser) after the augmentation above
  d.erase_area = (0.02, 0.4)  # fraction of the image
  d.erase_ratio = 0.3  # aspect ratio in [r, 1 / r]
  return d


def _optim() -> ml_collections.ConfigDict:
  # The optimizer's settings sit beside these fields, declared by each (cnnzoo/training/optim.py):
  # sgd: semantics (optax | keras: Keras 3's update arithmetic), momentum, nesterov, weight_decay;
  # adam: semantics, b1, b2, eps (Keras' 1e-7), weight_decay (decoupled: AdamW); rmsprop:
  # semantics, rho, eps, momentum, weight_decay.
  d = ml_collections.ConfigDict()
  d.name = "sgd"  # sgd | adam | rmsprop | one's own
  d.lr = 0.01
  d.l2 = 0.0  # Keras kernel_regularizer=l2(.) on every kernel, added to the loss
  d.l2_conv_only = False  # ... on the convolution kernels alone (the Dense layers unregularized)
  d.label_smoothing = 0.0
  d.aux_loss_weight = 0.3  # auxiliary classifiers (GoogLeNet's aux_logits=True), Szegedy et al.
  d.clip_grad_norm = 0.0
  d.trainable = "all"  # all | head | bn | from:LAYER | re:REGEX (cnnzoo/training/trainable.py)
  return d


def _schedule() -> ml_collections.ConfigDict:
  # The schedule's settings sit beside these fields, declared by each (cnnzoo/training/schedules.py):
  # every epoch-wise one: per_step (False: the rate changes at epoch boundaries, as Keras callbacks
  # do), warmup_epochs, warmup_init_lr; poly: power, end_lr, decay_epochs (0 = num_epochs); linear,
  # cosine: end_lr, decay_epochs; step: step_every, step_factor, step_offset (the book's step_decay:
  # 1); piecewise: boundaries, scales; keras_time: decay (lr / (1 + decay * iterations)).
  d = ml_collections.ConfigDict()
  d.name = "constant"  # constant | poly | linear | step | piecewise | cosine | keras_time | one's own
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


def _metrics() -> ml_collections.ConfigDict:
  # What a run measures besides the loss (registered metrics, @cnnzoo.register_metric): on the
  # training batches (history.json: NAME), on validation (val_NAME) and test (results.json: test_NAME)
  d = ml_collections.ConfigDict()
  d.train = ("accuracy",)
  d.eval = ("accuracy", "top5_accuracy")
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


def drop(section: ml_collections.ConfigDict, *fields: str) -> None:
  """Removes the settings of a component a variant replaces (SGD's momentum when it turns to Adam):
  a section holds the settings of its chosen components only."""
  with section.unlocked():
    for name in fields:
      if name in section:
        del section[name]


def smoke(c: ml_collections.ConfigDict, image_shape, num_classes: int) -> ml_collections.ConfigDict:
  """Shrinks `c` to a few steps on synthetic images of the model's shape (the `:smoke` argument)."""
  own = _data()  # the dataset's and the augmentation's settings go: a synthetic dataset takes its own
  c.data = ml_collections.ConfigDict({k: v for k, v in c.data.items() if k in own})
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
