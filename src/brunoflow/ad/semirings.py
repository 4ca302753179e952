"""Semirings: small classes that know nothing about ops (pytorch-struct style).

A semiring's state on a node is a tuple of arrays shaped like the node. `pull` moves the
state of an op's output to one of its inputs, given that op's φ-VJPs (`vjp[φ](g)`, already
summed over every slot the input occupies); `plus` is ⊕ across the op's consumers.
`fields` are the Node attributes the state fills, and `to_fields` maps state to them.
Semirings that sum path products (⊕ is +) are a SumProduct that names its edge map φ.
"""

import jax.numpy as jnp

from . import scaled
from .maps import ABS, IDENTITY, NEG_XLOGX
from .tropical import DEFERRED, MAX_TIMES, NO_SOURCE, better


class Semiring:
    fields: tuple = ()
    maps: tuple = ()
    tracks_parents = False  # pull() uses the consumer index: backprop must keep get_parents()

    def seed(self, y):
        raise NotImplementedError

    def pull(self, vjp, up, consumer):
        raise NotImplementedError

    def plus(self, x, y):
        raise NotImplementedError

    def normalise(self, state):
        """A state representing the same values, rescaled (scaled semirings); the engine calls
        it after the ops where path sums grow most (contractions), not after every op."""
        return state

    def to_fields(self, state):
        return state

    def from_fields(self, values):
        return tuple(values)

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))

    def __repr__(self):
        return type(self).__name__


class SumProduct(Semiring):
    """A semiring that sums, over every path, the product of φ(w) along it: ⊕ is +, a pull is the
    op's φ-VJP, the seed is 1. A subclass names its φ in `maps` (an EdgeMap: how φ acts on an
    array of Jacobian entries and on a structural op's constant ones); that is the whole semiring.
    φ belongs to the class, as semirings compare by class (the kernel cache's key).

    A node carries one sum, in one field; a semiring with several (Entropy's pair) has a field
    per sum and says how they start and move in `seed_sums` and `pull_sums`. Sums that cancel,
    as the gradient's do, fit the dtype as they are; ScaledSumProduct keeps the others.
    """

    def seed(self, y):
        return self.seed_sums(jnp.ones_like(y))

    def seed_sums(self, ones):
        """The output's own sums, given ones shaped like it."""
        return (ones,)

    def pull(self, vjp, up, consumer):
        return self.pull_sums(vjp, up)

    def pull_sums(self, vjp, sums):
        """The sums moved through one op; a semiring with one φ pulls each sum through it."""
        (phi,) = self.maps
        return tuple(vjp[phi](s) for s in sums)

    def plus(self, x, y):
        return tuple(a + b for a, b in zip(x, y))


class ScaledSumProduct(SumProduct):
    """A SumProduct whose sums do not cancel and outgrow the dtype (products of |w| over a deep
    model's paths): kept scaled (ad/scaled.py), all sums of a node sharing one exponent. State
    (*mantissas, exponent); each field is a `Scaled`."""

    def seed(self, y):
        ones, exponent = scaled.one(y)
        return (*self.seed_sums(ones), exponent)

    def pull(self, vjp, up, consumer):
        return (*self.pull_sums(vjp, up[:-1]), up[-1])

    def normalise(self, state):
        mantissas, exponent = scaled.renormalise(state[:-1], state[-1])
        return (*mantissas, exponent)

    def plus(self, x, y):
        exponent, rescale = scaled.align(x[-1], y[-1])
        return (*(rescale(a, x[-1]) + rescale(b, y[-1]) for a, b in zip(x[:-1], y[:-1])), exponent)

    def to_fields(self, state):
        return tuple(scaled.Scaled(m, state[-1]) for m in state[:-1])

    def from_fields(self, values):
        first, *rest = values
        # one sweep wrote them all at one exponent; mantissa_at only restates that
        return (first.mantissa, *(v.mantissa_at(first.exponent) for v in rest), first.exponent)


class Grad(SumProduct):
    """Real numbers (+, ×): the ordinary gradient; seed 1."""

    fields = ("grad",)
    maps = (IDENTITY,)


class AbsGrad(ScaledSumProduct):
    """Non-negative reals (+, ×) over |w|: total gradient mass through a node; seed 1.

    Stored as a `Scaled` in `scaled_abs_val_grad`, read as `node.abs_val_grad` /
    `node.log_abs_val_grad`.
    """

    fields = ("scaled_abs_val_grad",)
    maps = (ABS,)


class Entropy(ScaledSumProduct):
    """Pairs (a, h): ⊕ adds both; edge w acts as (|w|, -|w| log|w|); seed (1, 0).

    After backprop, h/a + log a is the Shannon entropy of the paths to the output,
    each path weighted ∝ its product of |w| (Node.compute_entropy). Stored as two `Scaled`.
    """

    fields = ("scaled_abs_val_grad", "scaled_entropy_wrt_output")
    maps = (ABS, NEG_XLOGX)

    def seed_sums(self, ones):
        return ones, jnp.zeros_like(ones)

    def pull_sums(self, vjp, sums):
        a, h = sums
        return vjp[ABS](a), vjp[ABS](h) + vjp[NEG_XLOGX](a)


class MaxProduct(Semiring):
    """Operation-granularity max-product with its min twin, plus back-pointers.

    State (hi, lo, hi_from, lo_from). Through one op: the op's VJP of the upstream hi and
    of the upstream lo, then their elementwise max (hi) and min (lo): a negative partial
    swaps the tracks. ⊕ across consumers is max (hi) / min (lo); `*_from` is the index of
    the winning consumer in `Node.get_parents()`, -1 where nothing flowed. Ties go to the
    lower index; consumers are numbered in creation order, so the earliest-made consumer
    wins and the result does not depend on traversal order. Seed (1, 1, -1, -1).
    """

    fields = ("max_grad_of_output_wrt_node", "max_neg_grad_of_output_wrt_node")
    maps = (IDENTITY,)
    tracks_parents = True

    def seed(self, y):
        none = jnp.full(jnp.shape(y), -1, jnp.int32)
        return jnp.ones_like(y), jnp.ones_like(y), none, none

    def pull(self, vjp, up, consumer):
        via_hi, via_lo = vjp[IDENTITY](up[0]), vjp[IDENTITY](up[1])
        winner = jnp.full(via_hi.shape, consumer, jnp.int32)
        return jnp.maximum(via_hi, via_lo), jnp.minimum(via_hi, via_lo), winner, winner

    def plus(self, x, y):
        take_hi = (y[0] > x[0]) | ((y[0] == x[0]) & (y[2] < x[2]))
        take_lo = (y[1] < x[1]) | ((y[1] == x[1]) & (y[3] < x[3]))
        return (jnp.where(take_hi, y[0], x[0]), jnp.where(take_lo, y[1], x[1]),
                jnp.where(take_hi, y[2], x[2]), jnp.where(take_lo, y[3], x[3]))

    def to_fields(self, state):
        hi, lo, hi_from, lo_from = state
        return (hi, hi_from), (lo, lo_from)

    def from_fields(self, values):
        (hi, hi_from), (lo, lo_from) = values
        return hi, lo, hi_from, lo_from


class MaxPath(Semiring):
    """Neuron-granularity max-product: the exact max (and min) over every path from an
    element to the output of the product of its partials, with element back-pointers.

    State (hi, lo, hi_consumer, lo_consumer, hi_source, lo_source). Through one op, its
    max-times transpose (ad/tropical.py) picks, per input element, the best single edge into
    an output element and the track it continues on; ⊕ across consumers takes the better one
    (ties: the earliest-made consumer). Back-pointers: `*_consumer` indexes get_parents() (-1
    at the output itself, -2 where no path exists; the value there is 0), and `*_source` is
    2·(flat index into that consumer) + track (1: the path continues on its min track), or
    DEFERRED (-3) where the consumer is a contraction, which keeps values only: `top_path` and
    `brunoflow.ad.paths.source_of` recompute that pointer from the consumer's row of edges.
    Seed (1, 1, -1, -1, -1, -1).

    A path whose product is NaN (0·inf, NaN in the forward) ranks below every number, as in
    numpy's nanmax. An element whose every path is NaN reads NaN with no pointer (-2): the
    plain VJP of the NaN-carrying values finds it, as a sum with a NaN term is NaN.
    """

    fields = ("max_path_of_output_wrt_node", "min_path_of_output_wrt_node")
    maps = (MAX_TIMES, IDENTITY)
    tracks_parents = True
    OUTPUT, NO_PATH = -1, -2

    def seed(self, y):
        here = jnp.full(jnp.shape(y), self.OUTPUT, jnp.int32)
        return jnp.ones_like(y), jnp.ones_like(y), here, here, here, here

    def pull(self, vjp, up, consumer):
        hi, lo, hi_consumer, _, _, _ = up
        reached = hi_consumer != self.NO_PATH  # hi and lo range over the same paths
        pulled_hi, pulled_lo, hi_source, lo_source = vjp[MAX_TIMES]((hi, lo, reached))
        nan_edge = jnp.isnan(vjp[IDENTITY](jnp.where(reached | jnp.isnan(hi), hi, 0)))
        # a contraction counts edges, not non-NaN products: one whose every product was NaN
        # kept its running max at -inf
        only_nan = nan_edge & ((hi_source == NO_SOURCE) | ((hi_source == DEFERRED) & (pulled_hi == -jnp.inf)))
        hi_source, lo_source = (jnp.where(only_nan, NO_SOURCE, s) for s in (hi_source, lo_source))
        hi, lo = jnp.where(only_nan, jnp.nan, pulled_hi), jnp.where(only_nan, jnp.nan, pulled_lo)
        return (hi, lo, jnp.where(hi_source != NO_SOURCE, consumer, self.NO_PATH),
                jnp.where(lo_source != NO_SOURCE, consumer, self.NO_PATH), hi_source, lo_source)

    def plus(self, x, y):
        take_hi = better(y[0], y[2], x[0], x[2], jnp.greater)
        take_lo = better(y[1], y[3], x[1], x[3], jnp.less)
        # with no path either way, an all-NaN side stays NaN (0 means no path at all)
        nan_only = (x[2] < 0) & (y[2] < 0) & jnp.isnan(y[0])
        take_hi, take_lo = take_hi | nan_only, take_lo | nan_only
        return (jnp.where(take_hi, y[0], x[0]), jnp.where(take_lo, y[1], x[1]),
                jnp.where(take_hi, y[2], x[2]), jnp.where(take_lo, y[3], x[3]),
                jnp.where(take_hi, y[4], x[4]), jnp.where(take_lo, y[5], x[5]))

    def to_fields(self, state):
        hi, lo, hi_consumer, lo_consumer, hi_source, lo_source = state
        return (hi, hi_consumer, hi_source), (lo, lo_consumer, lo_source)

    def from_fields(self, values):
        (hi, hi_consumer, hi_source), (lo, lo_consumer, lo_source) = values
        return hi, lo, hi_consumer, lo_consumer, hi_source, lo_source


# The names `backprop(values_to_compute=...)` accepts, as in the original brunoflow.
BY_NAME = {"grad": Grad(), "abs_val_grad": AbsGrad(), "entropy": Entropy(), "max_grad": MaxProduct(),
           "max_path": MaxPath()}


def resolve(values_to_compute):
    """Names (or Semiring instances) → the semirings to run, dropping ones another subsumes."""
    if isinstance(values_to_compute, (str, Semiring)):
        values_to_compute = (values_to_compute,)
    chosen = []
    for v in values_to_compute:
        if isinstance(v, Semiring):
            chosen.append(v)
        elif v in BY_NAME:
            chosen.append(BY_NAME[v])
        else:
            raise ValueError(f"unknown value to compute {v!r}; valid names are {sorted(BY_NAME)} "
                             "(or pass Semiring instances)")
    if not chosen:
        raise ValueError(f"values_to_compute is empty; pick any of {sorted(BY_NAME)}")
    unique = list(dict.fromkeys(chosen))
    # AbsGrad's field is a component of Entropy's state: computing both would do it twice.
    return tuple(s for s in unique
                 if not any(o is not s and set(s.fields) < set(o.fields) for o in unique))
