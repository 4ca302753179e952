"""One iterative reverse-topological sweep for any set of semirings.

Creation order is a topological order (inputs exist before the ops that use them), so
the sweep is: collect the output's ancestors, sort by creation, walk backwards. Each op
node runs ONE cached jitted kernel that pulls every semiring's state to each of its
inputs and ⊕-accumulates it there. Values stay on the device; nothing here reads them.
"""

import weakref

import jax.numpy as jnp

from .node import Node, register_semiring_fields
from .primitive import backward_kernel
from .semirings import resolve


def ancestors(root):
    """Every Node reachable from root through inputs (root included), without recursion."""
    seen = {id(root): root}
    stack = [root]
    while stack:
        node = stack.pop()
        for inp in node.inputs:
            if isinstance(inp, Node) and id(inp) not in seen:
                seen[id(inp)] = inp
                stack.append(inp)
    return list(seen.values())


def _check_float(nodes):
    for node in nodes:
        if not jnp.issubdtype(node.dtype, jnp.inexact):
            raise TypeError(f"backprop needs floating-point nodes, but {node!r} has dtype {node.dtype}; "
                            "cast it (bf.func.astype / Node(val.astype(float))) or pass it as a constant array")


def _retention(retain):
    if retain is None:
        return lambda node: False
    if callable(retain):
        return retain
    kept = {id(n) for n in retain}
    return lambda node: id(node) in kept


def _stored_state(node, semiring):
    values = [getattr(node, f, None) for f in semiring.fields]
    return None if any(v is None for v in values) else semiring.from_fields(values)


def _store(node, semirings, states):
    for semiring, state in zip(semirings, states):
        for field, value in zip(semiring.fields, semiring.to_fields(state)):
            setattr(node, field, value)


def _initial_state(node, semirings):
    """What earlier backprops left on a leaf (so this one ⊕-accumulates into it, like torch's
    .grad), or None. Non-leaf values are recomputed by every sweep, never accumulated."""
    if node.op is not None:
        return None
    stored = [_stored_state(node, s) for s in semirings]
    return None if any(s is None for s in stored) else tuple(stored)


def backprop(root, values_to_compute, save_leaf_grads_only=False, retain=None, inputs=None):
    semirings = resolve(values_to_compute)
    for semiring in semirings:
        register_semiring_fields(semiring.fields)
    order = sorted(ancestors(root), key=lambda n: n._order, reverse=True)
    _check_float(order)
    keep = _retention(retain)
    wanted = None
    if inputs is not None:
        wanted = _on_paths_from(inputs, order)
        if id(root) not in wanted:
            raise ValueError("backprop(inputs=...): none of the given inputs is an ancestor of this node")
        order = [n for n in order if id(n) in wanted]
        given = {id(n) for n in inputs}
        keep = (lambda kept: lambda node: id(node) in given or kept(node))(keep)
    track_parents = any(s.tracks_parents for s in semirings)

    if track_parents:
        _register_consumers(order, wanted)
    states = {id(root): tuple(tuple(s.seed(root.val)) for s in semirings)}
    for node in order:
        if node.op is None:
            continue
        up = states[id(node)]
        distinct, groups = _distinct_inputs(node.inputs, node.op.differentiable, wanted)
        if distinct:
            acc = [states.get(id(u)) or _initial_state(u, semirings) for u in distinct]
            first = tuple(a is None for a in acc)
            consumer = tuple(_consumer_index(u, node) if track_parents else 0 for u in distinct)
            xs = tuple(inp.val if isinstance(inp, Node) else inp for inp in node.inputs)
            kernel = backward_kernel(node.op, node.static, semirings, groups, first, xs)
            new = kernel(xs, node.val, up, tuple(acc), consumer)
            for u, state in zip(distinct, new):
                states[id(u)] = state
        if not save_leaf_grads_only or keep(node):
            _store(node, semirings, up)
        del states[id(node)]  # consumed: every consumer of node came before it in the sweep
    for node in order:
        if node.op is None and id(node) in states:
            _store(node, semirings, states.pop(id(node)))


def _on_paths_from(inputs, order):
    """ids of the nodes on some path from one of `inputs` to the root (order: newest first).

    As torch's backward(inputs=...): everything else — e.g. every weight, when the inputs are
    the embeddings — is treated as a constant, and no kernel runs for it."""
    wanted = {id(n) for n in inputs}
    for node in reversed(order):  # creation order: a node's inputs are decided before it
        if id(node) not in wanted and node.op is not None and any(
                id(u) in wanted for u in _distinct_inputs(node.inputs, node.op.differentiable)[0]):
            wanted.add(id(node))
    return wanted


def _distinct_inputs(inputs, differentiable, wanted=None):
    """The distinct differentiable Node inputs (among `wanted` ids, if given), and which slots each one fills."""
    slots = {}
    nodes = {}
    for k, inp in enumerate(inputs):
        if (isinstance(inp, Node) and (differentiable is None or k in differentiable)
                and (wanted is None or id(inp) in wanted)):
            slots.setdefault(id(inp), []).append(k)
            nodes[id(inp)] = inp
    return list(nodes.values()), tuple(tuple(s) for s in slots.values())


def _register_consumers(order, wanted=None):
    """Give consumers their get_parents() positions in creation order (order is newest first),
    so a max-product tie, which goes to the lower position, goes to the earliest-made consumer."""
    for node in reversed(order):
        if node.op is not None:
            for u in _distinct_inputs(node.inputs, node.op.differentiable, wanted)[0]:
                _consumer_index(u, node)


def _consumer_index(node, consumer):
    """Position of consumer in node.get_parents(), appending it the first time."""
    for i, ref in enumerate(node._consumers):
        if ref() is consumer:
            return i
    node._consumers.append(weakref.ref(consumer))
    return len(node._consumers) - 1
