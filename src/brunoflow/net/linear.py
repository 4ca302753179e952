"""Linear: y = x @ weight.T + bias, weight stored (out_features, in_features) as torch."""

import math

import jax
import jax.numpy as jnp

from ..ad.node import Node, Parameter
from ..ops import add, matmul, transpose
from .ids import check_in_range
from .module import Network, initial_value, make_key


def shape_of(x):
    return x.shape if isinstance(x, Node) else tuple(jnp.shape(x))


class Linear(Network):
    """Affine map over the last axis of a Node or array.

    Init as torch: weight and bias uniform in ±1/sqrt(in_features) (kaiming-uniform with
    a=sqrt(5)), drawn from `key` (a JAX PRNG key or an int seed; None: the next key of the
    stream `bf.net.manual_seed` seeds).
    Graph: transpose(weight), matmul, add — so |grad|, entropy and max-product see the same
    edges as the original brunoflow's Linear.
    """

    def __init__(self, in_features, out_features, bias=True, key=None, dtype=jnp.float32):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        w_key, b_key = jax.random.split(make_key(key))
        w_shape, b_shape = (self.out_features, self.in_features), (self.out_features,)
        self.weight = Parameter(initial_value(lambda: jax.random.uniform(w_key, w_shape, dtype, -bound, bound),
                                              w_shape, dtype))
        self.bias = Parameter(initial_value(lambda: jax.random.uniform(b_key, b_shape, dtype, -bound, bound),
                                            b_shape, dtype)) if bias else None

    def forward(self, x, rows=None):
        """rows: output features to compute (an int array, e.g. the words an analysis reads),
        through the same weight and bias; None computes all of them."""
        shape = shape_of(x)
        if not shape or shape[-1] != self.in_features:
            raise ValueError(f"Linear expects inputs of shape (..., {self.in_features}) "
                             f"(in_features={self.in_features}), got shape {shape}")
        weight, bias = self.weight, self.bias
        if rows is not None:
            check_in_range(rows, self.out_features, "rows", "out_features", owner="Linear")
            weight, bias = weight[rows], (bias[rows] if bias is not None else None)
        out = matmul(x, transpose(weight))
        return add(out, bias) if bias is not None else out

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
