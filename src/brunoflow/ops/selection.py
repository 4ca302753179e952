"""Selections: an output element copies one input element (ties split the credit evenly).

The Jacobian is a 0/1 weight per input element; the engine's φ-VJP is φ(weight)·expand(g).
"""

import jax.numpy as jnp

from ..ad.node import Node, value_of
from ..ad.primitive import Selection, bind
from .structural import _restore_reduced, _static_axis


def _tie_split_weight(out, x, *, axis, keepdims):
    hit = (x == _restore_reduced(out, x, axis, keepdims)).astype(x.dtype)
    return hit / _restore_reduced(jnp.sum(hit, axis=axis, keepdims=keepdims), x, axis, keepdims)


_reduce_max = Selection("reduce_max", lambda x, *, axis, keepdims: jnp.max(x, axis=axis, keepdims=keepdims),
                        _tie_split_weight)
_reduce_min = Selection("reduce_min", lambda x, *, axis, keepdims: jnp.min(x, axis=axis, keepdims=keepdims),
                        _tie_split_weight)


def reduce_max(x, axis=None, keepdims=False):
    return bind(_reduce_max, x, axis=_static_axis(axis), keepdims=bool(keepdims))


def reduce_min(x, axis=None, keepdims=False):
    return bind(_reduce_min, x, axis=_static_axis(axis), keepdims=bool(keepdims))


def argmax(x, axis=None):
    """Index of the max: not differentiable, so the result is a leaf of integers."""
    return Node(jnp.argmax(value_of(x), axis=axis))


def argmin(x, axis=None):
    return Node(jnp.argmin(value_of(x), axis=axis))
