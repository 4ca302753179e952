"""LayerNorm over the trailing `normalized_shape` axes, with torch's parameter names."""

import jax.numpy as jnp
import numpy as np

from ..ad.node import Parameter
from ..func import layer_norm
from .linear import shape_of
from .module import Network


class LayerNorm(Network):
    """(x − mean) / sqrt(var + eps) · weight + bias; weight starts at ones, bias at zeros.

    Graph: bf.func.layer_norm's (the mean and variance branches are real paths).
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, dtype=jnp.float32):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = tuple(int(n) for n in shape), float(eps)
        # made on the host: jnp.ones would compile a fill kernel for every new shape
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype)) if elementwise_affine else None

    def forward(self, x):
        shape, n = shape_of(x), len(self.normalized_shape)
        if len(shape) < n or tuple(shape[len(shape) - n:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm expects inputs of shape (..., {', '.join(map(str, self.normalized_shape))}) "
                             f"(normalized_shape={self.normalized_shape}), got shape {shape}")
        axis = -1 if n == 1 else tuple(range(-n, 0))
        return layer_norm(x, self.weight, self.bias, eps=self.eps, axis=axis)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"
