"""Structural primitives: every Jacobian entry is 1 (or one constant), so each op declares
its plain VJP — its transpose — and the engine scales it by φ(entry).

Transpose pairs: reshape ↔ reshape, transpose ↔ inverse permutation, broadcast_to ↔ sum,
reduce_sum ↔ broadcast, getitem ↔ scatter-add, concat ↔ split, stack ↔ index, pad ↔ slice.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..ad.node import Node, as_array, value_of
from ..ad.primitive import Linear, bind, unbroadcast


def structural(name, impl, vjp=None, differentiable=None, constant=1.0, relation="copy"):
    prim = Linear(name, impl, vjp, differentiable, constant, relation=relation)

    def apply(*xs, **static):
        return bind(prim, *xs, **static)

    apply.__name__ = apply.__qualname__ = name
    apply.primitive = prim
    return apply


def _axes_tuple(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


def _restore_reduced(g, x, axis, keepdims):
    """Transpose of a reduction over `axis`: broadcast g back to x's shape."""
    if not keepdims:
        g = jnp.expand_dims(g, _axes_tuple(axis, jnp.ndim(x)))
    return jnp.broadcast_to(g, jnp.shape(x))


_reshape = structural("reshape", lambda x, *, shape: jnp.reshape(x, shape),
                      lambda g, x, *, shape: (jnp.reshape(g, jnp.shape(x)),))
# transpose of transpose is the inverse permutation
_transpose = structural("transpose", lambda x, *, axes: jnp.transpose(x, axes),
                        lambda g, x, *, axes: (jnp.transpose(g, tuple(np.argsort(axes))),))
_swapaxes = structural("swapaxes", lambda x, *, axis1, axis2: jnp.swapaxes(x, axis1, axis2),
                       lambda g, x, *, axis1, axis2: (jnp.swapaxes(g, axis1, axis2),))
_expand_dims = structural("expand_dims", lambda x, *, axis: jnp.expand_dims(x, axis),
                          lambda g, x, *, axis: (jnp.reshape(g, jnp.shape(x)),))
_squeeze = structural("squeeze", lambda x, *, axis: jnp.squeeze(x, axis),
                      lambda g, x, *, axis: (jnp.reshape(g, jnp.shape(x)),))
_broadcast_to = structural("broadcast_to", lambda x, *, shape: jnp.broadcast_to(x, shape),
                           lambda g, x, *, shape: (unbroadcast(g, jnp.shape(x)),))
_reduce_sum = structural("reduce_sum", lambda x, *, axis, keepdims: jnp.sum(x, axis=axis, keepdims=keepdims),
                         lambda g, x, *, axis, keepdims: (_restore_reduced(g, x, axis, keepdims),),
                         relation="spread")


def _mean_entry(xs, static):
    shape = jnp.shape(xs[0])
    n = math.prod(shape[a] for a in _axes_tuple(static["axis"], len(shape)))
    # a mean over an empty axis has no input elements, so no entries: any constant will do
    return 1.0 / n if n else 0.0


# Every entry of a mean's Jacobian is 1/n: the plain VJP is the sum's, scaled by φ(1/n).
_reduce_mean = structural("reduce_mean", lambda x, *, axis, keepdims: jnp.mean(x, axis=axis, keepdims=keepdims),
                          lambda g, x, *, axis, keepdims: (_restore_reduced(g, x, axis, keepdims),),
                          constant=_mean_entry, relation="spread")
_concat = structural("concat", lambda *xs, axis: jnp.concatenate(xs, axis=axis),
                     lambda g, *xs, axis: tuple(jnp.split(g, np.cumsum([jnp.shape(x)[axis] for x in xs])[:-1], axis)))
_stack = structural("stack", lambda *xs, axis: jnp.stack(xs, axis=axis),
                    lambda g, *xs, axis: tuple(jnp.moveaxis(g, axis, 0)))
_pad = structural("pad", lambda x, *, pad_width: jnp.pad(x, pad_width),
                  lambda g, x, *, pad_width: (g[tuple(slice(lo, g.shape[i] - hi) for i, (lo, hi) in enumerate(pad_width))],))


# -- getitem: the index is static except integer arrays, which travel as constant inputs --

def _encode_index(index):
    """Make an index hashable for the kernel cache; arrays become positional constants."""
    if not isinstance(index, tuple):
        index = (index,)
    spec, arrays = [], []
    for item in index:
        if isinstance(item, Node):
            item = item.val
        if isinstance(item, slice):
            spec.append(("slice", item.start, item.stop, item.step))
        elif item is None or item is Ellipsis or isinstance(item, (int, np.integer)):
            spec.append(item if not isinstance(item, np.integer) else int(item))
        else:
            array = item if hasattr(item, "dtype") else np.asarray(item)
            if array.dtype == bool:
                array = np.nonzero(np.asarray(array))  # data-dependent shape: host-side only
                spec.extend(("array", len(arrays) + k) for k in range(len(array)))
                arrays.extend(array)
                continue
            if not jnp.issubdtype(array.dtype, jnp.integer):
                raise TypeError(f"getitem: index arrays must be integer or boolean, got dtype {array.dtype}")
            spec.append(("array", len(arrays)))
            arrays.append(array)
    return tuple(spec), tuple(arrays)


def _decode_index(spec, arrays):
    out = []
    for item in spec:
        if isinstance(item, tuple) and item[0] == "slice":
            out.append(slice(*item[1:]))
        elif isinstance(item, tuple) and item[0] == "array":
            out.append(arrays[item[1]])
        else:
            out.append(item)
    return tuple(out)


# transpose of gather is scatter-add (repeated indices accumulate)
_getitem = structural(
    "getitem",
    lambda x, *arrays, index: x[_decode_index(index, arrays)],
    lambda g, x, *arrays, index: (jnp.zeros(jnp.shape(x), g.dtype).at[_decode_index(index, arrays)].add(g),)
    + (None,) * len(arrays),
    differentiable=(0,))


# One entry per row, picked by a class index. A padded compiled forward cuts every array made on the
# way to the caller's positions; getitem's (arange(n), target) pair would keep the padded row numbers.
def _pick_forward(x, indices):
    return jnp.take_along_axis(x, indices[..., None], axis=-1)[..., 0]


_pick = structural("pick", _pick_forward,
                   lambda g, x, indices: (jax.vjp(lambda x: _pick_forward(x, indices), x)[1](g)[0], None),
                   differentiable=(0,))

# A row lookup whose padding_idx rows copy nothing (0 in the forward, no edge to the table): as
# torch's nn.Embedding, the padding row gets no gradient from it, and no semiring finds a path there.
_lookup = structural(
    "lookup",
    lambda table, ids, *, padding_idx: jnp.where((ids == padding_idx)[..., None], 0, table[ids]).astype(table.dtype),
    lambda g, table, ids, *, padding_idx: (
        jnp.zeros(jnp.shape(table), g.dtype).at[ids].add(jnp.where((ids == padding_idx)[..., None], 0, g)), None),
    differentiable=(0,))


def reshape(x, shape):
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    return _reshape(x, shape=shape)


def transpose(x, axes=None):
    ndim = len(jnp.shape(value_of(x)))
    axes = tuple(reversed(range(ndim))) if axes is None else tuple(int(a) % ndim for a in axes)
    if sorted(axes) != list(range(ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {ndim} axes")
    return _transpose(x, axes=axes)


permute = transpose


def swapaxes(x, axis1, axis2):
    return _swapaxes(x, axis1=int(axis1), axis2=int(axis2))


def expand_dims(x, axis):
    return _expand_dims(x, axis=axis if isinstance(axis, int) else tuple(axis))


def squeeze(x, axis=None):
    return _squeeze(x, axis=axis if axis is None or isinstance(axis, int) else tuple(axis))


def broadcast_to(x, shape):
    return _broadcast_to(x, shape=tuple(int(s) for s in shape))


def _static_axis(axis):
    return axis if axis is None or isinstance(axis, int) else tuple(int(a) for a in axis)


def reduce_sum(x, axis=None, keepdims=False):
    return _reduce_sum(x, axis=_static_axis(axis), keepdims=bool(keepdims))


def reduce_mean(x, axis=None, keepdims=False):
    return _reduce_mean(x, axis=_static_axis(axis), keepdims=bool(keepdims))


def concat(xs, axis=0):
    return _concat(*xs, axis=int(axis))


def stack(xs, axis=0):
    return _stack(*xs, axis=int(axis))


def pad(x, pad_width):
    """Zero padding; pad_width as numpy's: one (before, after) pair per axis."""
    return _pad(x, pad_width=tuple((int(lo), int(hi)) for lo, hi in pad_width))


def _check_int_bounds(shape, spec):
    """jnp clamps out-of-range integer indices; a Node raises like a numpy array does."""
    consuming = [item is not None and item is not Ellipsis for item in spec]
    if sum(consuming) > len(shape):
        raise IndexError(f"getitem: too many indices ({sum(consuming)}) for a Node of shape {shape}")
    axis = 0
    for k, item in enumerate(spec):
        if item is Ellipsis:
            axis = len(shape) - sum(consuming[k + 1:])
        elif item is not None:
            if isinstance(item, int) and not -shape[axis] <= item < shape[axis]:
                raise IndexError(f"getitem: index {item} is out of bounds for axis {axis} with size {shape[axis]}")
            axis += 1


def getitem(x, index):
    spec, arrays = _encode_index(index)
    _check_int_bounds(tuple(jnp.shape(value_of(x))), spec)
    return _getitem(x, *arrays, index=spec)


def pick(x, indices):
    """out[i...] = x[i..., indices[i...]]: one entry of x's last axis per position (e.g. a class's log-prob)."""
    indices = as_array(indices)
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"pick: indices must be integers, got dtype {indices.dtype}")
    if tuple(indices.shape) != tuple(jnp.shape(value_of(x)))[:-1]:
        raise ValueError(f"pick: indices of shape {tuple(indices.shape)} do not match x's leading axes")
    return _pick(x, indices)


def lookup(table, ids, padding_idx):
    """table[ids] for a 2-D table, with the rows of ids == padding_idx set to 0 and cut from the graph."""
    return _lookup(table, as_array(ids), padding_idx=int(padding_idx))
