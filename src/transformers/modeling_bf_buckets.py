"""Bucketed forwards of the BF models: one compile per bucket of sequence lengths, not per length.

A root call `model(**tokenizer(text, return_tensors="np"))` runs as one compiled program
(`brunoflow.net.compiled`). To keep a loop over sentences of many lengths from compiling once per
length, the program runs on inputs padded to the next multiple of `BUCKET` tokens: ids with the
pad id, attention mask and token types with 0, given position ids continued, inputs_embeds with
zeros, token-level labels with -100. The graph and the values handed back are the caller's: the
attention mask hides the padding from every real position, so each node is the padded node cut
to the real positions (`compiled.forward` checks that the two graphs match node for node).

Inputs are checked on the host first, exactly as the eager forward checks them, so bad input fails
with the same errors. Calls run unpadded (one compile per shape) where padding would change a
value: a row whose attention mask is all zeros (its softmax would spread over the padding too),
question-answering positions (their softmax runs over the sequence), any argument a head does not
declare in `_label_padding`. They run eagerly (today's path) with head_mask, with dropout active,
inside a jax transformation, or with `model.compiled_forward = False`.
"""

import functools
import inspect

import jax
import numpy as np

from brunoflow import Node
from brunoflow.ad.node import value_of
from brunoflow.net import compiled

# Multiples of 16, measured against powers of two on 10-80 token sentences
# (benchmarks/forward_lengths.py): 5 compiles instead of 4, and ~20% less padding on average.
BUCKET = 16

_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")
_FLAGS = ("output_attentions", "output_hidden_states", "return_dict")


def bucket_length(length, limit):
    """The padded length of a sequence of `length` tokens (at most `limit`, the position table)."""
    return max(length, min(-(-length // BUCKET) * BUCKET, limit))


def bucketed_forward(model, args, kwargs):
    """model.forward(*args, **kwargs) through a compiled program at a bucket length, or compiled.EAGER."""
    try:
        call = dict(_forward_signature(type(model)).bind(*args, **kwargs).arguments)
    except TypeError:
        return compiled.eager()  # the eager call raises the same TypeError
    if call.get("head_mask") is not None or not hasattr(model.base_model, "_check_inputs"):
        return compiled.eager()
    for name in _INPUTS:
        if call.get(name) is not None and not isinstance(call[name], Node):
            call[name] = _host(call[name])
            if call[name] is None:
                return compiled.eager()  # traced: the caller is transforming the model
    ids, embeds = call.get("input_ids"), call.get("inputs_embeds")
    rank = getattr(model, "_input_rank", 2)
    if (ids is None) == (embeds is None) or (ids is not None and ids.ndim != rank) or (
            embeds is not None and len(embeds.shape) != rank + 1):
        return compiled.eager()  # let the eager forward say what is wrong
    _check_like_the_forward(model, call, rank)
    shape = tuple(ids.shape) if ids is not None else tuple(embeds.shape[:-1])
    length = shape[-1]
    padded_length = bucket_length(length, model.config.max_position_embeddings)
    padded = _padded_call(model, call, shape, padded_length)
    if padded is None:
        return compiled.forward(model, (), call)
    rows = int(np.prod(shape[:-1]))  # a loss flattens (batch, seq) into rows·seq
    return compiled.forward(model, (), call, padded=((), padded), lengths=(length, padded_length, rows))


def _check_like_the_forward(model, call, rank):
    """The base model's host checks, on the inputs it will see (multiple choice flattens them)."""
    flat = [call.get(name) for name in _INPUTS]
    if rank > 2:  # as the eager forward flattens them; only the embeddings' shape is checked
        flat[:4] = [x if x is None else x.reshape(-1, x.shape[-1]) for x in flat[:4]]
        if flat[4] is not None:
            shape = flat[4].shape
            flat[4] = np.broadcast_to(np.zeros((), flat[4].dtype), (int(np.prod(shape[:rank - 1])), *shape[rank - 1:]))
    model.base_model._check_inputs(*flat)


def _padded_call(model, call, shape, padded_length):
    """The call with its sequence axis padded, or None where padding would change a value."""
    length = shape[-1]
    if padded_length == length:
        return None
    declared = getattr(model, "_label_padding", {})
    for name, value in call.items():
        if name not in _INPUTS and name not in _FLAGS and value is not None and name not in declared:
            return None
    mask = call.get("attention_mask")
    if mask is not None and not np.all(np.asarray(mask).reshape(-1, length).any(axis=1)):
        return None
    extra = padded_length - length
    padded = dict(call)
    pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    if call.get("input_ids") is not None:
        padded["input_ids"] = _pad(call["input_ids"], extra, pad_id)
    padded["attention_mask"] = _pad(np.ones(shape, np.int32) if mask is None else mask, extra, 0)
    if call.get("token_type_ids") is not None:
        padded["token_type_ids"] = _pad(call["token_type_ids"], extra, 0)
    if call.get("position_ids") is not None:
        positions = call["position_ids"]
        last = positions[..., -1:] if positions.shape[-1] else np.zeros(positions.shape[:-1] + (1,), positions.dtype)
        more = np.minimum(last + np.arange(1, extra + 1), model.config.max_position_embeddings - 1)
        padded["position_ids"] = np.concatenate([positions, more.astype(positions.dtype)], axis=-1)
    embeds = call.get("inputs_embeds")
    if embeds is not None:
        value = np.asarray(value_of(embeds))
        value = np.concatenate([value, np.zeros((*value.shape[:-2], extra, value.shape[-1]), value.dtype)], axis=-2)
        padded["inputs_embeds"] = Node(value) if isinstance(embeds, Node) else value
    for name, pad_value in declared.items():
        labels = call.get(name)
        if labels is None or pad_value is None:
            continue
        labels = _host(labels)
        if labels is None or tuple(labels.shape) != shape:
            return None
        padded[name] = _pad(labels, extra, pad_value)
    return padded


def _pad(x, extra, value):
    x = np.asarray(x)
    return np.concatenate([x, np.full((*x.shape[:-1], extra), value, x.dtype)], axis=-1)


def _host(x):
    """A host numpy array of x, or None if it is traced."""
    if isinstance(x, jax.core.Tracer):
        return None
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


@functools.cache
def _forward_signature(cls):
    """forward's signature without `self`: positional arguments bind as the eager call binds them."""
    signature = inspect.signature(cls.forward)
    return signature.replace(parameters=list(signature.parameters.values())[1:])
