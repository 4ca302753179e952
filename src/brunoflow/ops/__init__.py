"""Primitives, grouped by the shape of their Jacobian."""

from . import operators  # noqa: F401  (wires Node's operators)
from .contraction import einsum, matmul
from .elementwise import (abs, add, div, erf, exp, gelu, log, maximum, minimum, mul, neg, pow, relu,
                          sigmoid, sqrt, sub, tanh, where)
from .selection import argmax, argmin, reduce_max, reduce_min
from .structural import (broadcast_to, concat, expand_dims, getitem, lookup, pad, permute, pick, reduce_mean,
                         reduce_sum, reshape, squeeze, stack, swapaxes, transpose)
