"""Walk the top gradient path after a max-product backprop.

After `backprop(values_to_compute=(..., "max_path"))` (neuron granularity) the walk only
reads back-pointers: each names the consumer, its output element and the track (max or
min) the path continues on, so the hops' values multiply out exactly: hop.value = w ·
next_hop.value for the edge's partial w, and the first hop's value is the max over paths.

With only the operation-granular "max_grad", back-pointers say which consumer op won for
an element, not which of that op's output elements. Each hop then picks the output
element o with the largest single-edge contribution J[o, e]·(hi or lo)[o], where the
Jacobian column J[:, e] comes from one forward-mode product (jax.jvp) with a one-hot
tangent: exact for every primitive, and no dense Jacobian is ever built; but the hops'
product is not the reported value, as max_grad sums inside each op.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .node import on_cpu, value_of
from .semirings import MaxPath
from .tropical import DEFERRED


class Hop(NamedTuple):
    node: object            # the Node on the path
    index: tuple            # the element of that node
    value: float            # its max-product value (max_grad_of_output_wrt_node)

    @property
    def module_path(self):
        return self.node.module_path


def _jacobian_column(consumer, source, index):
    xs = [value_of(inp) for inp in consumer.inputs]
    slots = [k for k, inp in enumerate(consumer.inputs) if inp is source]
    tangent = jnp.zeros(source.shape, source.dtype).at[index].set(1)

    def f(t):
        args = [t if k in slots else x for k, x in enumerate(xs)]
        return consumer.op.impl(*args, **consumer.static)

    return jax.jvp(f, (source.val,), (tangent,))[1]


def top_path(node, index, max_hops=100_000, track="max"):
    """The hops from `node[index]` to the output along the max-product back-pointers.

    Follows the neuron-granular "max_path" pointers when that semiring ran (exact;
    `track="min"` walks the most negative path instead), else the operation-granular
    "max_grad" ones (see the module docstring).
    """
    index = tuple(int(i) for i in np.atleast_1d(index)) if node.shape else ()
    if node.max_path_of_output_wrt_node is not None:
        return _walk_max_path(node, index, max_hops, track)
    if node.max_grad_of_output_wrt_node is None:
        raise ValueError("top_path needs backprop(values_to_compute=(..., 'max_path')) (or 'max_grad') "
                         "without save_leaf_grads_only (or with the path's nodes retained)")
    hops = []
    for _ in range(max_hops):
        hi, hi_from = node.max_grad_of_output_wrt_node
        hops.append(Hop(node, index, float(hi[index])))
        winner = int(hi_from[index])
        if winner < 0:
            return hops
        consumer = node._consumers[winner]()
        if consumer is None:
            raise ValueError("the top path's next node was freed: keep a reference to the output "
                             "(or the model outputs) while walking paths")
        if consumer.max_grad_of_output_wrt_node is None:
            raise ValueError(f"the path leaves the retained nodes at {consumer!r}: retain it or "
                             "backprop without save_leaf_grads_only")
        column = _jacobian_column(consumer, node, index)
        c_hi, _ = consumer.max_grad_of_output_wrt_node
        c_lo, _ = consumer.max_neg_grad_of_output_wrt_node
        score = jnp.where(column != 0, jnp.maximum(column * c_hi, column * c_lo), -jnp.inf)  # existing edges only
        index = tuple(int(i) for i in np.unravel_index(int(jnp.argmax(score)), score.shape))
        node = consumer
    raise RuntimeError(f"top_path did not reach the output within {max_hops} hops")


_TRACKS = ("max_path_of_output_wrt_node", "min_path_of_output_wrt_node")


def source_of(node, flat_index, on_min=False):
    """The stored source code of node's element `flat_index` on a track, with a contraction's
    DEFERRED pointer recomputed from that consumer's row of edges (one small kernel)."""
    value, consumer, code = _stored(node, on_min, np.unravel_index(int(flat_index), node.shape) if node.shape else ())
    if code != DEFERRED:
        return code
    return int(_deferred_source(node, node._consumers[consumer](), flat_index, on_min))


def _deferred_source(node, consumer, flat_index, on_min):
    slots = tuple(k for k, inp in enumerate(consumer.inputs) if inp is node)
    xs = tuple(value_of(inp) for inp in consumer.inputs)
    (hi, hi_consumer, _), (lo, _, _) = (getattr(consumer, t) for t in _TRACKS)
    if isinstance(hi, jax.core.Tracer):
        return _source_in_row(consumer.op, consumer.static, slots, xs, hi, lo, hi_consumer, flat_index, on_min)
    kernel = _row_kernel(consumer.op, consumer.static, slots, xs)
    return kernel(xs, hi, lo, hi_consumer, jnp.int32(flat_index), jnp.asarray(on_min))


def _source_in_row(op, static, slots, xs, hi, lo, hi_consumer, flat_index, on_min):
    reached = hi_consumer != MaxPath.NO_PATH
    return op.max_times_source(slots, xs, static, (hi, lo, reached), flat_index, on_min)


_ROW_KERNELS = {}


def _row_kernel(op, static, slots, xs):
    """One jitted row search per (op, static params, slots, input shapes): a walk through BERT
    crosses the same few Linear shapes in every layer."""
    key = (op, tuple(sorted(static.items())), slots, tuple((jnp.shape(x), jnp.result_type(x)) for x in xs))
    if key not in _ROW_KERNELS:
        _ROW_KERNELS[key] = jax.jit(lambda xs, hi, lo, hi_consumer, flat_index, on_min: _source_in_row(
            op, static, slots, xs, hi, lo, hi_consumer, flat_index, on_min))
    return _ROW_KERNELS[key]


def _walk_max_path(node, index, max_hops, track):
    if track not in ("max", "min"):
        raise ValueError(f"track must be 'max' or 'min', not {track!r}")
    on_min = track == "min"
    hops = []
    for _ in range(max_hops):
        value, consumer, code = _stored(node, on_min, index)
        hops.append(Hop(node, index, value))
        if consumer == -1:
            return hops
        if consumer == -2 and np.isnan(value):
            raise ValueError(f"{node!r}{list(index)}: every path to the output has a NaN product (NaN, or inf "
                             "times 0, in the forward values or partials), so there is no top path")
        if consumer == -2:
            raise ValueError(f"{node!r}{list(index)} has no path to the output (its Jacobian entries on every "
                             "route are 0, or it does not feed the output)")
        following = node._consumers[consumer]()
        if following is None:
            raise ValueError("the top path's next node was freed: keep a reference to the output "
                             "(or the model outputs) while walking paths")
        if code == DEFERRED:
            flat = int(np.ravel_multi_index(index, node.shape)) if node.shape else 0
            code = int(_deferred_source(node, following, flat, on_min))
        node, on_min = following, bool(code % 2)
        index = tuple(int(i) for i in np.unravel_index(code // 2, node.shape)) if node.shape else ()
    raise RuntimeError(f"top_path did not reach the output within {max_hops} hops")


def _stored(node, on_min, index):
    """(value, consumer, source) of one element."""
    stored = getattr(node, _TRACKS[on_min])
    if stored is None:
        raise ValueError(f"the path leaves the retained nodes at {node!r}: retain it or backprop "
                         "without save_leaf_grads_only")
    value, consumer, source = (_element(a, index) for a in stored)
    return float(value), int(consumer), int(source)


def _element(array, index):
    """One element on the host. A CPU array is read in place (no copy, no kernel: ~10 µs where
    indexing on the device compiles a slice per shape and costs ~0.3 ms a read); elsewhere only
    the element leaves the device, as nodes can be large."""
    if on_cpu(array):
        return np.from_dlpack(array)[index]
    return array[index]


class PathTrace(NamedTuple):
    """The exact top path as arrays, one entry per node that could lie on it (`nodes`, in
    creation order): the flat element index where the path crosses the node (-1: it does not),
    and the path value there. Computed without reading anything on the host, so it runs inside
    jax.jit / jax.vmap (a compiled explanation computes its top path in the same program)."""

    nodes: list
    positions: jax.Array
    values: jax.Array

    def hops(self):
        """The path as Hops, output first, like reversed(top_path(...)); reads the arrays."""
        positions, values = np.asarray(self.positions), np.asarray(self.values)
        return [Hop(node, tuple(int(i) for i in np.unravel_index(int(p), node.shape)) if node.shape else (),
                    float(v))
                for node, p, v in zip(reversed(self.nodes), positions[::-1], values[::-1]) if p >= 0]


def trace_top_path(node, flat_index, track="max"):
    """top_path(node, index) after a "max_path" backprop, as a PathTrace of device arrays.

    `flat_index` (into node.ravel(), may be traced) starts the path. Inside a trace the walk is
    one `lax.while_loop`, a hop per iteration, whose body reads the current node's pointers
    through a `lax.switch` over the nodes: a few scalar reads per hop, and a program whose size
    grows with the number of nodes, not edges. (A per-edge propagation in creation order, tried
    first, made XLA use more than 5 GB to compile a single BERT layer.)
    """
    if track not in ("max", "min"):
        raise ValueError(f"track must be 'max' or 'min', not {track!r}")
    if node.max_path_of_output_wrt_node is None:
        raise ValueError("trace_top_path needs backprop(values_to_compute=(..., 'max_path')) first")
    nodes = path_nodes(node)
    if not isinstance(node.max_path_of_output_wrt_node[0], jax.core.Tracer):
        return _from_walk(nodes, node, flat_index, track)
    return _traced_walk(nodes, flat_index, track)


def _traced_walk(nodes, flat_index, track):
    dtype = nodes[0].max_path_of_output_wrt_node[0].dtype
    # next_node[k, c]: where consumer slot c of nodes[k] is in `nodes` (-1: freed, or not on any path)
    index_of = {id(n): k for k, n in enumerate(nodes)}
    next_node = np.full((len(nodes), max(1, max(len(n._consumers) for n in nodes))), -1, np.int32)
    for k, n in enumerate(nodes):
        for c, ref in enumerate(n._consumers):
            if ref() is not None and id(ref()) in index_of:
                next_node[k, c] = index_of[id(ref())]
    readers = [lambda at, on_min, n=n: _read(n, at, on_min, dtype) for n in nodes]

    def hop(state):
        k, position, on_min, positions, values, _ = state
        value, consumer, code = jax.lax.switch(k, readers, position, on_min)
        following = jnp.where(consumer >= 0, jnp.asarray(next_node)[k, jnp.maximum(consumer, 0)], -1)
        return (jnp.maximum(following, k), code // 2, code % 2 == 1, positions.at[k].set(position),
                values.at[k].set(value), following < 0)

    start = (jnp.int32(0), jnp.asarray(flat_index, jnp.int32), jnp.asarray(track == "min"),
             jnp.full(len(nodes), -1, jnp.int32), jnp.full(len(nodes), jnp.nan, dtype), jnp.asarray(False))
    _, _, _, positions, values, _ = jax.lax.while_loop(lambda state: ~state[5], hop, start)
    return PathTrace(nodes, positions, values)


def _read(node, at, on_min, dtype):
    """(value, consumer, source) of element `at` of one node on the given track, a DEFERRED
    source recomputed through a switch over the node's contraction consumers."""
    (hi, hi_consumer, hi_source), (lo, lo_consumer, lo_source) = (getattr(node, t) for t in _TRACKS)

    def pick(high, low):
        return jnp.where(on_min, low.ravel()[at], high.ravel()[at])

    consumer, code = pick(hi_consumer, lo_consumer), pick(hi_source, lo_source)
    consumers = [ref() for ref in node._consumers]
    if any(c is not None and getattr(c.op, "contraction", False) for c in consumers):
        def recompute(c):
            if c is None or not getattr(c.op, "contraction", False):
                return lambda: code
            return lambda: jnp.asarray(_deferred_source(node, c, at, on_min), jnp.int32)

        recomputed = jax.lax.switch(jnp.clip(consumer, 0, len(consumers) - 1), [recompute(c) for c in consumers])
        code = jnp.where(code == DEFERRED, recomputed, code)
    return pick(hi, lo).astype(dtype), consumer, code


def _from_walk(nodes, node, flat_index, track):
    """Outside a trace, the host walk: ~3 scalar reads per hop, where the traced walk's switch
    over every node would be a dispatch per node and hop."""
    start = np.unravel_index(int(flat_index), node.shape) if node.shape else ()
    on_path = {id(h.node): h for h in _walk_max_path(node, tuple(int(i) for i in start), 100_000, track)}
    positions = [int(np.ravel_multi_index(on_path[id(n)].index, n.shape)) if id(n) in on_path and n.shape
                 else (0 if id(n) in on_path else -1) for n in nodes]
    values = [on_path[id(n)].value if id(n) in on_path else np.nan for n in nodes]
    dtype = node.max_path_of_output_wrt_node[0].dtype
    return PathTrace(nodes, jnp.asarray(positions, jnp.int32), jnp.asarray(values, dtype))


def path_nodes(node):
    """node and every node downstream of it through recorded consumers, in creation order."""
    seen, stack = {id(node): node}, [node]
    while stack:
        for ref in stack.pop()._consumers:
            consumer = ref()
            if consumer is not None and id(consumer) not in seen and consumer.max_path_of_output_wrt_node is not None:
                seen[id(consumer)] = consumer
                stack.append(consumer)
    return sorted(seen.values(), key=lambda n: n._order)


