"""Checkpoints and resume: round trip, retention, auto-resume, --resume_epoch with a new lr,
--init_from, refusing a foreign checkpoint, and bitwise-exact resume after kill -9."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnzoo.training import loop, resume
from cnnzoo.training.checkpoint import CheckpointMismatchError, Checkpointer

TIMING = ("seconds", "img_per_sec", "data_seconds")


def without_timing(history):
  return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


def read(workdir, name):
  with open(os.path.join(workdir, name)) as f:
    return json.load(f)


def test_round_trip_is_bitwise_and_keeps_last_k_plus_best(tmp_path):
  ckpt = Checkpointer(str(tmp_path), keep=2, best_metric="val_loss", best_mode="min", async_save=False)
  tree = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.asarray(7), "rng": jax.random.PRNGKey(3)}
  for epoch, val_loss in zip(range(1, 6), [0.9, 0.3, 0.8, 0.7, 0.6]):
    ckpt.save(epoch, jax.tree.map(lambda x: x * epoch, tree), {"history": [epoch]}, {"val_loss": val_loss})
  ckpt.wait()
  assert ckpt.epochs() == [2, 4, 5] and ckpt.best_epoch() == 2
  restored, meta = ckpt.restore(4, tree)
  jax.tree.map(np.testing.assert_array_equal, restored, jax.tree.map(lambda x: x * 4, tree))
  assert meta["history"] == [4] and {"signature", "checksum", "meta_checksum"} <= set(meta)
  with pytest.raises(CheckpointMismatchError, match="does not fit"):
    ckpt.restore(4, {**tree, "w": jnp.zeros((3, 3))})
  ckpt.close()


def test_auto_resume_equals_an_uninterrupted_run(tiny_digits, tmp_path):
  tiny_digits.num_epochs = 3
  full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
  a = loop.train_and_evaluate(tiny_digits, full)
  shutil.copytree(full, cut)
  shutil.rmtree(os.path.join(cut, "checkpoints", "3"))  # as if killed before epoch 3 was saved
  b = loop.train_and_evaluate(tiny_digits, cut)
  assert a == b  # includes the parameter fingerprint: bitwise-equal parameters
  assert without_timing(read(full, "history.json")) == without_timing(read(cut, "history.json"))


def test_resume_epoch_with_a_new_learning_rate(tiny_digits, tmp_path):
  tiny_digits.num_epochs = 3
  workdir = str(tmp_path)
  loop.train_and_evaluate(tiny_digits, workdir)
  first = read(workdir, "history.json")
  # The seed's workflow: go back to epoch 1 and continue with a constant, smaller rate.
  tiny_digits.optim.lr = 1e-4
  tiny_digits.schedule.name = "constant"
  loop.train_and_evaluate(tiny_digits, workdir, resume_epoch=1)
  second = read(workdir, "history.json")
  assert second[0] == first[0]
  assert [h["lr"] for h in second[1:]] == pytest.approx([1e-4, 1e-4])
  assert second[1]["loss"] != first[1]["loss"]
  assert read(workdir, "config.json")["optim"]["lr"] == 1e-4
  assert read(workdir, "config.until_epoch1.json")["optim"]["lr"] == 1e-3  # the old config is kept
  assert sorted(int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit()) == [1, 2, 3]


def test_init_from_copies_weights_and_starts_afresh(tiny_digits, tmp_path):
  tiny_digits.num_epochs = 1
  source = str(tmp_path / "source")
  results = loop.train_and_evaluate(tiny_digits, source)
  run = loop.build(tiny_digits)
  state = resume.init_from(run, f"{source}:1")
  assert loop.params_fingerprint(state.params) == results["params_sha256"]
  assert int(state.step) == 0
  with pytest.raises(loop.UserError, match="no such checkpoint"):
    resume.init_from(run, f"{source}:7")


def test_foreign_checkpoint_is_refused_and_nothing_is_overwritten(tiny_digits, tmp_path):
  tiny_digits.num_epochs = 1
  workdir = str(tmp_path)
  loop.train_and_evaluate(tiny_digits, workdir)
  before = {p: os.path.getmtime(os.path.join(workdir, p)) for p in ("config.json", "history.json", "results.json")}
  other = tiny_digits.copy_and_resolve_references()
  other.model.kwargs.unlock()
  other.model.kwargs.hidden = (100, 50)
  with pytest.raises(CheckpointMismatchError, match="use another --workdir"):
    loop.train_and_evaluate(other, workdir)
  adam = tiny_digits.copy_and_resolve_references()
  adam.optim.name = "sgd"  # the checkpoint holds Adam's moments
  with pytest.raises(CheckpointMismatchError, match="does not fit the model and optimizer"):
    loop.train_and_evaluate(adam, workdir)
  assert before == {p: os.path.getmtime(os.path.join(workdir, p)) for p in before}
