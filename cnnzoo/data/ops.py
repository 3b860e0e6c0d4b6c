"""On-device preprocessing and augmentation, run inside the jitted steps.

An augmentation is a batch op `fn(key, images, data) -> images` of the same shape, registered with
`@register_augmentation(NAME, settings={...})` and chosen by data.augment; `data` is config.data,
its settings fields of it. cnnzoo's own (none, crop, flip, crop_flip, affine, affine_flip) are
entries like a user's; random erasing (data.erase_prob) follows any of them.

Everything here is a pure function of (images, key): per-example randomness comes from the key
the train step derives from its step number, so a resumed run draws the same augmentations.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from cnnzoo.data.dataset import AUGMENTATIONS, register_augmentation
from cnnzoo.errors import ConfigError
from cnnzoo.registry import setting


NORMALIZATIONS = ("scale", "mean", "standardize", "pixel_mean")
EVAL_CROPS = ("center", "resize", "ten")


def normalize(images, mode: str, mean=None, std=None, mean_image=None):
  """uint8 -> float32. "scale": x / 255; "mean": x - channel mean (the seed's MeanPreprocessor);
  "standardize": (x - mean) / std per channel, mean and std in 0..255 units; "pixel_mean": x / 255
  minus the training split's mean image (H, W, C in [0, 1] units; the Keras ResNet example's
  subtract_pixel_mean)."""
  x = images.astype(jnp.float32)
  if mode == "scale":
    return x / 255.0
  if mode == "pixel_mean":
    return x / 255.0 - jnp.asarray(mean_image, jnp.float32)
  if mode == "mean":
    return x - jnp.asarray(mean, jnp.float32)
  if mode == "standardize":
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
  raise ConfigError(f"unknown normalization {mode!r}; choose {', '.join(NORMALIZATIONS)}")


def random_flip(key, images):
  """Horizontal flip of each image with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1, :], images)


def random_crop(key, images, padding: int):
  """Zero-pads each side by `padding` and crops back to the input size at a random offset."""
  n, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  offsets = jax.random.randint(key, (n, 2), 0, 2 * padding + 1)
  crop = lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets)


def random_patch(key, images, size: int):
  """A random `size` x `size` window of each image (the seed's PatchPreprocessor: 227 of 256)."""
  n, h, w, c = images.shape
  ky, kx = jax.random.split(key)
  ys = jax.random.randint(ky, (n,), 0, h - size + 1)
  xs = jax.random.randint(kx, (n,), 0, w - size + 1)
  crop = lambda im, y, x: jax.lax.dynamic_slice(im, (y, x, 0), (size, size, c))
  return jax.vmap(crop)(images, ys, xs)


def center_crop(images, size: int):
  """The central `size` x `size` window (the extra pixel of an odd margin goes to the bottom / right)."""
  h, w = images.shape[1:3]
  top, left = (h - size) // 2, (w - size) // 2
  return images[:, top:top + size, left:left + size, :]


def ten_crops(images, size: int):
  """(10, N, size, size, C): the four corner and the center windows, then their mirror images
  (the seed's CropPreprocessor, after Krizhevsky et al. 2012's test-time averaging)."""
  h, w = images.shape[1:3]
  corners = [images[:, :size, :size], images[:, :size, w - size:], images[:, h - size:, :size],
             images[:, h - size:, w - size:], center_crop(images, size)]
  return jnp.stack(corners + [c[:, :, ::-1] for c in corners])


def eval_views(images, size: int, mode: str = "center"):
  """(V, N, size, size, C) evaluation views of uint8 `images`: "center" (V=1), "resize" (the whole
  image resized bilinearly, the seed's SimplePreprocessor on validation; V=1) or "ten" (V=10,
  `ten_crops`). size 0 (or the image size) keeps the images as they are."""
  if mode not in EVAL_CROPS:
    raise ConfigError(f"unknown evaluation crop {mode!r}; choose {', '.join(EVAL_CROPS)}")
  n, h, w, c = images.shape
  if not size or (size == h == w and mode != "ten"):
    return images[None]
  if mode == "ten":
    return ten_crops(images, size)
  if mode == "resize":
    return jax.image.resize(images.astype(jnp.float32), (n, size, size, c), "linear")[None]
  return center_crop(images, size)[None]


def random_affine(key, images, rotation=0.0, shift=0.0, zoom=0.0, shear=0.0):
  """Keras ImageDataGenerator's geometric augmentation as one affine warp per image.

  rotation and shear in degrees (uniform in [-r, r]), shift as a fraction of height / width,
  zoom in [1 - zoom, 1 + zoom] per axis; bilinear sampling, "nearest" fill as Keras does.
  """
  n, h, w, _ = images.shape
  ks = jax.random.split(key, 6)
  u = lambda k, r, shape=(n,): jax.random.uniform(k, shape, minval=-r, maxval=r)
  theta = jnp.deg2rad(u(ks[0], rotation))
  ty, tx = u(ks[1], shift) * h, u(ks[2], shift) * w
  sh = jnp.deg2rad(u(ks[3], shear))
  zy, zx = 1.0 + u(ks[4], zoom), 1.0 + u(ks[5], zoom)
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  # output (row, col) -> input (row, col) about the image center: rotation . shear . zoom, then shift
  shear_m = jnp.stack([jnp.stack([jnp.ones(n), -jnp.sin(sh)], -1),
                       jnp.stack([jnp.zeros(n), jnp.cos(sh)], -1)], -2)
  rot = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)
  zoom_m = jnp.stack([jnp.stack([zy, jnp.zeros(n)], -1), jnp.stack([jnp.zeros(n), zx], -1)], -2)
  a = rot @ shear_m @ zoom_m
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
  center = jnp.array([(h - 1) / 2.0, (w - 1) / 2.0])
  grid = jnp.stack([rows, cols], 0).reshape(2, -1) - center[:, None]

  def warp(image, m, t):
    src = m @ grid + center[:, None] + t[:, None]
    sample = lambda ch: jax.scipy.ndimage.map_coordinates(ch, [src[0], src[1]], order=1, mode="nearest")
    return jax.vmap(sample, in_axes=-1, out_axes=-1)(image).reshape(image.shape)

  return jax.vmap(warp)(images.astype(jnp.float32), a, jnp.stack([ty, tx], -1))


def random_erasing(key, images, prob=0.5, area=(0.02, 0.4), ratio=0.3):
  """Random erasing (Zhong et al. 2017; the seed's eraser): with probability `prob` a rectangle of
  `area` (fraction of the image) and aspect ratio in [ratio, 1 / ratio] is filled with noise."""
  n, h, w, c = images.shape
  ks = jax.random.split(key, 6)
  s = jax.random.uniform(ks[0], (n,), minval=area[0], maxval=area[1]) * h * w
  r = jnp.exp(jax.random.uniform(ks[1], (n,), minval=jnp.log(ratio), maxval=-jnp.log(ratio)))
  eh = jnp.clip(jnp.round(jnp.sqrt(s * r)), 1, h).astype(jnp.int32)
  ew = jnp.clip(jnp.round(jnp.sqrt(s / r)), 1, w).astype(jnp.int32)
  y0 = (jax.random.uniform(ks[2], (n,)) * (h - eh + 1)).astype(jnp.int32)
  x0 = (jax.random.uniform(ks[3], (n,)) * (w - ew + 1)).astype(jnp.int32)
  rows, cols = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
  box = ((rows >= y0[:, None, None]) & (rows < (y0 + eh)[:, None, None]) &
         (cols >= x0[:, None, None]) & (cols < (x0 + ew)[:, None, None]))
  apply = jax.random.bernoulli(ks[4], prob, (n, 1, 1))
  noise = jax.random.uniform(ks[5], images.shape, maxval=255.0)
  return jnp.where((box & apply)[..., None], noise, images.astype(jnp.float32))


PADDING = {"crop_padding": setting(4, "zero padding before the random crop", low=0)}
AFFINE = {"rotation": setting(0.0, "degrees", low=0, high=180),
          "shift": setting(0.0, "fraction of height / width", low=0, high=1, high_open=True),
          "zoom": setting(0.0, "scale in [1 - zoom, 1 + zoom]", low=0, high=1, high_open=True),
          "shear": setting(0.0, "degrees", low=0, high=90, high_open=True)}


def _keys(key):
  """The keys of cnnzoo's augmentations (crop, flip, affine, erasing): one split of the step's key."""
  return jax.random.split(key, 4)


@register_augmentation("none")
def no_augmentation(key, images, data):
  del key, data
  return images


@register_augmentation("crop", settings=PADDING)
def crop(key, images, data):
  return random_crop(_keys(key)[0], images, data.crop_padding)


@register_augmentation("flip")
def flip(key, images, data):
  return random_flip(_keys(key)[1], images)


@register_augmentation("crop_flip", settings=PADDING)
def crop_flip(key, images, data):
  return flip(key, crop(key, images, data), data)


@register_augmentation("affine", settings=AFFINE)
def affine(key, images, data):
  """Keras ImageDataGenerator's rotation, shift, zoom and shear (random_affine)."""
  return random_affine(_keys(key)[2], images, data.rotation, data.shift, data.zoom, data.shear)


@register_augmentation("affine_flip", settings=AFFINE)
def affine_flip(key, images, data):
  return flip(key, affine(key, images, data), data)


def augment(key, images, data):
  """The augmentation data.augment names, then, if `data.erase_prob`, random erasing."""
  entry = AUGMENTATIONS.get(data.augment)
  images = entry.fn(key, images, data)
  if data.get("erase_prob", 0.0):
    images = random_erasing(_keys(key)[3], images, data.erase_prob, tuple(data.erase_area), data.erase_ratio)
  return images


def check_augmentation(data, batch_shape) -> None:
  """Traces data.augment's entry on a batch of `batch_shape` (shapes only, nothing computed): one
  line naming the component when it fails or returns another shape."""
  entry = AUGMENTATIONS.get(data.augment)
  where = f"augmentation {entry.name!r} ({entry.module}.{entry.fn.__name__})"
  x = jax.ShapeDtypeStruct(tuple(batch_shape), jnp.float32)
  try:
    out = jax.eval_shape(lambda k, x: entry.fn(k, x, data), jax.random.key(0), x)
  except ConfigError:
    raise
  except Exception as e:  # noqa: BLE001 -- a user's batch op failing to trace: its own bug, named
    raise ConfigError(f"{where} fails on a batch {tuple(batch_shape)}: {type(e).__name__}: "
                      f"{' '.join(str(e).split())[:200]}") from None
  if not hasattr(out, "shape") or tuple(out.shape) != tuple(batch_shape):
    got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
    raise ConfigError(f"{where} returned {got} for a batch {tuple(batch_shape)}; a batch op keeps the batch's shape")


def model_image_shape(data_cfg, image_shape):
  """The shape the model sees: the stored images', or `data.crop_size` square crops of them."""
  h, w, c = image_shape
  size = data_cfg.get("crop_size", 0)
  if not size:
    return (h, w, c)
  if not 0 < size <= min(h, w):
    raise ConfigError(f"data.crop_size={size} must be between 1 and the images' {h}x{w}")
  return (size, size, c)


def make_preprocess(data_cfg, mean, std=None, image_shape=None, mean_image=None):
  """(train_fn, val_fn, test_fn) built from the data config.

  train_fn(key, uint8 (N, H, W, C)) -> float (N, h, w, C): with `data.crop_size` a random window
  of that size first (the seed's PatchPreprocessor), then `augment`, then normalization.
  val_fn / test_fn(uint8 images) -> float (V, N, h, w, C): the views of `data.eval_crop` /
  `data.test_crop` (`eval_views`), normalized; predictions are averaged over the V views.
  `mean`, `std`: the dataset's channel statistics (0..255); `data.std` ([0, 1] units) overrides std.
  `mean_image` (H, W, C, [0, 1] units): "pixel_mean" subtracts it before the augmentation, in the
  order of the Keras example (x_train -= mean, then ImageDataGenerator), which it follows.
  """
  if data_cfg.normalize not in NORMALIZATIONS:
    raise ConfigError(f"unknown normalization {data_cfg.normalize!r}; choose {', '.join(NORMALIZATIONS)}")
  mean = tuple(mean) if mean is not None else None
  std = tuple(255.0 * v for v in data_cfg.std) if data_cfg.get("std") else std
  if data_cfg.normalize in ("mean", "standardize") and mean is None:
    raise ConfigError(f"normalize={data_cfg.normalize!r} needs the dataset's channel mean (mean.json)")
  if data_cfg.normalize == "pixel_mean":
    if data_cfg.get("crop_size", 0):
      raise ConfigError("normalize='pixel_mean' subtracts a whole-image mean: it needs data.crop_size=0")
    if data_cfg.get("erase_prob", 0.0):
      raise ConfigError("normalize='pixel_mean' with random erasing is not supported (the eraser's noise is in "
                        "0..255 units); use normalize='scale' or erase_prob=0")
    if mean_image is None or (image_shape is not None and tuple(np.shape(mean_image)) != tuple(image_shape)):
      raise ConfigError(f"normalize='pixel_mean' needs the training split's mean image of shape {image_shape}")
  if data_cfg.normalize == "standardize" and not std:
    raise ConfigError("normalize='standardize' needs the channel std: rebuild the dataset "
                      "(mean.json gains it) or set --config.data.std")
  AUGMENTATIONS.get(data_cfg.augment)  # an unknown name: one line listing the registered ones
  channels = image_shape[-1] if image_shape is not None else None
  for name, stat in (("mean", mean), ("std", std)):
    used = data_cfg.normalize == "standardize" or (name == "mean" and data_cfg.normalize == "mean")
    if used and channels and stat is not None and len(stat) != channels:
      where = "--config.data.std" if name == "std" and data_cfg.get("std") else f"the dataset's channel {name}"
      raise ConfigError(f"{where} has {len(stat)} values but the images have {channels} channel(s)")
  size = data_cfg.get("crop_size", 0)
  if image_shape is not None:
    model_image_shape(data_cfg, image_shape)
  eval_crop = data_cfg.get("eval_crop", "center")
  test_crop = data_cfg.get("test_crop", "") or eval_crop
  for mode in (eval_crop, test_crop):
    if mode not in EVAL_CROPS:
      raise ConfigError(f"unknown evaluation crop {mode!r}; choose {', '.join(EVAL_CROPS)}")
  norm = functools.partial(normalize, mode=data_cfg.normalize, mean=mean, std=std, mean_image=mean_image)

  def train_fn(key, images):
    if data_cfg.normalize == "pixel_mean":  # Keras' order: subtract, then augment
      return augment(key, norm(images), data_cfg)
    if size:
      key, patch_key = jax.random.split(key)
      images = random_patch(patch_key, images, size)
    return norm(augment(key, images, data_cfg))

  def views_fn(mode):
    return lambda images: norm(eval_views(images, size, mode))

  val_fn = views_fn(eval_crop)
  return train_fn, val_fn, val_fn if test_crop == eval_crop else views_fn(test_crop)
