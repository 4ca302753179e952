"""Losses: composites of primitives, no backward code."""

import jax.numpy as jnp

from ..ad.node import as_array
from ..ops import structural
from .reductions import log_softmax


def _reduce(loss, reduction):
    if reduction == "mean":
        return structural.reduce_mean(loss)
    if reduction == "sum":
        return structural.reduce_sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def nll_loss(log_probs, target, reduction="mean"):
    """−log_probs[i, target[i]] over a batch; log_probs (N, C), target (N,) integers.

    Graph: one getitem (gather) and a neg, then the reduction.
    """
    target = as_array(target)
    if log_probs.ndim != 2 or target.ndim != 1 or target.shape[0] != log_probs.shape[0]:
        raise ValueError(f"nll_loss expects log_probs (N, C) and target (N,), got {log_probs.shape} "
                         f"and {tuple(target.shape)}")
    picked = structural.getitem(log_probs, (jnp.arange(target.shape[0]), target))
    return _reduce(-picked, reduction)


def cross_entropy(logits, target, reduction="mean"):
    """nll_loss(log_softmax(logits, axis=-1), target): torch's cross_entropy for (N, C) logits."""
    return nll_loss(log_softmax(logits, axis=-1), target, reduction)


def mse_loss(prediction, target, reduction="mean"):
    """(prediction − target)², reduced. Graph: sub, mul, reduction."""
    diff = prediction - target
    return _reduce(diff * diff, reduction)
