"""Composite layers: built from primitives, no backward code."""

import jax
import jax.numpy as jnp

from ..ad.node import Node, as_array
from ..ops import elementwise as E
from ..ops import structural


def layer_norm(x, weight=None, bias=None, eps=1e-5, axis=-1):
    """(x − mean) / sqrt(var + eps) · weight + bias over `axis` (biased variance, as torch).

    Graph: reduce_mean, sub, mul (square), reduce_mean, add eps, sqrt, div, then mul/add by
    the affine parameters. The mean and variance branches are real paths, as in the original.
    """
    mean = structural.reduce_mean(x, axis=axis, keepdims=True)
    centered = x - mean
    var = structural.reduce_mean(centered * centered, axis=axis, keepdims=True)
    out = centered / E.sqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def dropout(x, p, key, training=True):
    """Inverted dropout: zero each element with probability p, scale survivors by 1/(1−p).

    `key` is a JAX PRNG key (the caller owns randomness, so a jitted run is reproducible).
    Graph: one mul by a constant mask; identity (no node at all) when not training or p = 0.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    shape = x.shape if isinstance(x, Node) else jnp.shape(x)
    keep = jax.random.bernoulli(key, 1 - p, shape)
    dtype = x.dtype if isinstance(x, Node) else jnp.result_type(x)
    return x * (keep.astype(dtype) / (1 - p))


def embedding(ids, weight, padding_idx=None):
    """Rows of `weight` picked by integer `ids`. Graph: one getitem (gather).

    With `padding_idx` (torch's nn.Embedding semantics): positions holding that id get the padding
    row's current value as a constant, so the padding row gets no gradient from the lookup and no
    semiring finds a path through it. Graph: one lookup (a gather that copies nothing at those
    positions) and an add of that constant.
    """
    ids = as_array(ids)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise TypeError(f"embedding ids must be integers, got dtype {ids.dtype}")
    if padding_idx is None:
        return structural.getitem(weight, ids)
    table = as_array(weight)
    padding = jnp.where((ids == padding_idx)[..., None], table[padding_idx], 0).astype(table.dtype)
    return structural.lookup(weight, ids, padding_idx) + padding
