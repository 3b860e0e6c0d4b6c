"""Multi-stage recipes (config.stages): parsing, the learning rate of every epoch, what carries over
between stages, and exact resume at and inside stage boundaries."""

import json
import re

import jax
import numpy as np
import pytest

from conftest import quiet
from configs import base
from cnnzoo.errors import ConfigError
from cnnzoo.training import loop, stages

DEEPER_GOOGLENET = ((50, "optim.lr=1e-3"), (60, "optim.lr=1e-4"),
                    (100, "optim.lr=1e-5,schedule.name=poly,schedule.power=1.0,schedule.from_stage_start=True"))


def config(stage_list, num_epochs, **optim):
  c = base.get_config()
  c.num_epochs, c.stages = num_epochs, stage_list
  c.optim.name = "adam"
  for k, v in optim.items():
    c.optim[k] = v
  return c


def test_the_journals_deepergooglenet_rates_epoch_by_epoch():
  """Adam 1e-3 to epoch 50, 1e-4 to 60, then 1e-5 * (1 - e / 40) with e counted from epoch 60."""
  plan = stages.plan(config(DEEPER_GOOGLENET, 100), steps_per_epoch=7)
  assert [(s.start, s.end, s.fresh) for s in plan] == [(0, 50, True), (50, 60, False), (60, 100, False)]
  rates = [float(stages.stage_of(plan, e + 1).schedule(e * 7)) for e in range(100)]
  assert rates[:50] == [np.float32(1e-3)] * 50 and rates[50:60] == [np.float32(1e-4)] * 10
  expected = [np.float32(1e-5) * np.float32(1 - e / 40) for e in range(40)]
  # float32 (1 - e / 40) is exact to an ulp of 1, i.e. to 1e-7 * 1e-5 absolute, not relative near 0
  np.testing.assert_allclose(rates[60:], expected, rtol=0, atol=2e-7 * 1e-5)
  assert rates[60] == np.float32(1e-5)
  # the optimizer's own count is 0 where its state was made (epoch 0 here): it sees the same rates
  assert float(stages._optimizer_schedule(plan[2], 7)(65 * 7)) == rates[65]


def test_a_new_optimizer_starts_fresh_and_a_new_rate_does_not():
  plan = stages.plan(config(((2, "optim.lr=1e-3"), (3, "optim.lr=5e-4"), (5, "optim.name=sgd,optim.momentum=0.9")), 5),
                     steps_per_epoch=10)
  assert [s.fresh for s in plan] == [True, False, True] and [s.opt_start for s in plan] == [0, 0, 3]
  assert plan[2].config.optim.name == "sgd" and plan[2].config.optim.lr == 5e-4  # stages accumulate
  # keras_time decay counts iterations of the optimizer in use: from 0 again after the new one
  plan = stages.plan(config(((2, "schedule.name=constant"), (4, "optim.name=sgd,schedule.name=keras_time,schedule.decay=0.5")), 4,
                            lr=0.1), steps_per_epoch=1)
  assert float(plan[1].schedule(2)) == pytest.approx(0.1) and float(plan[1].schedule(3)) == pytest.approx(0.1 / 1.5)


@pytest.mark.parametrize("spec,message", [
    (((3, "optim.lr=1e-3"), (2, "optim.lr=1e-4")), "not after the previous stage's 3"),
    (((2, "optim.lr=1e-3"),), "the last stage ends at epoch 2 but num_epochs is 4"),
    (((4, "data.batch_size=8"),), "data.batch_size cannot change within a run"),
    (((4, "optim.lrr=1e-3"),), "--config.stages[0]: optim.lrr: no such config field 'lrr'; did you mean 'lr'?"),
    (((4, "optim.lr=fast"),), "--config.stages[0]: optim.lr=fast: could not convert string to float: 'fast'"),
    (((4, "schedule.from_stage_start=maybe"),), "schedule.from_stage_start=maybe: expected True or False, not 'maybe'"),
    (((4, "optim.momentum=0.9"),), "--config.stages[0]: optim.momentum: no such config field 'momentum' for optimizer "
                                  "'adam' (a setting of optimizer 'rmsprop', optimizer 'sgd'); optimizer 'adam' takes b1"),
    (((4, "optim.lr"),), "is not FIELD=VALUE"),
    ((4,), "each stage is (END_EPOCH"),
])
def test_stages_that_cannot_work_are_config_errors(spec, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    stages.plan(config(spec, 4), steps_per_epoch=3)


def tiny(stage_list, num_epochs):
  from configs import lenet_digits
  c = quiet(lenet_digits.get_config())
  c.num_epochs, c.stages = num_epochs, stage_list
  c.checkpoint.async_save, c.checkpoint.keep = False, 10
  c.schedule.name = "constant"
  return c


RECIPE = ((2, "optim.lr=1e-3"), (4, "optim.name=sgd,optim.lr=0.01,optim.momentum=0.9"))


@pytest.mark.xdist_group("stages")
def test_a_two_stage_run_resumes_exactly_at_and_inside_the_boundary(tmp_path):
  full = loop.train_and_evaluate(tiny(RECIPE, 4), str(tmp_path / "full"))
  history = json.loads((tmp_path / "full" / "history.json").read_text())
  assert [h["stage"] for h in history] == [1, 1, 2, 2]
  assert [h["lr"] for h in history] == [np.float32(1e-3)] * 2 + [np.float32(0.01)] * 2
  for resume_epoch in (2, 3):  # at the boundary (adam state -> a fresh SGD), inside stage 2 (SGD state)
    again = loop.train_and_evaluate(tiny(RECIPE, 4), str(tmp_path / "full"), resume_epoch=resume_epoch)
    assert again["params_sha256"] == full["params_sha256"], resume_epoch
  # a run killed after epoch 3's checkpoint (its epoch-4 checkpoint gone): the same command goes on
  import shutil
  shutil.rmtree(tmp_path / "full" / "checkpoints" / "4")
  again = loop.train_and_evaluate(tiny(RECIPE, 4), str(tmp_path / "full"))
  assert again["params_sha256"] == full["params_sha256"]
  assert [h["stage"] for h in json.loads((tmp_path / "full" / "history.json").read_text())] == [1, 1, 2, 2]


@pytest.mark.xdist_group("stages")
def test_a_rate_only_stage_equals_the_manual_resume_with_a_new_rate(tmp_path):
  """Keras' stop at epoch N, K.set_value(lr), go on: the optimizer state carries over."""
  staged = loop.train_and_evaluate(tiny(((2, "optim.lr=1e-3"), (3, "optim.lr=1e-4")), 3), str(tmp_path / "staged"))
  manual = str(tmp_path / "manual")
  first = tiny((), 2)
  first.optim.lr = 1e-3
  loop.train_and_evaluate(first, manual)
  second = tiny((), 3)
  second.optim.lr = 1e-4
  assert loop.train_and_evaluate(second, manual)["params_sha256"] == staged["params_sha256"]
