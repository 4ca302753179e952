"""Brute-force reference for brunoflow's semiring values on tiny graphs (pytorch-struct style).

Written WITHOUT brunoflow: a graph is a *tape*, leaf arrays followed by ops `(fn, ids)`,
where `fn` is a jnp function of its inputs (constants closed over) and `ids` index earlier
tensors (leaves first, then op outputs in tape order). The output `y` is the last op's
tensor, every element seeded with 1.

The scalar gradient graph has one edge per (slot, input element, output element) whose
weight is that entry of `jax.jacobian(fn, argnums=slot)`; an input in two slots gives
parallel edges. Entries that are exactly 0 are not edges: they add nothing to grad, |grad|
or entropy, and for the path-enumeration max/min a structural zero (an off-diagonal entry
of an elementwise Jacobian) is not a path.

* `path_values()` enumerates every path explicitly (DFS) from every scalar to `y`.
* `op_max_min()` is the operation-granularity max/min-product of docs/architecture.md §2 on dense
  Jacobians: sum inside an op, max/min across consumer ops, ties to the lowest op index.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

MAX_PATHS = 200_000  # the oracle is for tiny graphs; past this, the test graph is too big
_JITTED = {}


def _value_jacobians_vjp(fn, n_inputs):
    """fn's value, its dense Jacobian w.r.t. every slot, and jax.vjp of ones (what a root
    seeded with ones gets), as ONE jitted call: compiling is what costs time in these tests."""
    key = (fn, n_inputs)
    if key not in _JITTED:
        argnums = tuple(range(n_inputs))

        def run(*xs):
            value, vjp = jax.vjp(fn, *xs)
            return value, jax.jacobian(fn, argnums=argnums)(*xs), vjp(jnp.ones_like(value))
        _JITTED[key] = jax.jit(run)
    return _JITTED[key]


class Tape:
    """Leaf arrays + ops [(jnp fn, input ids)]: forward values, dense Jacobians, scalar edges.
    Tensor ids: leaves 0..L-1, then op k's output is L+k; the last op's output is `output`."""

    def __init__(self, leaves, ops):
        self.leaves = [jnp.asarray(x) for x in leaves]
        self.ops = [(fn, list(ids)) for fn, ids in ops]
        self.n_leaves = len(self.leaves)
        self.values = list(self.leaves)
        self.jacobians = []  # jacobians[k][s]: (output size, input size) float64 matrix, op k, slot s
        self.vjps_of_ones = []  # vjps_of_ones[k][s]: jax.vjp of op k alone, cotangent ones, slot s
        for fn, ids in self.ops:
            value, jacs, vjps = _value_jacobians_vjp(fn, len(ids))(*[self.values[i] for i in ids])
            self.values.append(value)
            self.vjps_of_ones.append(vjps)
            self.jacobians.append([np.asarray(j, np.float64).reshape(value.size, -1) for j in jacs])
        self.output = len(self.values) - 1
        self.sizes = [int(np.prod(np.shape(v))) for v in self.values]
        self._edges = self._scalar_edges()

    def tensor_of_op(self, k):
        return self.n_leaves + k

    def consumers(self, t):
        """[(op index, slots t fills in it)] in tape (creation) order."""
        found = []
        for k, (_, ids) in enumerate(self.ops):
            slots = [s for s, i in enumerate(ids) if i == t]
            if slots:
                found.append((k, slots))
        return found

    def _scalar_edges(self):
        """edges[t][e] = [(t2, e2, w)] for every nonzero Jacobian entry, one per slot."""
        edges = [[[] for _ in range(n)] for n in self.sizes]
        for k, (_, ids) in enumerate(self.ops):
            t2 = self.tensor_of_op(k)
            for s, t in enumerate(ids):
                jac = self.jacobians[k][s]
                for e2, e in zip(*np.nonzero(jac)):
                    edges[t][e].append((t2, int(e2), float(jac[e2, e])))
        return edges

    # -- explicit path enumeration ------------------------------------------------------
    def path_products(self, t, e):
        """Product of edge weights along every path from scalar (t, e) to the output."""
        products = []
        stack = [(t, e, 1.0)]
        while stack:
            node_t, node_e, prod = stack.pop()
            if node_t == self.output:
                products.append(prod)
                if len(products) > MAX_PATHS:
                    raise RuntimeError("oracle graph too big: more than MAX_PATHS paths")
                continue
            for t2, e2, w in self._edges[node_t][node_e]:
                stack.append((t2, e2, prod * w))
        return products

    def path_values(self, t):
        """Per element of tensor t, every semiring value computed from its explicit paths.

        grad = Σ P_signed, abs = Σ |P|, entropy_wrt_output = −Σ |P| log |P|,
        entropy = Shannon entropy of |P| normalised (= h/abs + log abs), count = #paths,
        path_max/path_min = max/min of the signed products (±inf where no path).
        """
        shape = np.shape(self.values[t])
        out = {key: np.zeros(self.sizes[t]) for key in
               ("grad", "abs", "entropy_wrt_output", "entropy", "count", "path_max", "path_min")}
        for e in range(self.sizes[t]):
            products = self.path_products(t, e)
            weights = [abs(p) for p in products]
            a = sum(weights)
            h = -sum(w * math.log(w) for w in weights if w > 0)
            out["grad"][e] = sum(products)
            out["abs"][e] = a
            out["entropy_wrt_output"][e] = h
            out["entropy"][e] = h / a + math.log(a) if a > 0 else 0.0
            out["count"][e] = len(products)
            out["path_max"][e] = max(products, default=-math.inf)
            out["path_min"][e] = min(products, default=math.inf)
        return {key: value.reshape(shape) for key, value in out.items()}

    # -- operation-granularity max/min-product ------------------------------------------
    def op_max_min(self):
        """Per tensor: dict(hi, lo, hi_from, lo_from, hi_margin, lo_margin).

        *_from is the winning consumer's op index (-1 for the output itself); ties go to the
        lowest op index (the earliest-created consumer). *_margin is the gap to the runner-up
        consumer (inf with one consumer), so a caller can skip near-ties that rounding decides.
        """
        result = [None] * len(self.values)
        size = self.sizes[self.output]
        result[self.output] = dict(hi=np.ones(size), lo=np.ones(size), hi_from=np.full(size, -1),
                                   lo_from=np.full(size, -1), hi_margin=np.full(size, np.inf),
                                   lo_margin=np.full(size, np.inf))
        for t in reversed(range(self.output)):
            his, los, ks = [], [], []
            for k, slots in self.consumers(t):
                up = result[self.tensor_of_op(k)]
                jac = sum(self.jacobians[k][s] for s in slots)
                via_hi, via_lo = jac.T @ up["hi"], jac.T @ up["lo"]
                his.append(np.maximum(via_hi, via_lo))
                los.append(np.minimum(via_hi, via_lo))
                ks.append(k)
            if not ks:
                continue  # not an ancestor of the output
            his, los, ks = np.stack(his), np.stack(los), np.asarray(ks)
            hi_at, lo_at = np.argmax(his, axis=0), np.argmin(los, axis=0)  # first = lowest op index
            cols = np.arange(self.sizes[t])
            result[t] = dict(hi=his[hi_at, cols], lo=los[lo_at, cols], hi_from=ks[hi_at], lo_from=ks[lo_at],
                             hi_margin=_margin(his), lo_margin=_margin(-los))
        for t, r in enumerate(result):
            if r is not None:
                for key in r:
                    r[key] = r[key].reshape(np.shape(self.values[t]))
        return result


def _margin(stacked):
    if stacked.shape[0] == 1:
        return np.full(stacked.shape[1], np.inf)
    top2 = np.sort(stacked, axis=0)[-2:]
    return top2[1] - top2[0]
