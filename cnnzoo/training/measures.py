"""What a run measures, defined once: the metrics of config.metrics (registered with
`@cnnzoo.register_metric`, cnnzoo's own below), from which the steps' sums, the history's keys,
the callbacks' and checkpoints' monitored names, the epoch line and the progress bar all derive.

A metric is `fn(logits, labels) -> one value per image` (a bool or a number), traced inside the
jitted steps; a run sums it over the images (the padded ones of an evaluation batch masked out)
and divides by their count, as clu's `metrics.Average` does. The training batches give
`NAME` in history.json (config.metrics.train), validation `val_NAME` and the test split
`test_NAME` in results.json (config.metrics.eval); `loss` is always measured.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from cnnzoo.errors import ConfigError
from cnnzoo.metrics import METRICS, register_metric
from cnnzoo.registry import Entry


@register_metric("accuracy", short="acc")
def accuracy(logits, labels):
  """Rank-1: the most probable class is the label."""
  return jnp.argmax(logits, -1) == labels


@register_metric("top5_accuracy", shown=False, short="top-5")
def top5_accuracy(logits, labels):
  """Rank-5: the label is among the five most probable classes (all of them when fewer)."""
  return jnp.any(jax.lax.top_k(logits, min(5, logits.shape[-1]))[1] == labels[:, None], axis=-1)


def names(config) -> dict:
  """{"train": (...), "eval": (...)}: the metric names config.metrics lists (cnnzoo's defaults for
  a config without the section), each registered (else one line listing the registered ones)."""
  section = config.get("metrics") or {}
  listed = {"train": tuple(section.get("train", ("accuracy",))),
            "eval": tuple(section.get("eval", ("accuracy", "top5_accuracy")))}
  for which, given in listed.items():
    if len(set(given)) != len(given) or not all(isinstance(n, str) for n in given):
      raise ConfigError(f"--config.metrics.{which}={given!r}: a tuple of registered metric names, each once")
    for name in given:
      if name not in METRICS:
        raise ConfigError(METRICS.unknown(name, where=f"--config.metrics.{which}: {name!r}"))
  return listed


def monitored(config) -> tuple[str, ...]:
  """The history keys a callback or the best checkpoint of `config` may follow."""
  listed = names(config)
  return ("val_loss", *(f"val_{n}" for n in listed["eval"]), "loss", *listed["train"])


@dataclasses.dataclass(frozen=True)
class Measures:
  """The metrics of one run: `train` on the training batches, `evaluation` on validation and test."""
  train: tuple[Entry, ...]
  evaluation: tuple[Entry, ...]
  dtypes: tuple[tuple[str, str], ...]  # (name, dtype of its sums): int32 for a per-image bool, else float32

  @classmethod
  def of(cls, config, num_classes: int) -> "Measures":
    """The metrics config.metrics names (cnnzoo's defaults for a config without the section); an
    unknown name is one line listing the registered ones, a metric that does not give one value
    per image is one line naming it."""
    listed = names(config)
    entries = {name: METRICS.get(name) for which in listed.values() for name in which}
    dtypes = tuple((name, _sum_dtype(entry, num_classes)) for name, entry in entries.items())
    return cls(tuple(entries[n] for n in listed["train"]), tuple(entries[n] for n in listed["eval"]), dtypes)

  def sums(self, which: str, logits, labels, mask=None) -> dict:
    """{name: sum over the (masked) images} of the `which` ("train" / "eval") metrics."""
    out = {}
    for entry in self.train if which == "train" else self.evaluation:
      values = entry.fn(logits, labels)
      kept = values if mask is None else jnp.where(mask, values, jnp.zeros_like(values))
      out[entry.name] = jnp.sum(kept, dtype=dict(self.dtypes)[entry.name])
    return out

  def zeros(self) -> dict:
    """The training sums before the first step (loss, count and each train metric)."""
    return {"loss": jnp.zeros((), jnp.float32), "count": jnp.zeros((), jnp.int32),
            **{e.name: jnp.zeros((), dict(self.dtypes)[e.name]) for e in self.train}}

  @staticmethod
  def means(sums) -> dict:
    """{"loss": mean, NAME: mean, ..., "count": images} of summed step metrics (host values)."""
    n = int(sums["count"])
    return {**{k: float(v) / n for k, v in sums.items() if k != "count"}, "count": n}

  def record(self, train_sums, val: dict) -> dict:
    """The epoch's measured part of its history record: loss, the train metrics, val_loss, val_NAME."""
    train = self.means(train_sums)
    return {"loss": train["loss"], **{e.name: train[e.name] for e in self.train},
            "val_loss": val["loss"], **{f"val_{e.name}": val[e.name] for e in self.evaluation}}

  def monitored(self) -> tuple[str, ...]:
    """The history keys a callback or the best checkpoint may follow."""
    return ("val_loss", *(f"val_{e.name}" for e in self.evaluation), "loss", *(e.name for e in self.train))

  def higher_is_better(self, key: str) -> bool:
    """Whether `key` (a monitored name) improves upwards; the loss falls."""
    name = key.removeprefix("val_")
    return name != "loss" and bool(next(e for e in (*self.train, *self.evaluation) if e.name == name).higher_is_better)

  def shown(self) -> list[str]:
    """The keys of the epoch line: loss, the shown train metrics, val_loss, the shown val metrics, lr."""
    return (["loss", *(e.name for e in self.train if e.shown), "val_loss",
             *(f"val_{e.name}" for e in self.evaluation if e.shown), "lr"])

  def test_line(self, results: dict) -> str:
    """`loss 0.0623  accuracy 0.9833  top-5 1.0000` of results.json's test_ figures: the shown
    metrics by name, the others by their short name."""
    return "  ".join([f"loss {results['test_loss']:.4f}",
                      *(f"{e.name if e.shown else (e.short or e.name)} {results[f'test_{e.name}']:.4f}"
                        for e in self.evaluation)])

  def progress(self, sums) -> dict:
    """The progress bar's running figures of the epoch's training sums so far."""
    means = self.means(sums)
    return {"loss": means["loss"], **{(e.short or e.name): means[e.name] for e in self.train}}


@functools.lru_cache(maxsize=None)
def default_measures() -> Measures:
  """cnnzoo's default metrics (accuracy on the training batches; accuracy and top-5 in evaluation):
  what a step measures when it is not given a run's Measures."""
  return Measures.of({}, num_classes=10)


def _sum_dtype(entry: Entry, num_classes: int) -> str:
  """int32 for a metric that gives a bool per image (exact counts), float32 for numbers."""
  logits = jax.ShapeDtypeStruct((2, num_classes), jnp.float32)
  labels = jax.ShapeDtypeStruct((2,), jnp.int32)
  try:
    out = jax.eval_shape(entry.fn, logits, labels)
  except Exception as e:  # noqa: BLE001 -- a metric of one's own failing to trace: named in one line
    raise ConfigError(f"metric {entry.name!r} ({entry.module}.{entry.fn.__name__}) fails on logits (2, "
                      f"{num_classes}): {type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
  if getattr(out, "shape", None) != (2,):
    raise ConfigError(f"metric {entry.name!r} ({entry.module}.{entry.fn.__name__}) returned "
                      f"{getattr(out, 'shape', type(out).__name__)} for 2 images; it gives one value per image")
  return "int32" if out.dtype == jnp.bool_ else "float32"
