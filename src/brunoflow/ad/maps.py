"""Edge maps φ: what a semiring does to each Jacobian entry w before it multiplies.

Every semiring pass needs an op's VJP under one of these maps (docs/architecture.md §2). An op's
Jacobian rule only has to apply φ to arrays (elementwise partials, the other operand of a
contraction) or to a Python constant (the 0/1 entries of a structural op).
"""

import jax.numpy as jnp
import numpy as np


class EdgeMap:
    __slots__ = ("name", "array", "constant")

    def __init__(self, name, array, constant):
        self.name = name
        self.array = array          # φ on a traced array of Jacobian entries
        self.constant = constant    # φ on a Python float (structural ops' constant entries)

    def __repr__(self):
        return self.name


def _neg_xlogx(x):
    a = jnp.abs(x)
    safe = jnp.where(a > 0, a, 1)  # 0·log 0 = 0, and no NaN leaks through the gradient of where
    return jnp.where(a > 0, -a * jnp.log(safe), jnp.zeros_like(a))


def _neg_xlogx_constant(c):
    a = abs(float(c))
    return 0.0 if a == 0 else float(-a * np.log(a))


IDENTITY = EdgeMap("IDENTITY", lambda x: x, lambda c: float(c))
ABS = EdgeMap("ABS", jnp.abs, lambda c: abs(float(c)))
NEG_XLOGX = EdgeMap("NEG_XLOGX", _neg_xlogx, _neg_xlogx_constant)
