"""Composite reductions and normalisers: primitives only, no backward code."""

import jax
import jax.numpy as jnp

from ..ad.node import Node, as_array
from ..ops import elementwise as E
from ..ops import structural


def _stabilising_shift(x, axis):
    """max(x) along axis as a constant array, not a Node: log Σ exp(x − m) + m does not depend
    on m, so m must make no path. As a graph branch (reduce_max → sub, add) it would add
    paths whose |w| do not cancel: the top path of log p(is) ran through logit(are) via the
    max, and |grad| and entropy counted a route with no effect on the output. Non-finite
    maxima (a row of -inf) shift by 0, as jax.nn.logsumexp does."""
    m = jnp.max(x.val if isinstance(x, Node) else as_array(x), axis=axis, keepdims=True)
    return jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0))


def reduce_logsumexp(x, axis=None, keepdims=False):
    """log Σ exp(x) along axis, stabilised by a constant shift.

    Graph: sub (a constant), exp, reduce_sum, log, add (the same constant). Unlike the
    original brunoflow, the max is not a branch of the graph: it is numerically neutral, so
    `grad` is the same either way, but as a branch it made paths for |grad|, entropy and the
    top path that carry no influence on the output.
    """
    m = _stabilising_shift(x, axis)
    total = structural.reduce_sum(E.exp(x - m), axis=axis, keepdims=True)
    out = E.log(total) + m
    return out if keepdims else structural.squeeze(out, axis)


def log_softmax(x, axis=-1):
    """x − logsumexp(x). Graph: x feeds the sub directly and through reduce_logsumexp."""
    return x - reduce_logsumexp(x, axis=axis, keepdims=True)


def softmax(x, axis=-1):
    """exp(log_softmax(x)), as the original builds it (its graph has no max branch: see
    reduce_logsumexp)."""
    return E.exp(log_softmax(x, axis=axis))
