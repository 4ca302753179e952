"""Losses: composites of primitives, no backward code."""

import jax.numpy as jnp

from ..ad.node import as_array
from ..ops import elementwise as E
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


def nll_loss(log_probs, target, reduction="mean", ignore_index=None):
    """−log_probs[i, target[i]] over a batch; log_probs (N, C), target (N,) integers.

    Graph: one pick (a gather along the class axis) and a neg, then the reduction. With `ignore_index` (torch's
    −100), rows whose target is it weigh 0 and "mean" divides by the rows kept (NaN if none,
    as torch): the reduction is then a mul by constant weights and a reduce_sum, so the
    graph's shape does not depend on the labels and it runs under jax.jit.
    """
    target = as_array(target)
    if log_probs.ndim != 2 or target.ndim != 1 or target.shape[0] != log_probs.shape[0]:
        raise ValueError(f"nll_loss expects log_probs (N, C) and target (N,), got {log_probs.shape} "
                         f"and {tuple(target.shape)}")
    if ignore_index is None:
        return _reduce(-structural.pick(log_probs, target), reduction)
    kept = target != ignore_index
    picked = structural.pick(log_probs, jnp.where(kept, target, 0))
    weights = kept.astype(log_probs.dtype)
    if reduction == "mean":
        weights = weights / jnp.sum(weights)
    elif reduction not in ("sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    weighted = -picked * weights
    return weighted if reduction == "none" else structural.reduce_sum(weighted)


def cross_entropy(logits, target, reduction="mean", ignore_index=None):
    """nll_loss(log_softmax(logits, axis=-1), target): torch's cross_entropy for (N, C) logits."""
    return nll_loss(log_softmax(logits, axis=-1), target, reduction, ignore_index)


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """−[y log σ(x) + (1 − y) log(1 − σ(x))], written stably as relu(x) − x·y + log(1 + e^−|x|).

    Graph: relu, mul, sub, abs, neg, exp, add, log, add, then the reduction; target is a constant.
    """
    target = as_array(target)
    softplus_of_neg_abs = E.log(E.exp(-E.abs(logits)) + 1.0)
    return _reduce(E.relu(logits) - logits * target + softplus_of_neg_abs, reduction)


def mse_loss(prediction, target, reduction="mean"):
    """(prediction − target)², reduced. Graph: sub, mul, reduction."""
    diff = prediction - target
    return _reduce(diff * diff, reduction)
