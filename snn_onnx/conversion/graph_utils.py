"""Small helpers on onnx-ir graphs shared by the conversion passes."""

from __future__ import annotations

import itertools

import numpy as np
import onnx_ir as ir

FLOAT_TYPES = {ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.DOUBLE}


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The constant behind a value (initializer or Constant node), else None."""
    if value is None:
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def is_const(value: ir.Value | None) -> bool:
    return value is None or const_array(value) is not None


def is_float(value: ir.Value) -> bool:
    return value.dtype is None or value.dtype in FLOAT_TYPES


class Namer:
    """Hands out value/node names not yet used in a graph (deterministic, readable)."""

    def __init__(self, graph: ir.Graph):
        self._used: set[str] = set()
        for node in ir.traversal.RecursiveGraphIterator(graph):
            if node.name:
                self._used.add(node.name)
            self._used.update(v.name for v in node.outputs if v.name)
        self._used.update(v.name for v in graph.inputs if v.name)
        self._used.update(graph.initializers)

    def __call__(self, base: str) -> str:
        base = base or "snn"
        for i in itertools.count():
            name = base if i == 0 else f"{base}_{i}"
            if name not in self._used:
                self._used.add(name)
                return name
        raise AssertionError("unreachable")


def add_initializer(graph: ir.Graph, namer: Namer, base: str, array: np.ndarray) -> ir.Value:
    name = namer(base)
    value = ir.Value(name=name, const_value=ir.tensor(np.ascontiguousarray(array), name=name))
    value.shape = ir.Shape(array.shape)
    value.dtype = ir.DataType.from_numpy(array.dtype)
    graph.register_initializer(value)
    return value


def insert_after_producer(graph: ir.Graph, value: ir.Value, nodes: list[ir.Node]) -> None:
    """Insert nodes right after the node that produces value (first in the graph when value
    is a graph input or an initializer), so they can use it before any of its consumers."""
    producer = value.producer()
    if producer is not None:
        graph.insert_after(producer, nodes)
    elif (first := next(iter(graph), None)) is not None:
        graph.insert_before(first, nodes)
    else:
        graph.extend(nodes)


def make_node(
    graph_namer: Namer,
    op_type: str,
    inputs: list[ir.Value | None],
    attributes: dict | None = None,
    *,
    domain: str = "",
    num_outputs: int = 1,
    name: str,
    output_names: list[str] | None = None,
) -> ir.Node:
    node = ir.node(
        op_type,
        inputs,
        attributes,
        domain=domain,
        num_outputs=num_outputs,
        name=graph_namer(name),
    )
    names = output_names or [f"{node.name}_out{i}" if i else f"{node.name}_out" for i in range(num_outputs)]
    for out, base in zip(node.outputs, names):
        out.name = graph_namer(base)
    return node


def producers_before(graph: ir.Graph) -> dict[ir.Node, int]:
    """Topological position of every node (the graph is kept sorted)."""
    return {node: i for i, node in enumerate(graph)}


def _describes_shapes(node: ir.Node) -> bool:
    return node.op_type in ("Shape", "Size") and node.domain in ("", "ai.onnx")


def propagate(graph: ir.Graph, known: dict, transfer, start=None) -> dict:
    """Forward data flow in graph order, the one loop every analysis shares: for each node with
    an input in ``known`` (or for which ``start(node)`` holds), ``transfer(node, {input: fact})``
    returns the facts of its outputs (a dict, or None for none). Shape / Size end a data path:
    their outputs describe shapes, not the values that flowed in. ``known`` is updated in place
    and returned."""
    for node in graph:
        if _describes_shapes(node):
            continue
        facts = {v: known[v] for v in node.inputs if v is not None and v in known}
        if not facts and not (start is not None and start(node)):
            continue
        out = transfer(node, facts)
        if out:
            known.update(out)
    return known


def reachable(graph: ir.Graph, seeds=(), starts=None, keep=None) -> set[ir.Value]:
    """Values computed from ``seeds`` through data paths (see :func:`propagate`), plus the
    outputs of nodes for which ``starts(node)`` holds and everything computed from them;
    ``keep(value)`` filters which outputs join."""
    def transfer(node: ir.Node, _facts: dict) -> dict:
        return {o: True for o in node.outputs if keep is None or keep(o)}

    return set(propagate(graph, {v: True for v in seeds}, transfer, start=starts))


def ancestors_within(members: list[ir.Node], y: ir.Value, stop: ir.Value | None = None) -> list[ir.Node]:
    """The ``members`` that ``y`` depends on through other members (in ``members``' order),
    not looking past ``stop``; the others compute values ``y`` does not use (e.g. a Dropout mask)."""
    mset = set(members)
    keep: set[ir.Node] = set()
    stack = [y.producer()]
    while stack:
        n = stack.pop()
        if n is None or n in keep or n not in mset:
            continue
        keep.add(n)
        stack.extend(v.producer() for v in n.inputs if v is not None and v is not stop)
    return [m for m in members if m in keep]
