# %% [markdown]
# # Semiring backprop on a graph small enough to enumerate
#
# Backprop computes, for every node, a sum over all paths to the output of the product of
# the local partials along the path. Change what "sum" and "product" mean — pick another
# *semiring* — and the same sweep computes other things (Du et al., ACL 2023):
#
# | semiring | ⊕ | ⊗ on an edge w | gives |
# |---|---|---|---|
# | real | + | w | the gradient |
# | absolute | + | \|w\| | gradient mass, no cancellation |
# | entropy | + | (\|w\|, −\|w\| log\|w\|) | how spread the mass is over paths |
# | max-product | max | w | the single best path (and the worst, tracked alongside) |
#
# Here the graph is tiny, so we list every path explicitly and check brunoflow against it.

# %%
import math
import os
import tempfile

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import brunoflow as bf  # noqa: E402
from brunoflow import func as F  # noqa: E402

# %% [markdown]
# ## The graph: y = Σ tanh(x @ W) ⊙ x
# `x` feeds two ops (the matmul and the product), so paths fan out and meet again.

# %%
x = bf.Node(jnp.array([0.5, -1.0]), name="x")
W = bf.Node(jnp.array([[1.0, -2.0], [0.5, 1.5]]), name="W")
h = F.matmul(x, W)
t = F.tanh(h)
u = t * x
y = F.reduce_sum(u)
y.backprop(values_to_compute=("grad", "abs_val_grad", "entropy", "max_grad", "max_path"))

# %% [markdown]
# ## Every path, by brute force
# The scalar graph has one edge per nonzero Jacobian entry of each op (one per input slot),
# with the entry as its weight. We get the Jacobians from `jax.jacobian`, then depth-first
# search every path from each element of `x` to `y`.

# %%
tensors = {"x": x, "W": W, "h": h, "t": t, "u": u, "y": y}
ops = [("h", lambda a, b: a @ b, ("x", "W")), ("t", jnp.tanh, ("h",)), ("u", jnp.multiply, ("t", "x")),
       ("y", jnp.sum, ("u",))]
edges = {}  # (tensor, element) -> [(tensor, element, weight)]
for out, fn, ins in ops:
    args = [tensors[name].val for name in ins]
    for slot, name in enumerate(ins):
        jac = np.asarray(jax.jacobian(fn, argnums=slot)(*args), np.float64)
        jac = jac.reshape(int(np.prod(tensors[out].shape)), -1)
        for o, e in zip(*np.nonzero(jac)):
            edges.setdefault((name, int(e)), []).append((out, int(o), float(jac[o, e])))


def paths(name, element):
    """Every path from (name, element) to y, as lists of (tensor, element, weight)."""
    if name == "y":
        return [[]]
    return [[(n, o, w)] + rest for n, o, w in edges.get((name, element), []) for rest in paths(n, o)]


def product(path):
    return math.prod(w for _, _, w in path)


print(f"{'x[i]':>5} {'paths':>5} {'grad':>9} {'Σ|path|':>9} {'entropy':>8} {'max path':>9} {'min path':>9}")
for i in range(2):
    ps = [product(p) for p in paths("x", i)]
    mass = sum(abs(p) for p in ps)
    entropy = -sum(abs(p) / mass * math.log(abs(p) / mass) for p in ps)
    print(f"{i:>5} {len(ps):>5} {sum(ps):>9.4f} {mass:>9.4f} {entropy:>8.4f} {max(ps):>9.4f} {min(ps):>9.4f}")
    assert np.isclose(float(x.grad[i]), sum(ps), atol=1e-6)
    assert np.isclose(float(x.abs_val_grad[i]), mass, atol=1e-6)
    assert np.isclose(float(x.compute_entropy().val[i]), entropy, atol=1e-5)
    assert np.isclose(float(x.max_path_of_output_wrt_node[0][i]), max(ps), atol=1e-6)
    assert np.isclose(float(x.min_path_of_output_wrt_node[0][i]), min(ps), atol=1e-6)
print("brunoflow's one sweep equals the enumeration for grad, abs, entropy, max and min paths")

# %% [markdown]
# ## Two granularities of max-product
# The original brunoflow's `max_grad` is *operation-granular*: inside one op the partials are
# summed (it applies the op's ordinary VJP to the upstream max), and only *across* the ops
# that consume a node does max pick a winner. `max_path` is the exact max over single paths.
# They agree when every op maps an element to one element; the matmul sums, so here they
# differ:

# %%
for i in range(2):
    print(f"x[{i}]: max_grad (op-granular) = {float(x.max_grad_of_output_wrt_node[0][i]):8.4f}, "
          f"max_path (exact) = {float(x.max_path_of_output_wrt_node[0][i]):8.4f}, "
          f"won by consumer {x.get_max_grad_parent()[i].op.name}")

# %% [markdown]
# ## The top gradient path, drawn
# `bf.top_path` follows `max_path`'s back-pointers: each hop is one edge, so the partials
# along it multiply to exactly the reported max.

# %%
start = int(np.argmax(np.asarray(x.max_path_of_output_wrt_node[0])))
hops = bf.top_path(x, start)
names = {id(node): name for name, node in tensors.items()}
for hop in hops:
    print(f"  {names[id(hop.node)]}{list(hop.index)}  value {hop.value:8.4f}")
walked = [(names[id(a.node)], int(np.ravel_multi_index(a.index, a.node.shape)) if a.node.shape else 0)
          for a in hops]
best = max(paths("x", start), key=product)
assert walked[1:] == [(n, o) for n, o, _ in best]
assert np.isclose(product(best), hops[0].value)

columns = ["x", "h", "t", "u", "y"]
fig, ax = plt.subplots(figsize=(7, 3))
position = {}
for col, name in enumerate(columns):
    size = int(np.prod(tensors[name].shape)) or 1
    for e in range(size):
        position[(name, e)] = (col, e - (size - 1) / 2)
        ax.scatter(col, e - (size - 1) / 2, s=300, color="lightgray", zorder=2)
        ax.annotate(f"{name}[{e}]" if name != "y" else "y", (col, e - (size - 1) / 2), ha="center", va="center",
                    fontsize=8, zorder=3)
for (name, e), targets in edges.items():
    for out, o, w in targets:
        if (name, e) in position and (out, o) in position:
            (x0, y0), (x1, y1) = position[(name, e)], position[(out, o)]
            ax.plot([x0, x1], [y0, y1], color="lightgray", zorder=1)
for a, b in zip(walked, walked[1:]):
    (x0, y0), (x1, y1) = position[a], position[b]
    ax.plot([x0, x1], [y0, y1], color="crimson", linewidth=2.5, zorder=1)
ax.set_axis_off()
ax.set_title(f"top gradient path from x[{start}] (product of partials {hops[0].value:.3f})")
out_dir = os.environ.get("PLAYGROUND_OUT", tempfile.mkdtemp())
os.makedirs(out_dir, exist_ok=True)
fig.savefig(os.path.join(out_dir, "semiring_top_path.png"), dpi=120, bbox_inches="tight")
print("wrote", os.path.join(out_dir, "semiring_top_path.png"))
print("semiring playground: all checks passed")
