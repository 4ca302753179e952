"""One explicit table wiring Node's operators and methods to primitives."""

from ..ad.node import Node
from . import contraction, elementwise, structural


def _reflected(op):
    return lambda self, other: op(other, self)


OPERATORS = {
    "__add__": elementwise.add,
    "__radd__": _reflected(elementwise.add),
    "__sub__": elementwise.sub,
    "__rsub__": _reflected(elementwise.sub),
    "__mul__": elementwise.mul,
    "__rmul__": _reflected(elementwise.mul),
    "__truediv__": elementwise.div,
    "__rtruediv__": _reflected(elementwise.div),
    "__pow__": elementwise.pow,
    "__rpow__": _reflected(elementwise.pow),
    "__matmul__": contraction.matmul,
    "__rmatmul__": _reflected(contraction.matmul),
    "__neg__": elementwise.neg,
    "__abs__": elementwise.abs,
    "__getitem__": structural.getitem,
    "transpose": lambda self, *axes: structural.transpose(
        self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else (axes or None)),
    "reshape": lambda self, *shape: structural.reshape(
        self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape),
    "sum": lambda self, axis=None, keepdims=False: structural.reduce_sum(self, axis, keepdims),
    "mean": lambda self, axis=None, keepdims=False: structural.reduce_mean(self, axis, keepdims),
    "T": property(lambda self: structural.transpose(self)),
}

for _name, _impl in OPERATORS.items():
    setattr(Node, _name, _impl)
