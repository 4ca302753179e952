"""Primitives: a named forward plus ONE Jacobian declaration from one of three families.

* elementwise: the op declares its local partials (arrays broadcastable to the output);
  the φ-VJP for input k is `unbroadcast(φ(partial_k) * g, x_k.shape)`.
* linear: the op is linear in each differentiable input, and declares its plain VJP per
  input, taking the *other* operands as arguments. The φ-VJP is that VJP with the other
  operands replaced by φ(operand) (contractions), or scaled by φ(c) when every Jacobian
  entry is the constant c (structural ops: c = 1, so φ gives 1, 1 and 0).
* selection: the Jacobian is a 0/1 (tie-split) weight per input element that picks where a
  reduced output came from; the φ-VJP is `φ(weight) * expand(g)`.

Each family also gives its max-times transpose (`max_times_transposes`, the tropical rule a
neuron-granular semiring pulls with; ad/tropical.py): the families never ask which semiring or
map they serve, only the kernel below decides which rules to call. A semiring never appears
here: adding one changes no op. Kernels (forward, and one fused
backward per op that runs every requested semiring and ⊕ at once) are jitted and cached
by (op, static params, shapes, dtypes, semirings, input layout).
"""

import jax
import jax.numpy as jnp
import numpy as np

from . import compiler_options, kernel_store, tropical
from .node import Node, as_array, value_of
from .tropical import MAX_TIMES


def unbroadcast(g, shape):
    """Transpose of broadcasting: sum g down to `shape`."""
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and g.shape[extra + i] != 1)
    return jnp.sum(g, axis=axes).reshape(shape)


class Primitive:
    """A named op: `impl(*arrays, **static)` and how its Jacobian looks."""

    family = None
    # Scaled semirings renormalise after the ops whose Jacobians multiply path sums most
    # (contractions: a sum over a weight row); elementwise and structural ops rarely do, and
    # renormalising after every op made XLA compile a BERT backprop ~10x slower.
    grows_path_sums = False

    def __init__(self, name, impl, rule, differentiable=None, constant=1.0):
        self.name = name
        self.impl = impl
        self.rule = rule
        # Which positional inputs carry derivatives (None: all); e.g. where's condition does not.
        self.differentiable = differentiable
        self.constant = constant

    def __repr__(self):
        return f"<{self.family} primitive {self.name}>"

    def phi_vjps(self, maps, xs, out, static):
        """For each input slot, {φ: g ↦ φ-VJP of g}; φ-VJPs are traced inside the backward kernel."""
        raise NotImplementedError

    def max_times_transposes(self, xs, out, static):
        """For each input slot, its max-times transpose (ad/tropical.py): a function of the
        output's (hi, lo, reached) state giving (hi, lo, hi_source, lo_source) shaped like the
        input; None for a slot without derivatives. What a neuron-granular semiring pulls with."""
        raise NotImplementedError


class Elementwise(Primitive):
    family = "elementwise"

    def phi_vjps(self, maps, xs, out, static):
        partials = self.rule(out, *xs, **static)
        tables = []
        for x, p in zip(xs, partials):
            if p is None:  # a non-differentiable slot (e.g. where's condition)
                tables.append({})
                continue
            shape = jnp.shape(x)
            tables.append({phi: (lambda g, m=phi.array(p), shape=shape: unbroadcast(m * g, shape)) for phi in maps})
        return tables

    def max_times_transposes(self, xs, out, static):
        partials = self.rule(out, *xs, **static)
        return [None if p is None else (lambda state, p=p, shape=jnp.shape(x): tropical.elementwise(p, state, shape))
                for x, p in zip(xs, partials)]


class Linear(Primitive):
    """Structural ops (constant entries) and contractions (entries from another operand).

    `rule(g, *xs, **static)` returns the plain VJP for every input; rule=None derives it as
    the transpose of the (linear) forward with jax.vjp. `constant` is the structural ops'
    Jacobian entry (a float, or a function of (xs, static), e.g. 1/n for a mean).

    For the neuron-granular max-product a structural op also says how its 0/c entries lie:
    `relation` "copy" (each output element copies at most one input element: reshape,
    getitem, concat, pad, ...) or "spread" (each input element feeds one output element:
    sums), or a function of the static params giving one of the two.
    """

    family = "linear"

    def __init__(self, name, impl, rule=None, differentiable=None, constant=1.0, contraction=False,
                 relation="copy"):
        super().__init__(name, impl, rule or self._transpose_of_forward, differentiable, constant)
        self.contraction = contraction
        self.grows_path_sums = contraction
        self.relation = relation

    def _transpose_of_forward(self, g, *xs, **static):
        return jax.vjp(lambda *ops: self.impl(*ops, **static), *xs)[1](g)

    def phi_vjps(self, maps, xs, out, static):
        tables = [{} for _ in xs]
        for phi in maps:
            if self.contraction:
                mapped = tuple(phi.array(x) for x in xs)
                for k in range(len(xs)):
                    tables[k][phi] = (lambda g, k=k, mapped=mapped:
                                      self.rule(g, *mapped, **static)[k])
            else:
                entry = self.constant(xs, static) if callable(self.constant) else self.constant
                scale = phi.constant(entry)
                for k, x in enumerate(xs):
                    if scale == 0:
                        tables[k][phi] = lambda g, x=x: jnp.zeros(jnp.shape(x), g.dtype)
                    elif scale == 1:
                        tables[k][phi] = lambda g, k=k: self.rule(g, *xs, **static)[k]
                    else:
                        tables[k][phi] = lambda g, k=k, s=scale: s * self.rule(g, *xs, **static)[k]
        return tables

    def max_times_transposes(self, xs, out, static):
        slots = self._slots(xs)
        return [(lambda state, k=k: self._max_times(k, xs, out, static, state)) if k in slots else None
                for k in range(len(xs))]

    def _subscripts(self, xs, static):
        return static.get("subscripts") or tropical.matmul_subscripts(jnp.ndim(xs[0]), jnp.ndim(xs[1]))

    def max_times_source(self, slots, xs, static, state, flat_index, on_min):
        """The source a contraction left DEFERRED: the best edge from element `flat_index` of the
        input in `slots`, given this op's output state (hi, lo, reached); see tropical.einsum_source."""
        return tropical.einsum_source(self._subscripts(xs, static), slots, xs, state, flat_index, on_min)

    def _slots(self, xs):
        return [k for k in range(len(xs)) if self.differentiable is None or k in self.differentiable]

    def _max_times(self, k, xs, out, static, state):
        if self.contraction:
            # each element's edges into reached outputs, counted by the plain transpose of 0/1 entries
            hi, _, reached = state
            entries = [x if j == k else ((x != 0) & (x == x)).astype(hi.dtype) for j, x in enumerate(xs)]
            edges = self.rule(reached.astype(hi.dtype), *entries, **static)[k]
            return tropical.einsum(self._subscripts(xs, static), k, xs, state, edges)
        entry = self.constant(xs, static) if callable(self.constant) else self.constant
        relation = self.relation(static) if callable(self.relation) else self.relation
        shape, size = jnp.shape(xs[k]), int(np.prod(jnp.shape(xs[k])))
        if relation == "copy":  # run the forward on labels: which input element each output copies
            labels = [jnp.arange(1, size + 1, dtype=jnp.int32).reshape(shape) if j == k
                      else jnp.zeros(jnp.shape(x), jnp.int32) if j in self._slots(xs) else x
                      for j, x in enumerate(xs)]
            source = self.impl(*labels, **static)
            return tropical.finish_copy(tropical.copy(entry, source, state, size), shape, state[0].dtype)
        if out.size >= 2 ** 24:
            raise NotImplementedError(f"max_path through {self.name} with {out.size} outputs: its destinations "
                                      "travel as floats, exact below 2**24")
        # the transpose of a spread sends each output's label to the input elements it sums
        labels = jnp.arange(out.size, dtype=out.dtype).reshape(out.shape)
        destination = jnp.round(self.rule(labels, *xs, **static)[k]).astype(jnp.int32)
        return tropical.spread(entry, destination, state)


class Selection(Primitive):
    """reduce_max/min: `rule(out, x, **static)` gives the tie-split 0/1 weight per element of x."""

    family = "selection"

    def phi_vjps(self, maps, xs, out, static):
        (x,) = xs
        weight = self.rule(out, x, **static)
        return [{phi: (lambda g, m=phi.array(weight): m * _expand(g, x, static)) for phi in maps}]

    def max_times_transposes(self, xs, out, static):
        (x,) = xs
        weight = self.rule(out, x, **static)
        destination = _expand(jnp.arange(jnp.size(out), dtype=jnp.int32).reshape(jnp.shape(out)), x, static)
        return [lambda state: tropical.spread(weight, destination, state)]


def _expand(g, x, static):
    """Transpose of a reduction of x: broadcast g back over the reduced axes."""
    axis, ndim = static["axis"], jnp.ndim(x)
    if not static["keepdims"]:
        reduced = tuple(range(ndim)) if axis is None else tuple(
            a % ndim for a in ((axis,) if isinstance(axis, int) else axis))
        g = jnp.expand_dims(g, reduced)
    return jnp.broadcast_to(g, jnp.shape(x))


# ---------------------------------------------------------------------------------------
# Kernel caches. Keys are hashable descriptions; values are jitted callables.

class KernelStats:
    __slots__ = ("hits", "misses")

    def __init__(self):
        self.hits = 0
        self.misses = 0

    def reset(self):
        self.hits = self.misses = 0

    @property
    def hit_rate(self):
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


stats = KernelStats()
_forward_cache = {}
_backward_cache = {}


def signature(arrays):
    # Python scalars are weakly typed constants: their type is the whole signature.
    return tuple((a.shape, a.dtype) if hasattr(a, "dtype") else type(a) for a in arrays)


def forward_kernel(prim, arrays, static):
    key = (prim, tuple(sorted(static.items())), signature(arrays))
    fn = _forward_cache.get(key)
    if fn is None:
        stats.misses += 1
        def forward(*xs):
            return prim.impl(*xs, **static)

        fn = _forward_cache[key] = jax.jit(_named(forward, f"forward_{prim.name}"))
    else:
        stats.hits += 1
    return fn


def backward_kernel(prim, static, semirings, groups, first, arrays):
    """One jitted kernel for op `prim`: pull every semiring to every distinct input and ⊕ it in.

    groups[d]: the slots distinct input d occupies (x*x uses x twice: its VJPs add up, as
    parallel edges of one op). first[d][k]: d has no state for semiring k yet, so nothing to ⊕.
    """
    key = (prim, tuple(sorted(static.items())), semirings, groups, first, signature(arrays))
    fn = _backward_cache.get(key)
    if fn is not None:
        stats.hits += 1
        return fn
    stats.misses += 1
    maps = tuple(dict.fromkeys(m for s in semirings for m in s.maps))

    def kernel(xs, out, up, acc, consumer):
        tables = prim.phi_vjps(tuple(m for m in maps if m is not MAX_TIMES), xs, out, static)
        if MAX_TIMES in maps:  # the tropical edge algebra is the op family's own rule, not a φ
            for table, transpose in zip(tables, prim.max_times_transposes(xs, out, static)):
                if transpose is not None:
                    table[MAX_TIMES] = transpose
        results = []
        for d, slots in enumerate(groups):
            per_semiring = []
            for k, semiring in enumerate(semirings):
                vjp = {phi: (lambda g, phi=phi: _sum_slots(tables, slots, phi, g)) for phi in semiring.maps}
                state = semiring.pull(vjp, up[k], consumer[d])
                if prim.grows_path_sums:
                    state = semiring.normalise(state)
                state = _keep_dtype(state, xs[slots[0]])
                if not first[d][k]:
                    state = semiring.plus(acc[d][k], state)
                per_semiring.append(tuple(state))
            results.append(tuple(per_semiring))
        return tuple(results)

    named = _named(kernel, f"backward_{prim.name}")
    options = {} if getattr(prim, "contraction", False) else compiler_options.fast_compile()
    fn = compiler_options.WithOptions(named, options) if options else jax.jit(named)
    code = (prim.impl, prim.rule, prim.constant, getattr(prim, "relation", None), *(type(s) for s in semirings))
    if all(_known_code(c) for c in code if callable(c)):  # else a process could mean other code by the same name
        fn = kernel_store.stored(fn, ("backward", prim.family, prim.name, key[1],
                                      tuple(type(s).__qualname__ for s in semirings), groups, first, key[5]))
    _backward_cache[key] = fn
    return fn


def _known_code(code):
    """Whether a function or class is brunoflow's, JAX's or numpy's: the kernel store's key names
    their versions (brunoflow's by a digest of its source); a user's op or semiring could change
    between processes under the same name."""
    module = getattr(code, "__module__", None) or ""
    return module.split(".")[0] in ("brunoflow", "jax", "jaxlib", "numpy")


def _keep_dtype(state, x):
    """Values pulled to x take x's dtype (as jax.grad's do): a float64 constant next to a
    float32 leaf promotes the op's output, not the leaf's grad. Integer parts (pointers,
    exponents) are int32, as the seeds make them, and no part is weakly typed (a pointer made
    from the Python-int consumer slot would be int64 and weak under x64): the next kernel's
    signature, and so its compile, must not depend on how a state was made."""
    dtype = jnp.result_type(x)
    return tuple(jax.lax.convert_element_type(a, dtype if jnp.issubdtype(a.dtype, jnp.floating) else jnp.int32)
                 for a in state)


def _named(fn, name):
    """The op's name on its kernel: it is what jax_log_compiles and profiler traces show."""
    fn.__name__ = fn.__qualname__ = name
    return fn


def _sum_slots(tables, slots, phi, g):
    """Parallel edges of one op: their φ-VJPs add; under max-times the better one wins."""
    total = tables[slots[0]][phi](g)
    for s in slots[1:]:
        total = tropical.merge(total, tables[s][phi](g)) if phi is MAX_TIMES else total + tables[s][phi](g)
    return total


def clear_caches():
    _forward_cache.clear()
    _backward_cache.clear()
    stats.reset()


def _as_input(value):
    if isinstance(value, (Node, int, float, bool, np.ndarray, jax.Array)):
        return value
    return as_array(value)


def bind(prim, *inputs, **static):
    """Apply a primitive: run its cached forward kernel and record the Node it makes."""
    inputs = tuple(_as_input(v) for v in inputs)
    arrays = tuple(value_of(v) for v in inputs)
    try:
        val = forward_kernel(prim, arrays, static)(*arrays)
    except (TypeError, ValueError) as err:
        shapes = ", ".join(str(tuple(jnp.shape(a))) for a in arrays)
        params = "".join(f", {k}={v!r}" for k, v in static.items())
        raise ValueError(f"{prim.name}: cannot apply to inputs of shapes ({shapes}){params}: {err}") from err
    return Node.from_op(prim, inputs, static, val)
