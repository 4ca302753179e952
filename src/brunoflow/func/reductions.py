"""Composite reductions and normalisers: primitives only, no backward code."""

from ..ops import elementwise as E
from ..ops import selection, structural


def reduce_logsumexp(x, axis=None, keepdims=False):
    """log Σ exp(x) along axis, stabilised by the max.

    Graph: reduce_max, sub, exp, reduce_sum, log, add. The max branch is on purpose, to
    match the original brunoflow: its paths cancel for `grad` but not for |grad|, entropy or
    max-product, so dropping it would change those answers.
    """
    m = selection.reduce_max(x, axis=axis, keepdims=True)
    total = structural.reduce_sum(E.exp(x - m), axis=axis, keepdims=True)
    out = E.log(total) + m
    return out if keepdims else structural.squeeze(out, axis)


def log_softmax(x, axis=-1):
    """x − logsumexp(x). Graph: x feeds the sub directly and through reduce_logsumexp."""
    return x - reduce_logsumexp(x, axis=axis, keepdims=True)


def softmax(x, axis=-1):
    """exp(log_softmax(x)), as the original builds it (so its graph has the max branch too)."""
    return E.exp(log_softmax(x, axis=axis))
