"""Every semiring against brute-force path enumeration on tiny multi-op graphs (pytorch-struct style)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf
from brunoflow import ABS, Semiring
from brunoflow import func as F

from .._check import assert_close, check_graph, op_nodes, random_inputs
from .._oracle import Tape

GATHER = np.array([0, 2, 2, 1, 3])


def _build(arrays, program):
    """program: [(bf fn, jnp fn, input ids)] → bf leaves, bf root, oracle tape ops."""
    leaves = [bf.Node(a) for a in arrays]
    tensors = list(leaves)
    for fn_bf, _, ids in program:
        tensors.append(fn_bf(*[tensors[i] for i in ids]))
    return leaves, tensors[-1], [(fn_jnp, ids) for _, fn_jnp, ids in program]


def _sum():
    return lambda x: x.sum(), jnp.sum


GRAPHS = {
    # h = x·w feeds tanh and mul, so its max and min differ, and a negative w must swap them on
    # the way to x; the root is a tensor (seeded with ones), not a scalar
    "fan_out": ([(3,), (3,), (3,)], [
        (F.mul, jnp.multiply, [0, 1]),
        (F.tanh, jnp.tanh, [3]),
        (F.mul, jnp.multiply, [3, 2]),
        (F.add, jnp.add, [4, 5]),
        (F.exp, jnp.exp, [6]),
    ]),
    # x*x (x in two slots of one op: parallel edges), then x again in two more ops
    "shared_inputs": ([(2, 3)], [
        (F.mul, jnp.multiply, [0, 0]),
        (F.mul, jnp.multiply, [1, 0]),
        (F.sub, jnp.subtract, [2, 0]),
        _sum() + ([3],),
    ]),
    "matmul_chain": ([(2, 3), (3, 4), (4, 2)], [
        (F.matmul, jnp.matmul, [0, 1]),
        (F.matmul, jnp.matmul, [3, 2]),
        (F.tanh, jnp.tanh, [4]),
        _sum() + ([5],),
    ]),
    "broadcasting": ([(3, 1), (1, 4), (4,)], [
        (F.mul, jnp.multiply, [0, 1]),
        (F.add, jnp.add, [3, 2]),
        (F.sigmoid, jax.nn.sigmoid, [4]),
        (F.reduce_mean, jnp.mean, [5]),
    ]),
    # gather with repeated rows, and x also summed over rows: x fans out to two ops
    "getitem_gather": ([(4, 3), (3,)], [
        (lambda x: x[GATHER], lambda x: x[GATHER], [0]),
        (F.mul, jnp.multiply, [2, 1]),
        (lambda x: x.sum(0), lambda x: jnp.sum(x, 0), [0]),
        (F.add, jnp.add, [3, 4]),
        _sum() + ([5],),
    ]),
    "tanh_mlp": ([(2, 3), (3, 4), (4,), (4, 2)], [
        (F.matmul, jnp.matmul, [0, 1]),
        (F.add, jnp.add, [4, 2]),
        (F.tanh, jnp.tanh, [5]),
        (F.matmul, jnp.matmul, [6, 3]),
        (F.tanh, jnp.tanh, [7]),
        _sum() + ([8],),
    ]),
}


FAN_OUT = ("fan_out", "shared_inputs", "getitem_gather")


@pytest.mark.parametrize("name", list(GRAPHS))
def test_every_semiring_matches_path_enumeration(name):
    shapes, program = GRAPHS[name]
    leaves, root, ops = _build(random_inputs(shapes, "nonzero", seed=1), program)
    _, tensors = check_graph(leaves, root, ops)
    if name in FAN_OUT:  # a node with two consumer ops, or the parents would test nothing
        assert max(len(t.get_parents()) for t in tensors) >= 2


# -- the oracle's two notions of max-product ---------------------------------------------

ONE_TO_ONE = [  # every op maps each input element to exactly one output element; x feeds three ops
    (F.tanh, jnp.tanh, [0]),
    (F.mul, jnp.multiply, [0, 1]),
    (F.exp, jnp.exp, [3]),
    (F.sub, jnp.subtract, [2, 4]),
    (F.mul, jnp.multiply, [5, 0]),
    _sum() + ([6],),
]


def test_operation_granularity_equals_path_max_when_every_op_is_one_to_one():
    leaves, root, ops = _build(random_inputs([(4,), (4,)], "nonzero", seed=2), ONE_TO_ONE)
    tape, tensors = check_graph(leaves, root, ops)
    by_op = tape.op_max_min()
    for t, node in enumerate(tensors):
        paths = tape.path_values(t)
        np.testing.assert_allclose(by_op[t]["hi"], paths["path_max"], rtol=1e-12)
        np.testing.assert_allclose(by_op[t]["lo"], paths["path_min"], rtol=1e-12)
        assert_close(node.max_grad_of_output_wrt_node[0], paths["path_max"], err_msg=f"tensor {t}")
        assert_close(node.max_neg_grad_of_output_wrt_node[0], paths["path_min"], err_msg=f"tensor {t}")
    assert (tape.path_values(0)["count"] == 3).all()


def test_operation_granularity_sums_inside_an_op():
    # x (1,) broadcast against w (3,): three paths x→out_j→y inside ONE mul. docs/architecture.md §3: the
    # max is taken across consumer ops, the paths inside one op are summed.
    w = np.array([2.0, -1.0, 0.5], np.float32)
    leaves, root, ops = _build([np.array([1.5], np.float32), w], [
        (F.mul, jnp.multiply, [0, 1]), _sum() + ([2],)])
    tape, _ = check_graph(leaves, root, ops)
    hi = np.asarray(leaves[0].max_grad_of_output_wrt_node[0])
    np.testing.assert_allclose(hi, [w.sum()], rtol=1e-6)
    assert tape.path_values(0)["path_max"][0] == pytest.approx(2.0)  # the single best path differs


def test_ties_across_consumers_go_to_the_earliest_created_consumer():
    x = bf.Node(jnp.array([1.0, -2.0, 0.5]))
    first, second = x * 2.0, x * 2.0
    (first + second).sum().backprop(values_to_compute=("max_grad",))
    np.testing.assert_array_equal(x.max_grad_of_output_wrt_node[0], [2.0, 2.0, 2.0])
    assert all(p is first for p in x.get_max_grad_parent()), [
        "first" if p is first else "second" for p in x.get_max_grad_parent()]
    assert all(p is first for p in x.get_max_neg_grad_parent())


# -- semirings one at a time, and ones the library does not ship ----------------------

def _mlp(seed=3):
    shapes, program = GRAPHS["tanh_mlp"]
    return _build(random_inputs(shapes, "nonzero", seed), program)


@functools.lru_cache(maxsize=None)
def _full_sweep_reference():
    leaves, root, _ = _mlp()
    root.backprop()
    return leaves


@pytest.mark.parametrize("values, filled", [
    (("grad",), {"grad"}),
    (("abs_val_grad",), {"abs_val_grad"}),
    (("entropy",), {"abs_val_grad", "entropy_wrt_output"}),
    (("max_grad",), {"max_grad_of_output_wrt_node", "max_neg_grad_of_output_wrt_node"}),
    ((bf.Grad(), bf.MaxProduct()), {"grad", "max_grad_of_output_wrt_node", "max_neg_grad_of_output_wrt_node"}),
    ((bf.AbsGrad(), bf.Entropy()), {"abs_val_grad", "entropy_wrt_output"}),
])
def test_semirings_run_individually_and_agree_with_the_full_sweep(values, filled):
    fields = ("grad", "abs_val_grad", "entropy_wrt_output", "max_grad_of_output_wrt_node",
              "max_neg_grad_of_output_wrt_node")
    full_leaves = _full_sweep_reference()
    leaves, root, _ = _mlp()
    root.backprop(values_to_compute=values)
    for node, reference in zip(leaves, full_leaves):
        for field in fields:
            value = getattr(node, field)
            if field not in filled:
                assert value is None, field
                continue
            if field.startswith("max"):
                np.testing.assert_allclose(value[0], getattr(reference, field)[0], rtol=1e-6)
                np.testing.assert_array_equal(value[1], getattr(reference, field)[1])
            else:
                np.testing.assert_allclose(value, getattr(reference, field), rtol=1e-6, err_msg=field)
    if "max_grad_of_output_wrt_node" in filled:
        assert all(p is not None for p in leaves[0].get_max_grad_parent().ravel())


class PathCount(Semiring):
    """Natural numbers (+, ×) over φ = |·|: on a graph whose partials are all 0/1 it counts paths."""

    fields = ("path_count",)
    maps = (ABS,)

    def seed(self, y):
        return (jnp.ones_like(y),)

    def pull(self, vjp, up, consumer):
        return (vjp[ABS](up[0]),)

    def plus(self, x, y):
        return (x[0] + y[0],)


class LogAbsGrad(Semiring):
    """Log semiring (logaddexp, +) over log|w|: log of abs_val_grad, computed in log space."""

    fields = ("log_mass",)
    maps = (ABS,)

    def seed(self, y):
        return (jnp.zeros_like(y),)

    def pull(self, vjp, up, consumer):
        shift = jnp.max(up[0])  # log Σ |w| e^s = shift + log Σ |w| e^(s − shift)
        return (shift + jnp.log(vjp[ABS](jnp.exp(up[0] - shift))),)

    def plus(self, x, y):
        return (jnp.logaddexp(x[0], y[0]),)


def test_custom_path_count_semiring_counts_paths_of_a_zero_one_graph():
    x0 = np.arange(3.0, dtype=np.float32)
    program = [(lambda x: F.broadcast_to(x, (2, 3)), lambda x: jnp.broadcast_to(x, (2, 3)), [0]),
               (lambda b: b[np.array([0, 0, 1])], lambda b: b[np.array([0, 0, 1])], [1]),
               (lambda x: x[None], lambda x: x[None], [0]),
               (lambda g, e: F.concat([g, e], axis=0), lambda g, e: jnp.concatenate([g, e], 0), [2, 3]),
               (lambda c: F.reduce_sum(c, 0), lambda c: jnp.sum(c, 0), [4]),
               (lambda s: F.pad(s, ((1, 1),)), lambda s: jnp.pad(s, ((1, 1),)), [5])]
    (x,), root, ops = _build([x0], program)
    assert len(op_nodes(root)) == len(ops)  # one primitive per tape op
    root.backprop(values_to_compute=(PathCount(),))
    assert x.grad is None  # only the custom semiring ran
    expected = Tape([x0], ops).path_values(0)["count"]
    np.testing.assert_array_equal(expected, [4, 4, 4])  # 3 gathered rows of the broadcast + x itself
    np.testing.assert_array_equal(x.path_count, expected)
    root.zero_gradients()
    assert x.path_count is None  # a custom semiring's fields are cleared like the built-in ones


def test_custom_log_semiring_runs_next_to_the_builtin_ones():
    leaves, root, ops = _mlp()
    root.backprop(values_to_compute=("grad", LogAbsGrad()))
    tape = Tape([leaf.val for leaf in leaves], ops)
    for t, leaf in enumerate(leaves):
        assert_close(np.exp(np.asarray(leaf.log_mass, np.float64)), tape.path_values(t)["abs"],
                     err_msg=f"exp(log_mass) of leaf {t}")
        assert leaf.grad is not None and leaf.abs_val_grad is None


SQUARE = bf.EdgeMap("SQUARE", jnp.square, lambda c: float(c) ** 2)


class SquaredPathSum(bf.SumProduct):
    """Σ over paths of Π w²: a user's sum-product semiring is its fields and its φ."""

    fields = ("squared_path_sum",)
    maps = (SQUARE,)


class ScaledSquaredPathSum(bf.ScaledSumProduct):
    fields = ("scaled_squared_path_sum",)
    maps = (SQUARE,)


@pytest.mark.parametrize("semiring", [SquaredPathSum(), ScaledSquaredPathSum()], ids=repr)
def test_a_users_sum_product_semiring_sums_its_own_phi_over_the_paths(semiring):
    x0 = np.array([0.3, -0.7, 1.1], np.float32)
    w0 = np.array([[0.5, -1.2], [2.0, 0.4], [-0.3, 0.9]], np.float32)
    x, w = bf.Node(x0), bf.Node(w0)
    h = F.matmul(x, w)
    root = (F.tanh(h) + h * h).sum()  # h * h: h in both slots of one op, two parallel edges
    # Grad first, on the same graph: the custom semiring must get kernels of its own, not these
    root.backprop(values_to_compute=("grad",))
    root.backprop(values_to_compute=(semiring,))

    h0 = x0 @ w0
    # x_i reaches the root through w_ij into h_j, then through tanh (1 - tanh² h_j) or twice through h·h (h_j each)
    np.testing.assert_allclose(x.grad, w0 @ ((1 - np.tanh(h0) ** 2) + 2 * h0), rtol=1e-5)
    np.testing.assert_allclose(x.grad, jax.grad(lambda x: jnp.sum(jnp.tanh(x @ w0) + (x @ w0) ** 2))(x0), rtol=1e-5)
    expected = w0 ** 2 @ ((1 - np.tanh(h0) ** 2) ** 2 + 2 * h0 ** 2)
    got = getattr(x, semiring.fields[0])
    got = got.value() if isinstance(got, bf.Scaled) else got
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert not np.allclose(got, np.asarray(x.grad) ** 2, rtol=1e-2)  # a sum of squares, not the square of the sum


def test_semirings_are_equal_by_class_so_each_gets_its_own_kernels():
    kinds = [bf.Grad, bf.AbsGrad, bf.Entropy, bf.MaxProduct, bf.MaxPath, SquaredPathSum, ScaledSquaredPathSum]
    assert len({k() for k in kinds}) == len(kinds)
    assert all(k() == k() and hash(k()) == hash(k()) for k in kinds)


@pytest.mark.parametrize("name", ["matmul_chain", "broadcasting", "tanh_mlp", "fan_out"])
def test_max_path_running_scan_equals_the_direct_reduction(name, monkeypatch):
    """Large broadcast spaces are reduced by a lax.scan; force it on these tiny graphs."""
    from brunoflow.ad import primitive, tropical
    primitive.clear_caches()
    monkeypatch.setattr(tropical, "_SCAN_ABOVE", 0)
    try:
        shapes, program = GRAPHS[name]
        leaves, root, ops = _build(random_inputs(shapes, "nonzero", seed=2), program)
        check_graph(leaves, root, ops)
    finally:
        primitive.clear_caches()  # no kernel traced with the forced scan outlives this test
