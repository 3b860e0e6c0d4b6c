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


def augment(key, images, name: str, crop_padding: int = 4):
  """Applies the named augmentation: "none", "crop" (pad + random crop), "flip" or "crop_flip"."""
  if name == "none":
    return images
  crop_key, flip_key = jax.random.split(key)
  if name == "crop":
    return random_crop(crop_key, images, crop_padding)
  if name == "flip":
    return random_flip(flip_key, images)
  if name == "crop_flip":
    return random_flip(flip_key, random_crop(crop_key, images, crop_padding))
  raise ConfigError(f"unknown augmentation {name!r}; choose none, crop, flip or crop_flip")


def make_preprocess(data_cfg, mean):
  """(train_fn, eval_fn): `fn(key, uint8 images) -> float images` built from the data config."""
  mean = tuple(mean) if mean is not None else None
  std = tuple(data_cfg.std) if data_cfg.get("std") else None
  if data_cfg.normalize in ("mean", "standardize") and mean is None:
    raise ConfigError(f"normalize={data_cfg.normalize!r} needs the dataset's channel mean")
  norm = functools.partial(normalize, mode=data_cfg.normalize, mean=mean, std=std)

  def train_fn(key, images):
    return norm(augment(key, images, data_cfg.augment, data_cfg.crop_padding))

  def eval_fn(images):
    return norm(images)

  return train_fn, eval_fn
