"""The engine: nodes, semirings, primitives and the one backward sweep."""

from .maps import ABS, IDENTITY, NEG_XLOGX, EdgeMap
from .node import Node, Parameter
from .primitive import stats as kernel_stats
from .semirings import AbsGrad, Entropy, Grad, MaxPath, MaxProduct, ScaledSumProduct, Semiring, SumProduct
