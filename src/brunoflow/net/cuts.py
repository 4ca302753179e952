"""A call's values read off the run of the same call padded to a longer length (`compiled.forward`'s
`padded`, `lengths`): which of the padded run's constants and arrays are the call's, and each value
cut to the first n entries of every axis that grew from n to n_padded.
"""

import jax
import numpy as np

from ..ad.node import on_cpu
from ..ad.replay import TRACED, match


def plan(exact, bucket, signature, lengths):
    """How to read `exact` off `bucket`'s values (cached per pair), or None."""
    if lengths is None:
        return None
    if signature not in exact.matches:
        exact.matches[signature] = _make_plan(exact.template, bucket.template, lengths)
    return exact.matches[signature]


class _Uncuttable(Exception):
    pass


def _make_plan(exact, bucket, lengths):
    """None for a different graph, or an axis that grew otherwise than the padding did; else the
    sources of exact's constants and returned arrays in bucket, and a cut per value."""
    found = match(exact, bucket)
    if found is None:
        return None
    consts, arrays = found
    try:
        node_cuts = [_cut_of(r.shape, s.shape, lengths) for r, s in zip(exact.recipes, bucket.recipes)]
        const_cuts = [_cut_of(shape, bucket.consts[s[1]][0] if s[0] == TRACED else np.shape(s[1]), lengths)
                      for s, (shape, _) in zip(consts, exact.consts)]
        array_cuts = [_cut_of(shape, bucket.arrays[i][0], lengths) for i, (shape, _) in zip(arrays, exact.arrays)]
    except _Uncuttable:
        return None
    return consts, arrays, node_cuts, const_cuts, array_cuts


def _cut_of(exact, padded, lengths):
    """None (the same shape) or (exact shape, rows): keep the first entries of every axis that grew
    from n to n_padded; with `rows` (lengths[2]), a leading axis of rows·n_padded holds (rows,
    n_padded) merged row-major (a flattened (batch, seq)), and keeps the first n of each row."""
    n, n_padded, rows = (*lengths, None)[:3]
    exact, padded = tuple(exact), tuple(padded)
    if exact == padded:
        return None
    if len(exact) != len(padded):
        raise _Uncuttable
    merged = None
    for axis, (e, p) in enumerate(zip(exact, padded)):
        if e == p or (e, p) == (n, n_padded):
            continue
        if axis == 0 and rows and (e, p) == (rows * n, rows * n_padded):
            merged = rows
            continue
        raise _Uncuttable
    return exact, merged


def cut_value(value, cut):
    if cut is None:
        return value
    shape, rows = cut
    # (rows·n_padded, ...) is read as (rows, n_padded, ...), and keeps the first n of each row
    limits = tuple(shape) if rows is None else (rows, shape[0] // rows, *shape[1:])
    if not isinstance(value, np.ndarray) and not on_cpu(value):
        if rows is not None:
            value = value.reshape(rows, -1, *value.shape[1:])
        return jax.lax.slice(value, (0,) * len(limits), limits).reshape(shape)
    # on the host a cut is a view: lax.slice would compile a kernel for every new length
    host = np.asarray(value)
    if rows is not None:
        host = host.reshape(rows, -1, *host.shape[1:])
    host = host[tuple(slice(0, k) for k in limits)].reshape(shape)
    return host if isinstance(value, np.ndarray) else jax.device_put(np.ascontiguousarray(host))
