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


def test_layer_graphs_show_chains_branches_and_merges():
  """The journal's architecture diagrams (Keras' plot_model): LeNet is a chain of 12 layers; each of
  MiniGoogLeNet's 10 concatenations joins its branches (2 in its Inception modules: 1x1 and 3x3,
  or conv and pool in a downsample); each of ResNet20's 9 residual adds joins two paths. Every
  other box has one input, and the graph ends in the classifier."""
  import collections
  from cnnzoo.models import diagram
  lenet = diagram.layer_graph("lenet5")
  assert [n.kind for n in lenet.nodes] == ["InputLayer", "Conv", "Activation", "MaxPooling2D", "Conv", "Activation",
                                          "MaxPooling2D", "Flatten", "Dense", "Activation", "Dense", "Activation",
                                          "Dense"]
  assert lenet.edges == [(i, i + 1) for i in range(12)]
  assert [n.name for n in lenet.nodes][2:4] == ["activation", "max_pooling2d"] and lenet.nodes[-1].shape == (10,)
  assert lenet.nodes[7].shape == (400,)
  for name, merge, count in (("minigooglenet", "Concatenate", 10), ("resnet20_v1", "Add", 9)):
    graph = diagram.layer_graph(name)
    into = collections.Counter(b for _, b in graph.edges)
    merges = [i for i, n in enumerate(graph.nodes) if n.kind == merge]
    assert len(merges) == count and all(into[i] == 2 for i in merges), (name, [into[i] for i in merges])
    assert all(into[i] == 1 for i, n in enumerate(graph.nodes) if i and n.kind != merge), name
    assert graph.nodes[-1].kind == "Dense" and graph.nodes[-1].shape == (10,)
  first = diagram.layer_graph("minigooglenet")
  branch = [first.nodes[b].name for a, b in first.edges if first.nodes[a].name == "stem/activation"]
  assert branch == ["inception1_1x1/conv", "inception1_3x3/conv"]


def test_summarize_draws_the_diagram_with_graphviz(tmp_path, forkserver):
  import shutil
  out = tmp_path / "minigooglenet.svg"
  child = forkserver.run(["--model=minigooglenet", f"--diagram={out}"], module="experiments.summarize")
  if shutil.which("dot") is None:  # the line a user without Graphviz gets
    assert child.returncode == 2 and child.stderr.strip().startswith("error: --diagram needs Graphviz's dot program")
    return
  assert child.returncode == 0, child.stderr
  assert child.stdout.strip() == f"wrote {out}: 73 boxes, 82 arrows"
  svg = out.read_text()
  assert svg.count("<g id=\"node") == 73 and svg.count("<g id=\"edge") == 82
  assert "inception1_3x3/conv" in svg and "(None, 32, 32, 64)" in svg
  assert sorted(p.name for p in tmp_path.iterdir()) == ["minigooglenet.svg"]  # dot's source file removed
