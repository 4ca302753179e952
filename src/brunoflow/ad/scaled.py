"""Scaled path sums: a mantissa array and one power-of-two exponent per tensor.

|grad| and entropy sum path products without cancellation, so on a real model they grow
~1e6 per layer and pass float32's range (3.4e38) before the embeddings. Their semirings
carry `mantissa · 2**exponent` instead, with one int32 exponent per tensor (per example
under jax.vmap): pulls through contractions renormalise the mantissas so the largest is in
[0.5, 1) (Semiring.normalise), and ⊕ aligns two exponents before adding. Powers of two scale exactly, so the mantissas round as
the unscaled sums would and the exponents carry no rounding at all. Entries far below their
tensor's largest (more than ~2**126 below, in float32) underflow to 0, where float64 would
keep them; they are too small to move any sum they join.
"""

import jax
import jax.numpy as jnp
import numpy as np

# A renormalising shift stays within float32's normal range, so the power of two it
# multiplies by is exact; a larger step (a tensor of subnormals) finishes at the next pull.
_MAX_SHIFT = 120
_BITS = {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}


def _float_layout(dtype):
    info = jnp.finfo(dtype)
    return _BITS[jnp.dtype(dtype).itemsize], info.nmant, int(info.maxexp) - 1  # int type, mantissa bits, bias


def exponent_of(x):
    """e with x in [2**e, 2**(e+1)), for a positive normal scalar x, read from its bits.

    jnp.frexp / jnp.ldexp lower to dozens of ops each; with the renormalisations of a whole BERT
    backprop in one XLA program, every op counts in its compile time."""
    int_type, mantissa_bits, bias = _float_layout(x.dtype)
    biased = (jax.lax.bitcast_convert_type(x, int_type) >> mantissa_bits) & (2 * bias + 1)
    return biased.astype(jnp.int32) - bias


def power_of_two(e, dtype):
    """2**e as `dtype`, exactly, for integer e in [-bias + 1, bias] (a scalar or an array)."""
    int_type, mantissa_bits, bias = _float_layout(dtype)
    return jax.lax.bitcast_convert_type((jnp.asarray(e, int_type) + bias) << mantissa_bits, dtype)


def scale(m, e):
    """m · 2**e without rounding (but to 0 or inf), for any integer e: three exact factors
    cover every e for which some m of the dtype gives a finite nonzero result."""
    _, _, bias = _float_layout(m.dtype)
    e = jnp.clip(e, -3 * (bias - 1), 3 * (bias - 1))
    first = e // 3
    second = (e - first) // 2
    return m * power_of_two(first, m.dtype) * power_of_two(second, m.dtype) * power_of_two(e - first - second, m.dtype)


def renormalise(mantissas, exponent):
    """Rescale arrays that share `exponent` so the largest |entry| among them is in [0.5, 1)."""
    dtype = mantissas[0].dtype
    peak = jnp.zeros((), dtype)
    for m in mantissas:
        peak = jnp.maximum(peak, jnp.max(jnp.abs(m), initial=0))
    # an all-zero state keeps its exponent; inf/NaN stay what they are
    shift = jnp.where(peak > 0, jnp.clip(exponent_of(peak) + 1, -_MAX_SHIFT, _MAX_SHIFT), 0)
    factor = power_of_two(-shift, dtype)
    return tuple(m * factor for m in mantissas), exponent + shift


def align(x_exponent, y_exponent):
    """The common exponent of two scaled values and the factor each mantissa takes to reach it."""
    exponent = jnp.maximum(x_exponent, y_exponent)
    return exponent, lambda m, e: m * _down(e - exponent, m.dtype)


def _down(e, dtype):
    """2**e for e <= 0; 0 below the dtype's normal range (the entries it scales are negligible)."""
    _, _, bias = _float_layout(dtype)
    return jnp.where(e > -bias, power_of_two(jnp.maximum(e, 1 - bias), dtype), 0).astype(dtype)


def one(shape_like):
    """The seed: mantissas 1, exponent 0."""
    return jnp.ones_like(shape_like), jnp.zeros((), jnp.int32)


@jax.tree_util.register_pytree_node_class
class Scaled:
    """A non-cancelling path sum as the semirings keep it: `mantissa · 2**exponent`.

    `mantissa` is shaped like the node; `exponent` is an int32 scalar (a vector over the
    mapped axis under jax.vmap). Read it with `value()` (in the mantissa's dtype: inf where the
    true value does not fit) or `log()` (always finite where the value is positive).
    """

    def __init__(self, mantissa, exponent):
        self.mantissa = mantissa
        self.exponent = exponent

    def tree_flatten(self):
        return (self.mantissa, self.exponent), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)

    @property
    def shape(self):
        return tuple(jnp.shape(self.mantissa))

    @property
    def dtype(self):
        return self.mantissa.dtype

    def value(self):
        return scale(self.mantissa, self.exponent)

    def log(self):
        """log|value|, natural; -inf where the value is 0."""
        return jnp.log(jnp.abs(self.mantissa)) + self.exponent * jnp.asarray(np.log(2.0), self.dtype)

    def mantissa_at(self, exponent):
        """The mantissa that gives this value at an exponent at least as large as its own."""
        return self.mantissa * _down(self.exponent - exponent, self.dtype)

    def __getitem__(self, index):
        return Scaled(self.mantissa[index], self.exponent)

    def sum(self, axis=None):
        return Scaled(jnp.sum(self.mantissa, axis=axis), self.exponent)

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:  # sum() starts from 0
            return self
        exponent, rescale = align(self.exponent, other.exponent)
        return Scaled(rescale(self.mantissa, self.exponent) + rescale(other.mantissa, other.exponent), exponent)

    __radd__ = __add__

    def ratio(self, other):
        """self / other as a plain array (scale-free: shares, and entropy's h / a)."""
        safe = jnp.where(other.mantissa != 0, other.mantissa, 1)
        quotient = scale(self.mantissa / safe, self.exponent - other.exponent)
        return jnp.where(other.mantissa != 0, quotient, 0)

    def __repr__(self):
        return f"Scaled(shape={self.shape}, dtype={self.dtype})"


def stack(values):
    """Scaled values of one shape → one Scaled with a new leading axis, at their largest exponent."""
    exponent = values[0].exponent
    for v in values[1:]:
        exponent = jnp.maximum(exponent, v.exponent)
    return Scaled(jnp.stack([v.mantissa_at(exponent) for v in values]), exponent)


def entropy(a, h):
    """Shannon entropy of the paths summed in the entropy pair (a, h): h/a + log a; 0 where a is 0."""
    return jnp.where(a.mantissa > 0, h.ratio(a) + a.log(), 0)
