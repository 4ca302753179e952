# %% [markdown]
# # Semiring backprop on a graph small enough to enumerate
#
# Backprop computes, for every node, a sum over all paths to the output of the product of
# the local partials along the path. Change what "sum" and "product" mean (pick another
# *semiring*) and the same backward sweep computes other things (Du et al., ACL 2023):
#
# | semiring | ⊕ (merge paths) | ⊗ on an edge with partial w | brunoflow field | gives |
# |---|---|---|---|---|
# | real | + | w | `grad` | the gradient |
# | absolute | + | \|w\| | `abs_val_grad` | gradient mass: no cancellation between paths |
# | entropy | + | (\|w\|, −\|w\| log\|w\|) | `compute_entropy()` | how evenly that mass spreads over paths |
# | max-product | max | w | `max_grad_…`, `max_path_…` | the strongest route (and the most negative) |
#
# The graph here has a handful of scalars, so we list every path by hand and check each
# semiring against that list.

# %%
import math
import os
import tempfile

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")  # draw to files only
import matplotlib.pyplot as plt  # noqa: E402

import brunoflow as bf  # noqa: E402
from brunoflow import func as F  # noqa: E402

# %% [markdown]
# ## The graph: y = Σ (tanh(x @ W) ⊙ x + x)
# `x` feeds three ops: the matmul, the product, and the final add (a skip connection, like
# BERT's residuals). So its paths fan out and meet again further down.

# %%
x = bf.Node(jnp.array([1.5, -1.0]), name="x")
W = bf.Node(jnp.array([[1.0, -0.5], [1.2, 0.5]]), name="W")
h = F.matmul(x, W)
t = F.tanh(h)
u = t * x
v = u + x
y = F.reduce_sum(v)
y.backprop(values_to_compute=("grad", "abs_val_grad", "entropy", "max_grad", "max_path"))
tensors = {"x": x, "W": W, "h": h, "t": t, "u": u, "v": v, "y": y}
for name in ("h", "t", "u", "v", "y"):
    print(f"{name} = {np.round(np.asarray(tensors[name].val), 4)}")

# %% [markdown]
# ## The scalar graph, and every path through it
# Each op's Jacobian (from `jax.jacobian`) lists its edges: entry J[o, e] ≠ 0 is an edge from
# input element e to output element o, with weight J[o, e]. A depth-first search then lists
# every path from an element to `y`.

# %%
OPS = [("h", jnp.matmul, ("x", "W")), ("t", jnp.tanh, ("h",)), ("u", jnp.multiply, ("t", "x")),
       ("v", jnp.add, ("u", "x")), ("y", jnp.sum, ("v",))]  # in the order they were made
size = {name: max(1, int(np.prod(node.shape))) for name, node in tensors.items()}
jacobian = {}  # (output name, input name) -> (size[out], size[in]) matrix
edges = {}     # (name, element) -> [(output name, output element, weight)]
for out, fn, ins in OPS:
    args = [tensors[name].val for name in ins]
    for slot, name in enumerate(ins):
        jac = np.asarray(jax.jacobian(fn, argnums=slot)(*args), np.float64).reshape(size[out], size[name])
        jacobian[(out, name)] = jac
        for o, e in zip(*np.nonzero(jac)):
            edges.setdefault((name, int(e)), []).append((out, int(o), float(jac[o, e])))


def paths(name, element):
    """Every path from (name, element) to y, as a list of edges (next name, next element, weight)."""
    if name == "y":
        return [[]]
    return [[(n, o, w)] + rest for n, o, w in edges.get((name, element), []) for rest in paths(n, o)]


def product(path):
    return math.prod(w for _, _, w in path)


def label(name, element):
    return "y" if name == "y" else f"{name}[{element}]"


for i in range(2):
    print(f"paths from x[{i}]:")
    for p in paths("x", i):
        route = " → ".join([label("x", i)] + [label(n, o) for n, o, _ in p])
        print(f"  {route:<42} product {product(p):+.4f}")

# %% [markdown]
# ## Sum, |sum| and entropy: one sweep equals the enumeration
# For every element of every tensor: `grad` = Σ products, `abs_val_grad` = Σ |products|,
# entropy = Shannon entropy (in nats) of the distribution p(path) ∝ |product|: 0 when one path
# carries all the mass, log(#paths) when all carry the same. The neuron-granular `max_path`
# (min) is the largest (smallest) single product.

# %%
def flat(array):
    return np.asarray(array, np.float64).reshape(-1)


print(f"{'element':>8} {'paths':>5} {'grad':>8} {'Σ|path|':>8} {'entropy':>8} {'log #':>6} {'max path':>9} {'min path':>9}")
for name in ("x", "W", "h", "t", "u", "v"):
    node = tensors[name]
    got = {"grad": flat(node.grad), "abs": flat(node.abs_val_grad), "entropy": flat(node.compute_entropy().val),
           "max": flat(node.max_path_of_output_wrt_node[0]), "min": flat(node.min_path_of_output_wrt_node[0])}
    for e in range(size[name]):
        ps = [product(p) for p in paths(name, e)]
        mass = sum(abs(p) for p in ps)
        entropy = -sum(abs(p) / mass * math.log(abs(p) / mass) for p in ps)
        want = {"grad": sum(ps), "abs": mass, "entropy": entropy, "max": max(ps), "min": min(ps)}
        if name in ("x", "W"):  # the rest have a single path each: nothing to spread
            print(f"{label(name, e):>8} {len(ps):>5} {want['grad']:>8.4f} {mass:>8.4f} {abs(entropy):>8.4f} "
                  f"{math.log(len(ps)):>6.3f} {want['max']:>9.4f} {want['min']:>9.4f}")
        for key, value in want.items():
            assert np.isclose(got[key][e], value, rtol=1e-5, atol=1e-6), (name, e, key, got[key][e], value)
        assert -1e-6 <= entropy <= math.log(len(ps)) + 1e-6
print("grad, abs_val_grad, entropy, max_path and min_path all equal the enumeration")

# %% [markdown]
# ## Operation-granular max-product (`max_grad`, as in the original brunoflow)
# `max_grad` does *not* maximise over single paths. For each consumer op it applies the op's
# ordinary VJP to the upstream max and to the upstream min (a negative partial turns a min
# into a max), so edges **inside** one op are summed; only **across** the ops that consume a
# node does max (min) pick a winner, and `get_max_grad_parent()` is that winning op.
# Below: the same rule computed from the explicit Jacobians.

# %%
consumers = {}  # name -> the ops that read it, in creation order (= get_parents() order)
for out, _, ins in OPS:
    for name in ins:
        consumers.setdefault(name, []).append(out)

hi, lo, hi_from, lo_from = {"y": np.ones(1)}, {"y": np.ones(1)}, {}, {}
for name in ("v", "u", "t", "h", "W", "x"):  # reverse topological order
    via_hi = np.stack([jacobian[(c, name)].T @ hi[c] for c in consumers[name]])  # (consumers, elements)
    via_lo = np.stack([jacobian[(c, name)].T @ lo[c] for c in consumers[name]])
    cand_hi, cand_lo = np.maximum(via_hi, via_lo), np.minimum(via_hi, via_lo)
    hi_from[name], lo_from[name] = cand_hi.argmax(0), cand_lo.argmin(0)  # ties: the earliest consumer
    hi[name], lo[name] = cand_hi.max(0), cand_lo.min(0)
    if name == "x":
        candidates = cand_hi
assert candidates[0, 0] > flat(x.max_path_of_output_wrt_node[0])[0]  # x[0]: the sum beats every path
assert candidates[0, 1] < flat(x.max_path_of_output_wrt_node[0])[1]  # x[1]: cancellation inside the op

for name in ("x", "W", "h", "t", "u", "v"):
    node = tensors[name]
    assert np.allclose(flat(node.max_grad_of_output_wrt_node[0]), hi[name], rtol=1e-5, atol=1e-6), name
    assert np.allclose(flat(node.max_neg_grad_of_output_wrt_node[0]), lo[name], rtol=1e-5, atol=1e-6), name
    winners = node.get_max_grad_parent().reshape(-1)
    losers = node.get_max_neg_grad_parent().reshape(-1)
    assert all(winners[e] is tensors[consumers[name][hi_from[name][e]]] for e in range(size[name])), name
    assert all(losers[e] is tensors[consumers[name][lo_from[name][e]]] for e in range(size[name])), name

print(f"{'':>5}" + "".join(f"{'via ' + c + ' (' + tensors[c].op.name + ')':>16}" for c in consumers["x"])
      + f"{'max_grad':>10}{'won by':>8}{'max path':>10}")
for i in range(2):
    print(f"x[{i}] " + "".join(f"{value:>16.4f}" for value in candidates[:, i])
          + f"{float(x.max_grad_of_output_wrt_node[0][i]):>10.4f}{x.get_max_grad_parent()[i].op.name:>8}"
          + f"{float(x.max_path_of_output_wrt_node[0][i]):>10.4f}")
print("max_grad, max_neg_grad and their back-pointers equal the op-granular computation")

# %% [markdown]
# The two granularities differ whenever an op fans one element out to several (the matmul
# sends x[i] to both h[0] and h[1]): `max_grad` scores the matmul by the *sum* of those routes,
# `max_path` by the best single one. For x[0] the two matmul routes add up (1.37 + 0.14 beats
# any single path); for x[1] they partly cancel (1.65 − 0.14 falls below the best single path).
# Keep that in mind when reading "top path" results from the original brunoflow, which only
# had the operation-granular kind.

# %% [markdown]
# ## The top gradient path, drawn
# `bf.top_path(node, index)` walks the back-pointers from `node[index]` to the output and
# returns `Hop(node, index, value)`s; `hop.value` is the best product from that element on,
# and `hop.module_path` names the module that made the node (empty in this hand-built graph;
# `bert.encoder.layer.3.attention.self.query` in BERT). After a `max_path` backprop it follows
# the exact neuron-granular pointers (after only `max_grad` it follows the op-granular ones,
# whose hops need not multiply to the reported value). Everything about the path lives in
# this one cell; the drawing below only needs `route` (a list of (name, element)).

# %%
names = {id(node): name for name, node in tensors.items()}
start = int(np.argmax(flat(x.max_path_of_output_wrt_node[0])))
hops = bf.top_path(x, start)
route = [(names[id(hop.node)], int(np.ravel_multi_index(hop.index, hop.node.shape)) if hop.node.shape else 0)
         for hop in hops]
print(f"top path from x[{start}]:")
for hop, (name, e) in zip(hops, route):
    made_by = hop.node.op.name if hop.node.op else "leaf"
    print(f"  {label(name, e):>6}  made by {made_by:<10} module_path={hop.module_path!r:<4} value {hop.value:+.4f}")
best = max(paths("x", start), key=product)
assert route[1:] == [(n, o) for n, o, _ in best]      # the enumeration's best path, hop for hop
assert np.isclose(hops[0].value, product(best), rtol=1e-5)
lowest = bf.top_path(x, start, track="min")            # the min twin: the lowest product
print(f"lowest path from x[{start}]: "
      + " → ".join(label(names[id(hop.node)], int(np.ravel_multi_index(hop.index, hop.node.shape))
                         if hop.node.shape else 0) for hop in lowest)
      + f", product {lowest[0].value:+.4f}")
assert np.isclose(lowest[0].value, min(product(p) for p in paths("x", start)), rtol=1e-5)

# %%
position = {("x", 0): (0, 2.0), ("x", 1): (0, 1.3), ("y", 0): (5, 0)}
position.update({("W", e): (0, -0.9 - 0.6 * e) for e in range(4)})
position.update({(name, e): (col, 0.5 - e) for col, name in enumerate("htuv", 1) for e in range(2)})

fig, ax = plt.subplots(figsize=(9, 5))
on_route = set(zip(route, route[1:]))
for (name, e), targets in edges.items():
    for out, o, w in targets:
        highlighted = ((name, e), (out, o)) in on_route
        (x0, y0), (x1, y1) = position[(name, e)], position[(out, o)]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=3 if highlighted else 1,
                    arrowprops=dict(arrowstyle="-|>", shrinkA=13, shrinkB=13,
                                    color="crimson" if highlighted else "silver", lw=2.5 if highlighted else 1,
                                    connectionstyle=f"arc3,rad={-0.25 if x1 - x0 > 1 else 0}"))
        if highlighted:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.15, f"{w:+.3f}", color="crimson", ha="center", fontsize=8)
for (name, e), (px, py) in position.items():
    ax.scatter(px, py, s=700, color="mistyrose" if (name, e) in route else "whitesmoke", edgecolor="gray",
               zorder=2)
    ax.text(px, py, label(name, e), ha="center", va="center", fontsize=8, zorder=4)
ax.set_xlim(-0.5, 5.5)
ax.set_axis_off()
ax.set_title(f"top gradient path from x[{start}]: product of partials {hops[0].value:+.4f}")
out_dir = os.environ.get("PLAYGROUND_OUT") or tempfile.mkdtemp(prefix="playground_")
os.makedirs(out_dir, exist_ok=True)
png = os.path.join(out_dir, "semiring_top_path.png")
fig.savefig(png, dpi=120, bbox_inches="tight")
plt.close(fig)
print("wrote", png)
print("semiring playground: all checks passed")
