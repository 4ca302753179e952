"""Max-times transposes: the neuron-granular max-product through one op, per Jacobian family.

An op's edges are its nonzero Jacobian entries w = ∂out[o]/∂x[e] (one set per input slot;
an input in two slots has parallel edges). Pulling the state (hi, lo) of the op's output
to an input element e keeps, over the edges from e to an output element o that the sweep
reached, the best single continuation:

    hi[e] = max over edges of max(w·hi[o], w·lo[o])      lo[e] = min over edges of min(...)

and a source code 2·o + track naming the winner (track 1: the path goes on along o's min
track, as a negative w swaps them); -1 where e has no edge to a reached element. Ties go to
the lowest code. Contractions compute values only and mark found elements DEFERRED: carrying
a running argmax through their reductions cost 3-4x the values alone, and a walk needs the
winner of a few elements only, which `einsum_source` recomputes from one row of edges. Existence is the code, never the value: a path worth ±inf is a path. A
path whose product is NaN (0·inf, or NaN in the forward) is skipped, as numpy's nanmax
skips NaN; MaxPath marks an element whose every path is NaN (see semirings.py). Nothing here
is dense: each family reduces over exactly its edges —
elementwise and contractions over broadcast axes (a max-times einsum), copies (reshape,
getitem, concat, ...) by a segment max over the outputs that copy one input element,
spreads (sums, reduce_max) by gathering the one output each input element feeds.
"""

import math

import jax
import jax.numpy as jnp

NO_SOURCE = -1
# a source a contraction did not compute: `einsum_source` recomputes it for the elements a walk visits
DEFERRED = -3


class MaxTimes:
    """The edge 'map' a neuron-granular semiring asks ops for: their max-times transpose.

    φ-VJPs take a cotangent g; a max-times transpose takes the whole (hi, lo, reached) state
    and returns (hi, lo, hi_source, lo_source) shaped like the input.
    """

    name = "MAX_TIMES"

    def __repr__(self):
        return self.name


MAX_TIMES = MaxTimes()


def better(value, code, other, other_code, beats):
    """value (with code) wins over other: it exists and the other does not, or it beats it,
    or ties it with the lower code."""
    exists, other_exists = code >= 0, other_code >= 0
    return exists & (~other_exists | beats(value, other) | ((value == other) & (code < other_code)))


def _candidates(w, hi, lo, code):
    """Per edge (aligned, broadcastable arrays): its best and worst continuation and their
    codes; NO_SOURCE where there is no edge (w = 0, or code < 0: an unreached output) and
    where the product is NaN."""
    positive = w > 0
    via_hi, via_lo = w * hi, w * lo
    best, worst = jnp.where(positive, via_hi, via_lo), jnp.where(positive, via_lo, via_hi)
    edge = (w != 0) & (code >= 0) & ~jnp.isnan(best) & ~jnp.isnan(worst)
    return (jnp.where(edge, best, -jnp.inf), jnp.where(edge, 2 * code + jnp.where(positive, 0, 1), NO_SOURCE),
            jnp.where(edge, worst, jnp.inf), jnp.where(edge, 2 * code + jnp.where(positive, 1, 0), NO_SOURCE))


def _finish(best, best_code, worst, worst_code, dtype):
    """No edge → value 0 (and code NO_SOURCE, already)."""
    found = best_code >= 0
    return (jnp.where(found, best, 0).astype(dtype), jnp.where(found, worst, 0).astype(dtype),
            best_code.astype(jnp.int32), worst_code.astype(jnp.int32))


def _arg_reduce(values, codes, axes, beats, empty):
    """The winning (value, code) over axes, by `better`: one variadic XLA reduction."""
    if not axes:
        return values, codes

    def pick(a, b):
        take_b = better(b[0], b[1], a[0], a[1], beats)
        return jnp.where(take_b, b[0], a[0]), jnp.where(take_b, b[1], a[1])

    start = (jnp.array(empty, values.dtype), jnp.array(NO_SOURCE, codes.dtype))
    return jax.lax.reduce((values, codes), start, pick, tuple(axes))


# Past this many elements the broadcast space is walked one reduced index at a time with
# elementwise running max/argmax (a lax.scan): 4-10x faster than XLA's argmax reduction on
# CPU, and the space (e.g. tokens x hidden x vocabulary for the decoder) is never built.
_SCAN_ABOVE = 1 << 20
# Steps over at least this many elements are unrolled by _UNROLL: on BERT's Linear shapes
# (16-128 tokens x 384/1536 units) 1.3-2.5x faster for ~0.3 s more compile. At 1536 elements
# a step it made no difference; narrow steps (the decoder's 384 units, scanned over 30522
# words) ran 1.3x slower unrolled.
_UNROLL_ABOVE, _UNROLL = 1 << 12, 8


def reduce_to(w, hi, lo, reached, code, shape):
    """Edges laid out on a broadcast space (elementwise ops, contractions): reduce the
    candidates down to the input's `shape` (the transpose of broadcasting, under max)."""
    full = jnp.broadcast_shapes(*(jnp.shape(a) for a in (w, hi, lo, reached, code)))
    extra = len(full) - len(shape)
    axes = tuple(range(extra)) + tuple(extra + i for i, n in enumerate(shape) if n == 1 and full[extra + i] != 1)
    if axes and math.prod(full) > _SCAN_ABOVE:
        unreached_nan = (jnp.where(reached, a, jnp.nan) for a in (hi, lo))
        best, best_code, worst, worst_code = _scan_reduce((w, *unreached_nan, code), full, axes)
    else:
        candidates = _candidates(w, hi, lo, jnp.where(reached, code, NO_SOURCE))
        best, best_code, worst, worst_code = (jnp.broadcast_to(a, full) for a in candidates)
        best, best_code = _arg_reduce(best, best_code, axes, jnp.greater, -jnp.inf)
        worst, worst_code = _arg_reduce(worst, worst_code, axes, jnp.less, jnp.inf)
    return _finish(best.reshape(shape), best_code.reshape(shape), worst.reshape(shape),
                   worst_code.reshape(shape), hi.dtype)


def _scan_reduce(arrays, full, axes):
    """Running max/min over the reduced axes (flattened, in order, so ties keep the first).
    Unreached outputs come as NaN hi/lo: they then lose like non-edges, with no mask read."""
    kept_shape = tuple(full[a] for a in range(len(full)) if a not in axes)
    steps = math.prod(full[a] for a in axes)
    fixed, scanned = _scan_layout(arrays, full, axes)

    def step(carry, sliced):
        parts = [sliced[k] if k in sliced else fixed[k] for k in range(len(arrays))]
        w, hi, lo, code = parts
        positive = w > 0
        via_hi, via_lo = w * hi, w * lo
        # no edge → NaN, the one value that loses every comparison; the carry starts at NaN,
        # so the first edge is taken whatever its value (±inf included), and `best <= top`
        # is False only against that NaN start. Strict: ties keep the earlier, lower code.
        nonzero = w != 0
        best = jnp.where(nonzero, jnp.where(positive, via_hi, via_lo), jnp.nan)
        worst = jnp.where(nonzero, jnp.where(positive, via_lo, via_hi), jnp.nan)
        top, top_code, bottom, bottom_code = carry
        up = (best == best) & ~(best <= top)
        down = (worst == worst) & ~(worst >= bottom)
        return (jnp.where(up, best, top), jnp.where(up, 2 * code + jnp.where(positive, 0, 1), top_code),
                jnp.where(down, worst, bottom), jnp.where(down, 2 * code + jnp.where(positive, 1, 0), bottom_code)), None

    dtype = jnp.result_type(arrays[0], arrays[1])
    start = (jnp.full(kept_shape, jnp.nan, dtype), jnp.full(kept_shape, NO_SOURCE, jnp.int32),
             jnp.full(kept_shape, jnp.nan, dtype), jnp.full(kept_shape, NO_SOURCE, jnp.int32))
    unroll = _UNROLL if math.prod(kept_shape) >= _UNROLL_ABOVE else 1
    return jax.lax.scan(step, start, scanned, unroll=min(unroll, steps))[0]


def elementwise(partial, state, shape):
    hi, lo, reached = state
    code = jnp.arange(hi.size, dtype=jnp.int32).reshape(hi.shape)
    return reduce_to(jnp.broadcast_to(partial, hi.shape), hi, lo, reached, code, shape)


def spread(weight, destination, state):
    """Each input element feeds at most one output element, `destination` (flat, per input
    element) with Jacobian entry `weight`: gather that output's state."""
    hi, lo, reached = (a.reshape(-1)[destination] for a in state)
    best, best_code, worst, worst_code = _candidates(weight, hi, lo, jnp.where(reached, destination, NO_SOURCE))
    return _finish(best, best_code, worst, worst_code, state[0].dtype)


def copy(weight, source, state, size):
    """Each output element copies at most one input element: `source` (per output element,
    flat input index + 1, 0 for none, e.g. padding). A segment max over the outputs that
    copy the same input element; the winner's code is the lowest one reaching that max."""
    hi, lo, reached = state
    code = jnp.where(reached, jnp.arange(hi.size, dtype=jnp.int32).reshape(hi.shape), NO_SOURCE)
    best, best_code, worst, worst_code = (a.reshape(-1) for a in _candidates(weight, hi, lo, code))
    segments = source.reshape(-1)
    top, top_code = _segment_best(best, best_code, segments, size + 1, jax.ops.segment_max)
    bottom, bottom_code = _segment_best(worst, worst_code, segments, size + 1, jax.ops.segment_min)
    return top[1:], top_code[1:], bottom[1:], bottom_code[1:]


def _segment_best(values, codes, segments, n, reduce):
    """Per segment, the best existing candidate and its lowest code."""
    best = reduce(values, segments, num_segments=n)
    never = jnp.iinfo(jnp.int32).max
    wins = (codes >= 0) & (values == best[segments])
    code = jax.ops.segment_min(jnp.where(wins, codes, never), segments, num_segments=n)
    return best, jnp.where(code == never, NO_SOURCE, code)


def finish_copy(result, shape, dtype):
    best, best_code, worst, worst_code = (a.reshape(shape) for a in result)
    return _finish(best, best_code, worst, worst_code, dtype)


def merge(a, b):
    """Two slots' results for one input (parallel edges): the better one, ties to the lower code
    (to the first slot between two DEFERRED codes: its source is recomputed over both slots)."""
    hi_a, lo_a, hi_code_a, lo_code_a = a
    hi_b, lo_b, hi_code_b, lo_code_b = b
    ranked = [jnp.where(c == DEFERRED, 0, c) for c in (hi_code_a, lo_code_a, hi_code_b, lo_code_b)]
    take_hi = better(hi_b, ranked[2], hi_a, ranked[0], jnp.greater)
    take_lo = better(lo_b, ranked[3], lo_a, ranked[1], jnp.less)
    return (jnp.where(take_hi, hi_b, hi_a), jnp.where(take_lo, lo_b, lo_a),
            jnp.where(take_hi, hi_code_b, hi_code_a), jnp.where(take_lo, lo_code_b, lo_code_a))


# -- contractions: a max-times einsum over the op's full index space --------------------

def _to_space(a, term, letters):
    """a (indexed by `term`) laid out on the index space `letters`, size 1 where it has no letter."""
    order = sorted(range(len(term)), key=lambda i: letters.index(term[i]))
    a = jnp.transpose(a, order)
    return a.reshape(tuple(a.shape[order.index(term.index(c))] if c in term else 1 for c in letters))


def _from_space(a, term, letters):
    order = sorted(range(len(term)), key=lambda i: letters.index(term[i]))
    sorted_shape = tuple(a.shape[letters.index(term[i])] for i in order)
    return jnp.transpose(a.reshape(sorted_shape), tuple(order.index(i) for i in range(len(term))))


def _layout(subscripts):
    """(terms, unique letters per term, output, the index space's letters: output's first)."""
    inputs, output = subscripts.split("->")
    terms = inputs.split(",")
    unique = ["".join(dict.fromkeys(t)) for t in terms]
    letters = output + "".join(dict.fromkeys(c for t in unique for c in t if c not in output))
    return terms, unique, output, letters


def einsum(subscripts, k, xs, state, edges):
    """Max-times transpose of a two-operand einsum with respect to operand k, values only.

    `edges` (shaped like operand k) counts each element's edges into reached outputs (a plain
    transpose of 0/1 entries): an element with none has no path, whatever its running max says
    (a path worth -inf is a path). Sources come back DEFERRED where a path exists.
    A letter repeated inside a term (`ii,i->i`) is a diagonal: the weight operand is read on
    it, and operand k's off-diagonal elements have no edge."""
    terms, unique, output, letters = _layout(subscripts)
    hi, lo, reached = (_to_space(a, output, letters) for a in state)
    weight = _to_space(_diagonal(xs[1 - k], terms[1 - k]), unique[1 - k], letters)
    sizes = dict(zip(terms[k], jnp.shape(xs[k])))
    shape = tuple(sizes[c] if c in sizes else 1 for c in letters)
    top, bottom = (_from_space(a, unique[k], letters) for a in reduce_values(weight, hi, lo, reached, shape))
    if unique[k] != terms[k]:
        on_diagonal = tuple(jnp.arange(sizes[c]).reshape([-1 if d == c else 1 for d in unique[k]]) for c in terms[k])
        top, bottom = (jnp.zeros(jnp.shape(xs[k]), a.dtype).at[on_diagonal].set(a) for a in (top, bottom))
    found = edges > 0
    source = jnp.where(found, DEFERRED, NO_SOURCE).astype(jnp.int32)
    dtype = state[0].dtype
    return jnp.where(found, top, 0).astype(dtype), jnp.where(found, bottom, 0).astype(dtype), source, source


def reduce_values(w, hi, lo, reached, shape):
    """Per element of `shape`, the max and min over its edges (w != 0, to a reached output) and
    both tracks of w·hi and w·lo, skipping NaN products; -inf / inf where none."""
    full = jnp.broadcast_shapes(*(jnp.shape(a) for a in (w, hi, lo, reached)))
    extra = len(full) - len(shape)
    axes = tuple(range(extra)) + tuple(extra + i for i, n in enumerate(shape) if n == 1 and full[extra + i] != 1)
    # NaN is the one value that loses every comparison below: non-edges and unreached outputs become NaN
    w = jnp.where(w == 0, jnp.nan, w)
    hi, lo = jnp.where(reached, hi, jnp.nan), jnp.where(reached, lo, jnp.nan)
    if axes and math.prod(full) > _SCAN_ABOVE:
        top, bottom = _scan_values((w, hi, lo), full, axes)
    else:
        via = [jnp.broadcast_to(w * a, full) for a in (hi, lo)]
        top = jnp.max(jnp.stack([jnp.where(v == v, v, -jnp.inf) for v in via]), axis=(0, *(a + 1 for a in axes)))
        bottom = jnp.min(jnp.stack([jnp.where(v == v, v, jnp.inf) for v in via]), axis=(0, *(a + 1 for a in axes)))
    return top.reshape(shape), bottom.reshape(shape)


# Steps of the values-only scan run in chunks of this many, unrolled by hand in one loop body:
# on BERT's Linear shapes 16 ran 2.5-4x faster than the argmax scan; 4 and 8 ran 3x slower
# than 16 (XLA split the body), 32 no faster than 16 and slower to compile.
_CHUNK = 16


def _scan_layout(arrays, full, axes):
    """Arrays on a broadcast space, for a scan over its reduced axes: those without the reduced
    axes as they are (`fixed`, broadcastable over the kept axes), the others with every reduced
    index flattened onto a leading step axis, in order (`scanned`)."""
    kept = [a for a in range(len(full)) if a not in axes]
    steps = math.prod(full[a] for a in axes)
    fixed, scanned = {}, {}
    for k, a in enumerate(arrays):
        a = jnp.reshape(a, (1,) * (len(full) - jnp.ndim(a)) + jnp.shape(a))
        if all(a.shape[i] == 1 for i in axes):
            fixed[k] = a.reshape(tuple(a.shape[i] for i in kept))
        else:
            a = jnp.broadcast_to(a, tuple(full[i] if i in axes else a.shape[i] for i in range(len(full))))
            scanned[k] = jnp.transpose(a, list(axes) + kept).reshape((steps,) + tuple(a.shape[i] for i in kept))
    return fixed, scanned


def _scan_values(arrays, full, axes):
    """reduce_values over a large space: a lax.scan over the reduced axes (flattened), the
    running max/min kept elementwise on the other axes; the space is never built."""
    steps = math.prod(full[a] for a in axes)
    chunk = min(_CHUNK, steps)
    padded = -(-steps // chunk) * chunk
    fixed, scanned = _scan_layout(arrays, full, axes)
    for k, a in scanned.items():  # NaN steps pad the last chunk: a NaN product is never taken
        a = jnp.pad(a, [(0, padded - steps)] + [(0, 0)] * (a.ndim - 1), constant_values=jnp.nan)
        scanned[k] = a.reshape((padded // chunk, chunk) + a.shape[1:])

    def step(carry, sliced):
        top, bottom = carry
        for i in range(chunk):
            w, hi, lo = (sliced[k][i] if k in sliced else fixed[k] for k in range(3))
            for v in (w * hi, w * lo):  # a NaN compares False: never taken
                top, bottom = jnp.where(v > top, v, top), jnp.where(v < bottom, v, bottom)
        return (top, bottom), None

    kept_shape = tuple(full[a] for a in range(len(full)) if a not in axes)
    dtype = jnp.result_type(*arrays)
    start = (jnp.full(kept_shape, -jnp.inf, dtype), jnp.full(kept_shape, jnp.inf, dtype))
    return jax.lax.scan(step, start, scanned)[0]


def einsum_source(subscripts, slots, xs, state, flat_index, on_min):
    """The source code (2·o + track) of the best edge from element `flat_index` of the operand
    in `slots` (the max track, or the min track if `on_min`), as `einsum` ranks them: the winner
    over every edge and track, ties to the lowest code, NO_SOURCE if none. Reads one row of
    edges: the element's own letters are fixed. Traceable (index and track may be tracers)."""
    terms, unique, output, letters = _layout(subscripts)
    hi, lo, reached = (_to_space(a, output, letters) for a in state)
    code = _to_space(jnp.arange(state[0].size, dtype=jnp.int32).reshape(state[0].shape), output, letters)
    best = None
    for k in slots:
        weight = _to_space(_diagonal(xs[1 - k], terms[1 - k]), unique[1 - k], letters)
        coords = jnp.unravel_index(flat_index, jnp.shape(xs[k]))
        at = {}
        on_diagonal = jnp.asarray(True)
        for c, i, n in zip(terms[k], coords, jnp.shape(xs[k])):
            if n > 1:  # a size-1 axis that broadcasts: the element's edges span the whole axis
                on_diagonal &= at.setdefault(c, i) == i
        row = [_fix(a, at, letters) for a in (weight, hi, lo, reached, code)]
        found = _row_best(*row, on_min)
        found = (found[0], jnp.where(on_diagonal, found[1], NO_SOURCE))
        best = found if best is None else _better_of(best, found, on_min)
    return best[1]


def _fix(a, at, letters):
    """a on the index space with the given letters fixed at (traced) indices: one row of it."""
    for c, i in at.items():
        axis = letters.index(c)
        if a.shape[axis] > 1:
            a = jax.lax.dynamic_index_in_dim(a, i, axis, keepdims=True)
    return a


def _row_best(w, hi, lo, reached, code, on_min):
    """(value, code) of the best candidate among a row's edges, both tracks."""
    full = jnp.broadcast_shapes(*(a.shape for a in (w, hi, lo, reached, code)))
    values = jnp.stack([jnp.broadcast_to(w * hi, full).ravel(), jnp.broadcast_to(w * lo, full).ravel()])
    codes = jnp.broadcast_to(code, full).ravel()
    codes = jnp.stack([2 * codes, 2 * codes + 1])
    exists = jnp.broadcast_to((w != 0) & reached, full).ravel()[None] & (values == values)
    beats = jnp.where(on_min, -values, values)
    rank = jnp.where(exists, beats, -jnp.inf)
    top = jnp.max(rank)
    ties = exists & (rank == top)
    winner = jnp.min(jnp.where(ties, codes, jnp.iinfo(jnp.int32).max))
    none = ~jnp.any(exists)
    return jnp.where(none, jnp.nan, jnp.where(on_min, -top, top)), jnp.where(none, NO_SOURCE, winner)


def _better_of(a, b, on_min):
    take_b = better(b[0], b[1], a[0], a[1], lambda x, y: jnp.where(on_min, x < y, x > y))
    return jnp.where(take_b, b[0], a[0]), jnp.where(take_b, b[1], a[1])


def _diagonal(x, term):
    unique = "".join(dict.fromkeys(term))
    return x if unique == term else jnp.einsum(f"{term}->{unique}", x)


def matmul_subscripts(a_ndim, b_ndim):
    """jnp.matmul as an einsum, batch dimensions included (broadcast batch dims share letters
    only where both operands have them: size-1 broadcasting is then jnp's own)."""
    batch = "abcdefgh"
    a_batch, b_batch = max(a_ndim - 2, 0), max(b_ndim - 2, 0)
    n_batch = max(a_batch, b_batch)
    letters = batch[:n_batch]
    a = letters[n_batch - a_batch:] + ("ij" if a_ndim >= 2 else "j")
    b = letters[n_batch - b_batch:] + ("jk" if b_ndim >= 2 else "j")
    out = letters + ("i" if a_ndim >= 2 else "") + ("k" if b_ndim >= 2 else "")
    return f"{a},{b}->{out}"
