"""On-device preprocessing and augmentation, run inside the jitted steps.

Everything here is a pure function of (images, key): per-example randomness comes from the key
the train step derives from its step number, so a resumed run draws the same augmentations.
"""

import functools

import jax
import jax.numpy as jnp
from cnnzoo.errors import ConfigError


def normalize(images, mode: str, mean=None, std=None):
  """uint8 -> float32. "scale": x / 255; "mean": x - channel mean (0..255, the seed's
  MeanPreprocessor); "standardize": (x / 255 - mean) / std with mean, std in [0, 1] units."""
  x = images.astype(jnp.float32)
  if mode == "scale":
    return x / 255.0
  if mode == "mean":
    return x - jnp.asarray(mean, jnp.float32)
  if mode == "standardize":
    return (x / 255.0 - jnp.asarray(mean, jnp.float32) / 255.0) / jnp.asarray(std, jnp.float32)
  raise ConfigError(f"unknown normalization {mode!r}; choose scale, mean or standardize")


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


AUGMENTATIONS = ("none", "crop", "flip", "crop_flip", "affine", "affine_flip")


def augment(key, images, cfg):
  """Applies `cfg.augment` (one of AUGMENTATIONS) then, if `cfg.erase_prob`, random erasing."""
  name = cfg.augment
  if name not in AUGMENTATIONS:
    raise ConfigError(f"unknown augmentation {name!r}; choose {', '.join(AUGMENTATIONS)}")
  crop_key, flip_key, affine_key, erase_key = jax.random.split(key, 4)
  if name in ("crop", "crop_flip"):
    images = random_crop(crop_key, images, cfg.crop_padding)
  if name in ("affine", "affine_flip"):
    images = random_affine(affine_key, images, cfg.rotation, cfg.shift, cfg.zoom, cfg.shear)
  if name in ("flip", "crop_flip", "affine_flip"):
    images = random_flip(flip_key, images)
  if cfg.erase_prob:
    images = random_erasing(erase_key, images, cfg.erase_prob, tuple(cfg.erase_area), cfg.erase_ratio)
  return images


def make_preprocess(data_cfg, mean):
  """(train_fn, eval_fn): `fn(key, uint8 images) -> float images` built from the data config."""
  mean = tuple(mean) if mean is not None else None
  std = tuple(data_cfg.std) if data_cfg.get("std") else None
  if data_cfg.normalize in ("mean", "standardize") and mean is None:
    raise ConfigError(f"normalize={data_cfg.normalize!r} needs the dataset's channel mean")
  norm = functools.partial(normalize, mode=data_cfg.normalize, mean=mean, std=std)

  def train_fn(key, images):
    return norm(augment(key, images, data_cfg))

  def eval_fn(images):
    return norm(images)

  return train_fn, eval_fn
