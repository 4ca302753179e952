"""Elementwise primitives: forward + local partials, nothing else.

Each `partials(out, *xs)` returns one array per input, broadcastable to the output; the
engine turns it into every semiring's φ-VJP as `unbroadcast(φ(partial) * g)`.
"""

import math

import jax
import jax.numpy as jnp

from ..ad.node import as_array
from ..ad.primitive import Elementwise, bind


def _one(out):
    return jnp.ones((), out.dtype)


def elementwise(name, impl, partials, differentiable=None):
    prim = Elementwise(name, impl, partials, differentiable)

    def apply(*xs, **static):
        return bind(prim, *xs, **static)

    apply.__name__ = apply.__qualname__ = name
    apply.primitive = prim
    return apply


def _tie_split(winner, loser):
    """maximum/minimum: the input that wins gets 1; an exact tie splits it ½ / ½."""
    return jnp.where(winner == loser, 0.5, (winner > loser).astype(winner.dtype))


def _gelu_partial(out, x, *, approximate):
    if approximate:  # 0.5 x (1 + tanh(k (x + c x³)))
        k, c = math.sqrt(2 / math.pi), 0.044715
        t = jnp.tanh(k * (x + c * x**3))
        return (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x),)
    cdf = 0.5 * (1 + jax.lax.erf(x / math.sqrt(2)))
    return (cdf + x * jnp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi),)


add = elementwise("add", jnp.add, lambda out, x, y: (_one(out), _one(out)))
sub = elementwise("sub", jnp.subtract, lambda out, x, y: (_one(out), -_one(out)))
mul = elementwise("mul", jnp.multiply, lambda out, x, y: (y, x))
div = elementwise("div", jnp.divide, lambda out, x, y: (1 / y, -out / y))
pow = elementwise("pow", jnp.power, lambda out, x, y: (
    y * jnp.power(x, y - 1), jnp.where(x > 0, out * jnp.log(jnp.where(x > 0, x, 1)), 0)))
neg = elementwise("neg", jnp.negative, lambda out, x: (-_one(out),))
abs = elementwise("abs", jnp.abs, lambda out, x: (jnp.sign(x),))
exp = elementwise("exp", jnp.exp, lambda out, x: (out,))
log = elementwise("log", jnp.log, lambda out, x: (1 / x,))
sqrt = elementwise("sqrt", jnp.sqrt, lambda out, x: (0.5 / out,))
tanh = elementwise("tanh", jnp.tanh, lambda out, x: (1 - out * out,))
sigmoid = elementwise("sigmoid", jax.nn.sigmoid, lambda out, x: (out * (1 - out),))
relu = elementwise("relu", jax.nn.relu, lambda out, x: ((x > 0).astype(out.dtype),))
erf = elementwise("erf", jax.lax.erf, lambda out, x: (2 / math.sqrt(math.pi) * jnp.exp(-x * x),))
_gelu = elementwise("gelu", lambda x, *, approximate: jax.nn.gelu(x, approximate=approximate),
                    _gelu_partial)
maximum = elementwise("maximum", jnp.maximum, lambda out, x, y: (_tie_split(x, y), _tie_split(y, x)))
minimum = elementwise("minimum", jnp.minimum, lambda out, x, y: (_tie_split(y, x), _tie_split(x, y)))
# The condition carries no derivative: only slots 1 and 2 are differentiable.
_where = elementwise("where", jnp.where, lambda out, c, x, y: (None, c.astype(out.dtype), (~c).astype(out.dtype)),
                     differentiable=(1, 2))


def gelu(x, approximate=False):
    """GELU: exact x·Φ(x) by default; approximate=True is the tanh form ("gelu_new")."""
    return _gelu(x, approximate=bool(approximate))


def where(condition, x, y):
    """Pick x where condition holds, else y; condition is a constant boolean array."""
    return _where(as_array(condition).astype(bool), x, y)
