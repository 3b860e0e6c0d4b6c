"""Model inspection: the numbered layer listing, FLOPs from XLA, and the summarize CLI."""

from cnnzoo.models import inspect


def test_layer_listing_is_numbered_in_call_order_and_sums_to_the_total():
  rows = inspect.layer_table("minivggnet")
  assert [r[0] for r in rows] == list(range(15))  # row 0: the input, as Keras numbers model.layers
  assert rows[0][1:4] == ("input", "Input", (32, 32, 3))
  assert [r[1] for r in rows[1:4]] == ["block1_conv1", "block1_bn1", "block1_conv2"]
  assert rows[11][1:4] == ("fc1", "Dense", (512,))
  assert sum(r[4] for r in rows) == 2_169_770 + 1_408  # trainable + BatchNorm statistics


def test_flops_of_lenet5_from_xla_cost_analysis():
  s = inspect.summarize("lenet5")
  macs = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10  # 416,520
  assert 2 * macs <= s.flops < 2 * macs * 1.15  # 2 FLOPs per multiply-add, plus bias / ReLU / pools
  assert (s.trainable, s.non_trainable) == (61_706, 0)


def test_summarize_cli(forkserver):  # forks of the preloaded fork server: real processes, no import time
  summarize = lambda *argv: forkserver.run(list(argv), module="experiments.summarize")
  proc = summarize("--model=resnet20", "--layers")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "trainable params: 269,722  non-trainable: 1,376" in proc.stdout
  assert "   0  input" in proc.stdout and "   1  stem_conv" in proc.stdout
  bad = summarize("--model=resnet21")
  lines = bad.stderr.strip().splitlines()
  assert bad.returncode != 0 and len(lines) == 1
  assert lines[0].startswith("error: unknown model 'resnet21'; did you mean") and "resnet20" in lines[0]
  size = summarize("--model=resnet20", "--input_size=32,x")
  assert size.returncode == 2 and size.stderr.strip() == (
      "error: --input_size=32,x: expected H,W or H,W,C as positive integers")
