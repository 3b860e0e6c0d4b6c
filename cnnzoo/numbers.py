"""Integers and sizes given by users (flags, config values, folder names): ASCII digits only (`²`
or `٣` pass str.isdigit but are no number a user meant), bounds checked, one line naming the flag."""

from cnnzoo.errors import UserError

# The largest image side a command takes, and the most values one image may hold: beyond them XLA's
# 32-bit shape arithmetic overflows (a crash, not an error), and no model of the zoo needs more.
MAX_SIDE = 1 << 15
MAX_IMAGE_VALUES = 1 << 30


def is_count(text) -> bool:
  """Whether `text` is a non-negative integer written in ASCII digits."""
  return isinstance(text, str) and text.isascii() and text.isdigit()


def parse_count(text: str, flag: str, low: int = 0, high: int | None = None) -> int:
  """`text` as an integer in [low, high]; anything else is a UserError naming `flag`."""
  if not is_count(text):
    raise UserError(f"{flag}={text}: expected a whole number written with the digits 0-9")
  value = int(text)
  if value < low or (high is not None and value > high):
    bounds = f">= {low}" + (f" and <= {high}" if high is not None else "")
    raise UserError(f"{flag}={text}: must be {bounds}")
  return value


def check_image_shape(shape, flag: str) -> tuple:
  """`shape` (H, W[, C]) if every side is at most MAX_SIDE and an image holds at most
  MAX_IMAGE_VALUES values; else a UserError naming `flag`, before anything is allocated."""
  shape = tuple(int(d) for d in shape)
  values = 1
  for d in shape:
    values *= d
  if max(shape[:2]) > MAX_SIDE or values > MAX_IMAGE_VALUES:
    raise UserError(f"{flag}={','.join(map(str, shape))}: at most {MAX_SIDE} pixels a side and "
                    f"{MAX_IMAGE_VALUES:,} values an image")
  return shape
