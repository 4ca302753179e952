"""brunoflow: reverse-mode autodiff on JAX whose backward pass runs over semirings.

    import brunoflow as bf
    x = bf.Node(jnp.ones(3)); y = bf.func.tanh(x * 2).sum()
    y.backprop()                  # grad, |grad|, entropy and max/min-product in one sweep
"""

from . import ops  # noqa: F401  (wires Node operators before anything uses them)
from . import func
from .ad.flows import consumer_flows
from .ad.paths import Hop, top_path
from .ad.scaled import Scaled
from .ad import (ABS, IDENTITY, NEG_XLOGX, AbsGrad, EdgeMap, Entropy, Grad, MaxPath, MaxProduct, Node, Parameter,
                 ScaledSumProduct, Semiring, SumProduct, kernel_stats)

__all__ = ["Node", "Parameter", "func", "net", "opt", "Semiring", "SumProduct", "ScaledSumProduct", "Grad",
           "AbsGrad", "Entropy", "MaxProduct", "MaxPath", "EdgeMap", "IDENTITY", "ABS", "NEG_XLOGX", "kernel_stats",
           "top_path", "Hop", "consumer_flows", "Scaled"]


def __getattr__(name):  # net and opt load on first use
    if name in ("net", "opt"):
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'brunoflow' has no attribute {name!r}")
