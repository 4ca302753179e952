"""check_op(): one helper per op family (tinygrad's helper_test_op), against jax and the oracle.

Each helper builds seeded float32 inputs suited to its family, runs the bf op, compares the
forward with the jnp function, backprops every semiring, and checks `grad` against
`jax.vjp` and every semiring value (grad, |grad|, entropy, max/min and their parents) of
every tensor against the brute-force oracle on the graph "the op" (its output is the root,
seeded with ones) or, with then_sum=True, "the op, then a sum".
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import brunoflow as bf
from brunoflow.ad.paths import source_of
from brunoflow.ad.tropical import DEFERRED

from ._oracle import Tape

RTOL, ATOL = 1e-5, 1e-6
ALL_VALUES = ("grad", "max_grad", "abs_val_grad", "entropy", "max_path")


def assert_close(actual, expected, scale=0.0, err_msg=""):
    """|actual − expected| ≤ ATOL + RTOL·(|expected| + scale).

    `scale` is the size of the terms that were summed: a sum of float32 terms of total
    magnitude S carries an error ~eps·S even when the sum itself is near 0 (grad cancels,
    |grad| does not), so a signed quantity is checked relative to its |·| counterpart.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{err_msg}: shape {actual.shape} != {expected.shape}"
    bound = ATOL + RTOL * (np.abs(expected) + np.abs(scale))
    bad = ~(np.abs(actual - expected) <= bound)
    assert not bad.any(), (f"{err_msg}: {bad.sum()} of {bad.size} elements differ\n"
                           f"actual:\n{actual}\nexpected:\n{expected}")


def random_inputs(shapes, domain="real", seed=0):
    """Seeded float32 arrays. Domains: real (normal), positive and nonzero (|x| in [0.5, 2]:
    log/sqrt/div and the |w| log|w| terms stay away from 0), ties (values in {-1, 0, 1}),
    distinct (a shuffled grid: no two equal)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for shape in shapes:
        size = int(np.prod(shape))
        if domain == "real":
            x = rng.normal(size=shape)
        elif domain == "positive":
            x = rng.uniform(0.5, 2.0, size=shape)
        elif domain == "nonzero":
            x = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)
        elif domain == "ties":
            x = rng.integers(-1, 2, size=shape)
        elif domain == "distinct":
            x = (rng.permutation(size).reshape(shape) - size / 2) * 0.25
        else:
            raise ValueError(f"unknown domain {domain!r}")
        arrays.append(np.asarray(x, dtype=np.float32))
    return arrays


def op_nodes(root):
    """The op outputs behind root in creation order, which is the order a tape lists them."""
    seen, stack = {id(root): root}, [root]
    while stack:
        for inp in stack.pop().inputs:
            if isinstance(inp, bf.Node) and id(inp) not in seen:
                seen[id(inp)] = inp
                stack.append(inp)
    return sorted((n for n in seen.values() if n.op is not None), key=lambda n: n._order)  # creation counter


def _flat(objects):
    """get_max_grad_parent()'s result as a list. Never hand it to numpy: for a 0-d node it is
    the bare consumer Node, which numpy would try to iterate (and iterating a Node never stops)."""
    return list(objects.ravel()) if isinstance(objects, np.ndarray) else [objects]


def parent_indices(objects, op_index, shape):
    """get_max_grad_parent()'s object array → tape op indices (-1 for None)."""
    return np.array([-1 if p is None else op_index[id(p)] for p in _flat(objects)], dtype=int).reshape(shape)


def check_graph(leaves, root, ops, names=None, near_tie=1e-4):
    """Backprop `root` and compare every tensor of its graph with the oracle on the tape.

    The tape is the leaves' values followed by `ops` [(jnp fn, input ids)]; the bf graph
    must have one primitive per tape op, in the same order (that is the granularity the
    non-gradient semirings depend on), and `names` are those primitives' names. Parents
    are compared wherever the oracle's winner is not a near-tie (ties: see test_semirings).
    Returns the tape and the bf tensors (leaves, then op outputs) by tape id.
    """
    made = op_nodes(root)
    if names is not None:
        assert [n.op.name for n in made] == list(names), "graph granularity differs from the tape"
    assert len(made) == len(ops) and made[-1] is root, (
        f"bf built {[n.op.name for n in made]} but the tape has {len(ops)} ops")
    tape = Tape([leaf.val for leaf in leaves], ops)
    tensors = list(leaves) + made
    for t, node in enumerate(tensors):
        assert_close(node.val, tape.values[t], err_msg=f"forward of tensor {t} (tape mirrors the graph)")

    root.backprop(values_to_compute=ALL_VALUES)
    op_index = {id(n): k for k, n in enumerate(made)}
    maxmin = tape.op_max_min()
    compared_parents = 0
    refs = [tape.path_values(t) for t in range(len(tensors))]
    for t, node in enumerate(tensors):
        ref, mm, label = refs[t], maxmin[t], f"tensor {t} ({node!r})"
        assert_close(node.grad, ref["grad"], scale=ref["abs"], err_msg=f"grad of {label}")
        assert_close(node.abs_val_grad, ref["abs"], err_msg=f"abs_val_grad of {label}")
        assert_close(node.entropy_wrt_output, ref["entropy_wrt_output"],
                     err_msg=f"entropy_wrt_output of {label}")
        assert_close(node.compute_entropy().val, ref["entropy"], err_msg=f"compute_entropy of {label}")
        for field, track, getter in (("max_grad_of_output_wrt_node", "hi", node.get_max_grad_parent),
                                     ("max_neg_grad_of_output_wrt_node", "lo", node.get_max_neg_grad_parent)):
            value, index = getattr(node, field)
            assert_close(value, mm[track], scale=ref["abs"], err_msg=f"{field} of {label}")
            objects = getter()
            # the int back-pointers index get_parents(); -1 (nothing flowed) shows as None
            consumers = node.get_parents() + [None]
            assert [consumers[i] for i in np.ravel(index)] == _flat(objects), f"{field} of {label}"
            parents = parent_indices(objects, op_index, node.shape)
            decided = mm[f"{track}_margin"] > near_tie * (1 + np.abs(mm[track]))
            np.testing.assert_array_equal(parents[decided], mm[f"{track}_from"][decided],
                                          err_msg=f"{field} parents of {label}")
            compared_parents += int(decided.sum())
    assert compared_parents > 0
    _check_max_path(tape, tensors, op_index, refs)
    return tape, tensors


def _check_max_path(tape, tensors, op_index, refs):
    """Neuron-granular max-product: the value is the oracle's max (min) over explicit paths,
    0 with consumer -2 where no path exists; and every back-pointer is one edge of the
    graph whose weight times the value it points at gives this value, so following the
    pointers from any element multiplies out exactly the reported max."""
    root = len(tensors) - 1
    for t, node in enumerate(tensors):
        ref, label, parents = refs[t], f"tensor {t} ({node!r})", node.get_parents()
        for field, key in (("max_path_of_output_wrt_node", "path_max"), ("min_path_of_output_wrt_node", "path_min")):
            value, consumer, source = (np.asarray(a) for a in getattr(node, field))
            expected = np.where(np.isfinite(ref[key]), ref[key], 0.0)
            assert_close(value, expected, scale=ref["abs"], err_msg=f"{field} of {label}")
            np.testing.assert_array_equal(consumer == -2, ~np.isfinite(ref[key]), err_msg=f"{field}: no-path marks of {label}")
            for e in range(node.size):
                c, s, v = int(consumer.flat[e]), int(source.flat[e]), float(value.flat[e])
                if s == DEFERRED:  # a contraction kept values only: the walk recomputes its pointer
                    s = source_of(node, e, on_min=key == "path_min")
                if c == -2:
                    continue
                if c == -1:
                    assert t == root and v == 1.0, f"{field} of {label}: only the output ends a path"
                    continue
                nxt = parents[c]
                k, o, track = op_index[id(nxt)], s // 2, s % 2
                nxt_value = np.asarray(getattr(nxt, ("max_path_of_output_wrt_node", "min_path_of_output_wrt_node")[track])[0]).flat[o]
                slots = [j for j, i in enumerate(tape.ops[k][1]) if i == t]
                weights = [tape.jacobians[k][j][o, e] for j in slots]
                assert any(w != 0 and abs(w * nxt_value - v) <= ATOL + RTOL * (abs(v) + abs(ref["abs"].flat[e]))
                           for w in weights), f"{field} of {label}[{e}]: pointer to {nxt!r}[{o}] is no edge giving {v}"


def edge_weights(consumer, source, source_index, consumer_index):
    """∂consumer[consumer_index]/∂source[source_index], one per slot source fills (parallel
    edges), from one forward-mode product per slot: no dense Jacobian."""
    xs = [inp.val if isinstance(inp, bf.Node) else inp for inp in consumer.inputs]
    tangent = jnp.zeros(source.shape, source.dtype).at[source_index].set(1)
    weights = []
    for slot in (k for k, inp in enumerate(consumer.inputs) if inp is source):
        def f(t, slot=slot):
            return consumer.op.impl(*[t if k == slot else x for k, x in enumerate(xs)], **consumer.static)
        weights.append(float(jax.jvp(f, (source.val,), (tangent,))[1][consumer_index]))
    return weights


def _value_and_vjp_of_ones(fn, *xs):
    value, vjp = jax.vjp(fn, *xs)
    return value, vjp(jnp.ones_like(value))


def check_op(fn_bf, fn_jnp, shapes=None, *, inputs=None, domain="real", seed=0, then_sum=False,
             ops=None, names=None):
    """One op (or the primitives `ops` of a composite) on fresh leaves, then optionally a sum.

    Compares the forward with fn_jnp, `grad` with jax.vjp (cotangent ones: a tensor root is
    seeded with ones), and everything with the oracle. Returns the leaves and the root.
    """
    if inputs is None:
        arrays = random_inputs(shapes, domain, seed)
    else:
        arrays = [np.asarray(a, dtype=np.float32) for a in inputs]
    leaves = [bf.Node(a) for a in arrays]
    out = fn_bf(*leaves)
    assert isinstance(out, bf.Node) and out.dtype == jnp.float32, out

    single = ops is None
    ops = [(fn_jnp, list(range(len(arrays))))] if single else list(ops)
    names = list(names) if names is not None else None
    root = out
    if then_sum:
        root = out.sum()
        ops.append((jnp.sum, [len(arrays) + len(ops) - 1]))
        names = names + ["reduce_sum"] if names is not None else None
    tape, _ = check_graph(leaves, root, ops, names)

    if single:  # the tape's first op is fn_jnp itself: its value and vjp are already computed
        expected, expected_grads = tape.values[len(arrays)], tape.vjps_of_ones[0]
    else:
        expected, expected_grads = jax.jit(functools.partial(_value_and_vjp_of_ones, fn_jnp))(*arrays)
    assert_close(out.val, expected, err_msg="forward vs fn_jnp")
    for k, (leaf, g) in enumerate(zip(leaves, expected_grads)):
        assert leaf.grad.dtype == jnp.float32
        assert_close(leaf.grad, g, scale=leaf.abs_val_grad, err_msg=f"grad of input {k} vs jax.vjp")
    return leaves, root


def check_elementwise(fn_bf, fn_jnp, shapes, domain="real", **kwargs):
    """Elementwise ops: inputs from the op's domain (positive for log/sqrt/div...)."""
    return check_op(fn_bf, fn_jnp, shapes, domain=domain, **kwargs)


def check_structural(fn_bf, fn_jnp, shapes, **kwargs):
    """Structural ops: any values (their Jacobian entries are constants)."""
    return check_op(fn_bf, fn_jnp, shapes, domain="real", **kwargs)


def check_contraction(fn_bf, fn_jnp, shapes, **kwargs):
    """Contractions: entries away from 0 so every -|w| log|w| term is live."""
    return check_op(fn_bf, fn_jnp, shapes, domain="nonzero", **kwargs)


def check_selection(fn_bf, fn_jnp, shapes, ties=False, **kwargs):
    """reduce_max/min: distinct values, or few values so that ties split the credit."""
    return check_op(fn_bf, fn_jnp, shapes, domain="ties" if ties else "distinct", **kwargs)
