"""A model's layer graph as Keras' `plot_model` draws it (the journal's architecture diagrams): one
box per layer -- name, type, output shape -- and an arrow for every tensor passed on, so that the
branches and merges of Inception modules and residual blocks show.

The graph comes from the model's forward pass traced abstractly (nothing is computed): every leaf
module (Conv, Dense, BatchNorm...) is a box; so is each operation between modules that a Keras
model would hold as a layer -- an activation, a pooling, a flatten, an add or a concatenation. Other
operations (casts, broadcasts) pass their input's producer on. Flax runs every module method under a
`jax.named_scope` of its name, so each traced operation knows which module it belongs to.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.extend.core import Literal

from cnnzoo.errors import UserError
from cnnzoo.models.inspect import build, model_layers

# operations outside a leaf module that become a box of their own (Keras has a layer for each)
_OPS = {"reduce_window_max": "MaxPooling2D", "reduce_window_sum": "AveragePooling2D", "concatenate": "Concatenate",
        "reduce_max": "GlobalMaxPooling2D", "reduce_sum": "GlobalAveragePooling2D", "dot_general": "Dense",
        "conv_general_dilated": "Conv2D", "pad": "ZeroPadding2D", "tanh": "Activation", "logistic": "Activation",
        "exp": "Activation"}
_MERGES = {"add": "Add", "sub": "Subtract", "mul": "Multiply", "max": "Maximum"}  # of two activations
_CALLS = ("custom_jvp_call", "custom_vjp_call", "jit", "pjit", "closed_call")  # relu, cnnzoo's pools, jitted helpers


def _inner_primitives(eqn) -> list:
  """The primitives a call (custom_jvp / custom_vjp / jit) runs, depth first."""
  inner = eqn.params.get("call_jaxpr") or eqn.params.get("jaxpr")
  inner = getattr(inner, "jaxpr", inner)
  names = []
  for e in getattr(inner, "eqns", ()):
    names += _inner_primitives(e) if e.primitive.name in _CALLS else [e.primitive.name]
  return names


def _kind(eqn, activation_inputs: int) -> str | None:
  """The Keras layer type an operation between modules stands for; None: it passes its input on."""
  name = eqn.primitive.name
  if name in _CALLS:
    inner = _inner_primitives(eqn)
    return next((_OPS[p] for p in inner if p in _OPS and _OPS[p] != "Activation"), "Activation")
  if name in _MERGES:
    return _MERGES[name] if activation_inputs > 1 else ("Activation" if name == "max" else None)
  if name == "reshape" and len(eqn.outvars[0].aval.shape) < len(eqn.invars[0].aval.shape):
    return "Flatten"
  return _OPS.get(name)


@dataclasses.dataclass
class Node:
  name: str
  kind: str
  shape: tuple


@dataclasses.dataclass
class Graph:
  nodes: list  # Node; index 0 is the input
  edges: list  # (from index, to index), no duplicates, in call order


def layer_graph(name: str, input_shape=None, num_classes=None, **overrides) -> Graph:
  """The layer graph of one registered model (traced in training mode, so that its Dropout layers
  show; auxiliary classifiers, which the output does not depend on, are left out)."""
  model, _, shape = build(name, input_shape, num_classes, **overrides)
  return graph_of(model, shape)


def _traced(model: nn.Module, shape):
  """The jaxpr of `model` on (1, *shape) images in training mode (so that Dropout layers do something
  and get a box), the class name of every module path called, and the paths of its leaf layers."""
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *shape)), train=False))
  leaves = {"/".join(p): p for p in model_layers(model, shape).paths}
  kinds = {}

  def record(next_fun, args, kwargs, context):
    if context.method_name == "__call__" and context.module.path:
      kinds["/".join(context.module.path)] = type(context.module).__name__
    return next_fun(*args, **kwargs)

  x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
  def forward(v, image):
    return model.apply(v, image, train=True, rngs={"dropout": jax.random.key(0)}, mutable=True)[0]

  with nn.intercept_methods(record):
    closed = jax.make_jaxpr(forward)(variables, x)
  return closed.jaxpr, kinds, leaves


def graph_of(model: nn.Module, shape) -> Graph:
  """The layer graph of `model` on (1, *shape) images."""
  jaxpr, kinds, leaves = _traced(model, shape)
  image = jaxpr.invars[-1]
  nodes, edges, producer = [Node("input", "InputLayer", tuple(shape))], [], {image: 0}
  by_leaf, used = {}, {}

  def owner(eqn) -> str | None:
    scope = _scope(eqn)
    for depth in range(len(scope), 0, -1):
      if "/".join(scope[:depth]) in leaves:
        return "/".join(scope[:depth])
    return None

  def connect(sources, target):
    for s in sources:
      if s != target and (s, target) not in edges:
        edges.append((s, target))

  for eqn in jaxpr.eqns:
    inputs = [producer[v] for v in eqn.invars if not isinstance(v, Literal) and v in producer]
    leaf = owner(eqn)
    if leaf is not None:
      if leaf not in by_leaf:
        by_leaf[leaf] = len(nodes)
        nodes.append(Node(leaf, kinds.get(leaf, "Layer"), ()))
      index = by_leaf[leaf]
    elif inputs and (kind := _kind(eqn, len(set(inputs)))):
      base = "/".join(_scope(eqn) + [_snake(kind)])
      used[base] = used.get(base, 0) + 1  # Keras' names: activation, activation_1, ...
      index = len(nodes)
      nodes.append(Node(base + (f"_{used[base] - 1}" if used[base] > 1 else ""), kind, ()))
    elif inputs:
      for v in eqn.outvars:  # a cast, a broadcast, a scaling: the tensor still comes from its producer
        producer[v] = inputs[0]
      continue
    else:
      continue  # computed from the weights alone
    connect(inputs, index)
    for v in eqn.outvars:
      producer[v] = index
      nodes[index].shape = tuple(v.aval.shape[1:])
  output = producer.get(jaxpr.outvars[0])
  if output is None:
    raise UserError("the model's output does not depend on its input: nothing to draw")
  return _pruned(nodes, edges, output)


def _pruned(nodes, edges, output: int) -> Graph:
  """The graph of the nodes that reach `output`, renumbered."""
  used = _reaching(output, edges)
  keep = [i for i in range(len(nodes)) if i in used]
  renumber = {old: new for new, old in enumerate(keep)}
  return Graph([nodes[i] for i in keep], [(renumber[a], renumber[b]) for a, b in edges if a in used and b in used])


def _scope(eqn) -> list:
  """The module path an operation was traced in: its name stack without the top module's class
  name and without the scopes of methods other than __call__ ("PlainNet._run")."""
  return [part for part in str(eqn.source_info.name_stack).split("/")[1:] if "." not in part]


def _snake(kind: str) -> str:
  """MaxPooling2D -> max_pooling2d, as Keras names its layers."""
  return "".join("_" + c.lower() if c.isupper() and i and kind[i - 1].islower() else c.lower()
                 for i, c in enumerate(kind))


def _reaching(output: int, edges) -> set:
  """The nodes the output depends on (an auxiliary head traced in inference mode is left out)."""
  parents = {}
  for a, b in edges:
    parents.setdefault(b, []).append(a)
  seen, todo = {output}, [output]
  while todo:
    for p in parents.get(todo.pop(), []):
      if p not in seen:
        seen.add(p)
        todo.append(p)
  return seen


FORMATS = ("svg", "png", "pdf")


def draw(graph: Graph, path: str, title: str = "") -> None:
  """Writes `graph` to `path` (.svg, .png or .pdf) through Graphviz's dot, top to bottom as Keras'
  plot_model(show_shapes=True, show_layer_names=True) lays it out."""
  import os
  try:  # lazy: only --diagram needs the graphviz package
    import graphviz
  except ImportError:
    raise UserError("--diagram needs the graphviz Python package: pip install graphviz") from None
  stem, ext = os.path.splitext(path)
  if ext.lstrip(".").lower() not in FORMATS:
    raise UserError(f"--diagram={path}: give a .svg, .png or .pdf file name")
  dot = graphviz.Digraph(graph_attr={"rankdir": "TB", "label": title, "labelloc": "t", "fontsize": "16"},
                         node_attr={"shape": "record", "fontname": "Helvetica", "fontsize": "10"})
  for i, node in enumerate(graph.nodes):
    shape = "(None, " + ", ".join(map(str, node.shape)) + ")"
    dot.node(str(i), f"{{{_escape(node.name)} | {node.kind} | {shape}}}")
  for a, b in graph.edges:
    dot.edge(str(a), str(b))
  try:
    dot.render(outfile=path, format=ext.lstrip(".").lower(), cleanup=True)
  except graphviz.ExecutableNotFound:
    raise UserError("--diagram needs Graphviz's dot program: apt-get install graphviz (Debian, Ubuntu), "
                    "brew install graphviz (macOS) or conda install graphviz") from None
  finally:
    if os.path.exists(stem + ".gv"):  # the source dot writes beside the output
      os.remove(stem + ".gv")


def _escape(text: str) -> str:
  return "".join("\\" + c if c in "{}|<>" else c for c in text)
