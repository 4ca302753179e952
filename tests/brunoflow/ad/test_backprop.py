"""The sweep itself: depth, accumulation, memory options, and errors at the boundary."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf
from brunoflow.ad.backprop import ancestors


def _mlp(x, w1, w2):
    return bf.func.tanh(bf.func.tanh(x @ w1) @ w2).sum()


def _leaves(seed=0):
    rng = np.random.default_rng(seed)
    return (bf.Node(rng.normal(size=(3, 4)).astype(np.float32)),
            bf.Node(rng.normal(size=(4, 5)).astype(np.float32)),
            bf.Node(rng.normal(size=(5, 2)).astype(np.float32)))


def test_a_chain_deeper_than_the_recursion_limit_backprops_without_recursion():
    """1,000 ops under a recursion limit of 200: any recursive walk of the graph (ancestors, the
    sweep, storing fields) would raise RecursionError; a 20,000-op chain proved no more."""
    x = bf.Node(jnp.full((4,), 0.1))
    y = x
    for i in range(1_000):
        y = bf.func.tanh(y) if i % 2 else y * 1.0001
    root = y.sum()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        root.backprop()
    finally:
        sys.setrecursionlimit(limit)

    def chain(v):  # the same 500 (mul, tanh) pairs as a loop, so XLA compiles it once
        return jax.lax.fori_loop(0, 500, lambda _, u: jnp.tanh(u * 1.0001), v).sum()

    expected = jax.jit(jax.grad(chain))(x.val)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-5)
    assert np.all(np.asarray(x.abs_val_grad) >= np.abs(np.asarray(x.grad)) * (1 - 1e-6))


def test_second_backprop_after_zero_gradients_gives_the_same_values():
    x, w1, w2 = _leaves()
    loss = _mlp(x, w1, w2)
    loss.backprop()
    first = {f: np.asarray(getattr(w1, f)) for f in ("grad", "abs_val_grad", "entropy_wrt_output")}
    first_max = [np.asarray(a) for a in w1.max_grad_of_output_wrt_node]
    loss.zero_gradients()
    assert w1.grad is None and w1.get_parents() == []
    loss.backprop()
    for f, value in first.items():
        np.testing.assert_array_equal(getattr(w1, f), value)
    for a, b in zip(w1.max_grad_of_output_wrt_node, first_max):
        np.testing.assert_array_equal(a, b)


def test_leaves_accumulate_like_torch_and_intermediates_do_not():
    x, w1, w2 = _leaves()
    hidden = bf.func.tanh(x @ w1)
    loss = bf.func.tanh(hidden @ w2).sum()
    loss.backprop(values_to_compute=("grad",))
    once_leaf, once_hidden = np.asarray(w1.grad), np.asarray(hidden.grad)
    loss.backprop(values_to_compute=("grad",))
    np.testing.assert_allclose(w1.grad, 2 * once_leaf, rtol=1e-6)
    np.testing.assert_allclose(hidden.grad, once_hidden, rtol=1e-6)


def test_max_product_accumulates_across_backprops_with_consistent_parents():
    x = bf.Node(jnp.array([1.0, -2.0]))
    a, b = x * 3.0, x * -1.0
    a.sum().backprop(values_to_compute=("max_grad",))
    b.sum().backprop(values_to_compute=("max_grad",))
    hi, hi_from = x.max_grad_of_output_wrt_node
    np.testing.assert_array_equal(hi, [3.0, 3.0])
    assert [p is a for p in x.get_max_grad_parent()] == [True, True]
    lo = x.max_neg_grad_of_output_wrt_node[0]
    np.testing.assert_array_equal(lo, [-1.0, -1.0])
    assert all(p is b for p in x.get_max_neg_grad_parent())


def test_save_leaf_grads_only_frees_intermediates_but_keeps_retained_nodes():
    x, w1, w2 = _leaves()
    hidden = bf.func.tanh(x @ w1)
    out = bf.func.tanh(hidden @ w2).sum()
    out.backprop(save_leaf_grads_only=True, retain=[hidden])
    assert hidden.grad is not None and hidden.max_grad_of_output_wrt_node is not None
    for node in ancestors(out):
        if node.op is not None and node is not hidden:
            assert node.grad is None and node.entropy_wrt_output is None, node
    assert w1.grad is not None and x.grad is not None

    reference_x, reference_w1, reference_w2 = _leaves()
    _mlp(reference_x, reference_w1, reference_w2).backprop()
    np.testing.assert_allclose(w1.grad, reference_w1.grad, rtol=1e-6)
    np.testing.assert_allclose(w1.entropy_wrt_output, reference_w1.entropy_wrt_output, rtol=1e-6)


def test_retain_accepts_a_predicate():
    x, w1, w2 = _leaves()
    out = _mlp(x, w1, w2)
    out.backprop(values_to_compute=("grad",), save_leaf_grads_only=True, retain=lambda n: n.op.name == "matmul")
    kept = [n for n in ancestors(out) if n.grad is not None and n.op is not None]
    assert kept and all(n.op.name == "matmul" for n in kept)


def test_kernels_compile_once_per_shape():
    x, w1, w2 = _leaves(1)
    _mlp(x, w1, w2).backprop()
    bf.kernel_stats.reset()
    x2, w12, w22 = _leaves(2)
    _mlp(x2, w12, w22).backprop()
    assert bf.kernel_stats.misses == 0 and bf.kernel_stats.hits > 0


def test_float64_when_x64_is_enabled():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        xv, wv = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
        x, w = bf.Node(xv), bf.Node(wv)
        out = bf.func.tanh(x @ w).sum()
        out.backprop()
        assert x.grad.dtype == jnp.float64 and x.entropy_wrt_output.dtype == jnp.float64
        expected = jax.grad(lambda a: jnp.tanh(a @ wv).sum())(jnp.asarray(xv))
        np.testing.assert_allclose(x.grad, expected, rtol=1e-12)


# -- bad input: clear errors that name the problem, raised before any kernel runs -------

def test_incompatible_shapes_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"add.*\(3,\).*\(4,\)"):
        bf.Node(jnp.ones(3)) + bf.Node(jnp.ones(4))
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        bf.Node(jnp.ones((2, 3))) @ bf.Node(jnp.ones((4, 5)))


def test_unknown_values_to_compute_lists_the_valid_names():
    x = bf.Node(jnp.ones(3))
    with pytest.raises(ValueError, match=r"'gradient'.*abs_val_grad.*entropy.*grad.*max_grad"):
        (x * 2.0).sum().backprop(values_to_compute=("gradient",))
    assert x.grad is None


def test_non_float_leaf_is_rejected_before_anything_is_written():
    ints = bf.Node(jnp.arange(3))
    floats = bf.Node(jnp.ones(3))
    out = (ints * floats).sum()
    with pytest.raises(TypeError, match=r"floating-point.*int"):
        out.backprop()
    assert floats.grad is None


def test_get_max_grad_parent_before_backprop_explains_what_to_do():
    with pytest.raises(ValueError, match="max_grad"):
        bf.Node(jnp.ones(2)).get_max_grad_parent()
    with pytest.raises(ValueError, match="entropy"):
        bf.Node(jnp.ones(2)).compute_entropy()


def test_copy_checks_shapes_and_keeps_dtype():
    p = bf.Parameter(jnp.zeros((2, 3)))
    p.copy_(np.ones((2, 3), dtype=np.float64))
    assert p.val.dtype == jnp.float32 and float(p.val.sum()) == 6.0
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        p.copy_(np.ones((3, 2)))


FIELDS = ("grad", "abs_val_grad", "entropy_wrt_output")


def test_inputs_limits_the_sweep_to_paths_from_them_and_changes_no_value():
    x, w1, w2 = _leaves()
    _mlp(x, w1, w2).backprop()
    full = {f: np.asarray(getattr(x, f)) for f in FIELDS}
    full_max = np.asarray(x.max_grad_of_output_wrt_node[0])

    x, w1, w2 = _leaves()
    root = _mlp(x, w1, w2)
    root.backprop(inputs=[x])
    for f in FIELDS:
        np.testing.assert_allclose(getattr(x, f), full[f], rtol=1e-6, err_msg=f)
    np.testing.assert_allclose(x.max_grad_of_output_wrt_node[0], full_max, rtol=1e-6)
    assert w1.grad is None and w2.grad is None  # weights are constants here: no kernel ran for them


def test_inputs_may_be_intermediate_nodes_and_are_kept_under_leaf_only():
    x, w1, w2 = _leaves()
    hidden = bf.func.tanh(x @ w1)
    root = bf.func.tanh(hidden @ w2).sum()
    root.backprop(values_to_compute=("grad",), inputs=[hidden], save_leaf_grads_only=True)
    expected = jax.grad(lambda h: jnp.tanh(h @ w2.val).sum())(hidden.val)
    np.testing.assert_allclose(hidden.grad, expected, rtol=1e-5, atol=1e-7)
    assert x.grad is None and w1.grad is None and w2.grad is None


def test_inputs_that_do_not_reach_the_output_are_an_error():
    x, w1, w2 = _leaves()
    with pytest.raises(ValueError, match="none of the given inputs is an ancestor"):
        _mlp(x, w1, w2).backprop(inputs=[bf.Node(jnp.ones(3))])


# -- accumulation across backprops that ask for different values (found from outside) ---

def test_each_semiring_accumulates_on_its_own_when_backprops_ask_for_different_values():
    x = bf.Node(jnp.array([1.0, 2.0]))
    y = (x * 3.0).sum()
    y.backprop(("grad",))
    y.backprop(("grad", "abs_val_grad"))
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])      # accumulated
    np.testing.assert_array_equal(x.abs_val_grad, [3.0, 3.0])  # first time asked: fresh


def test_a_leaf_output_accumulates_like_torch():
    x = bf.Node(jnp.array([1.0, -2.0]))
    x.backprop(("grad", "abs_val_grad"))
    x.backprop(("grad", "abs_val_grad"))
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    np.testing.assert_array_equal(x.abs_val_grad, [2.0, 2.0])


def test_a_partial_stored_state_is_an_error_before_anything_is_written():
    x = bf.Node(jnp.array([1.0, 2.0]))
    y = (x * 3.0).sum()
    y.backprop(("abs_val_grad",))
    with pytest.raises(ValueError, match="entropy_wrt_output.*zero_gradients"):
        y.backprop(("grad", "entropy"))
    assert x.grad is None  # nothing half-written: the model stays usable
    y.zero_gradients()
    y.backprop(("grad", "entropy"))
    np.testing.assert_array_equal(x.abs_val_grad, [3.0, 3.0])


def test_entropy_is_cleared_when_a_later_sweep_updates_abs_val_grad_alone():
    x = bf.Node(jnp.array([1.0, 2.0]))
    y = (x * 3.0).sum()
    y.backprop(("entropy",))
    y.backprop(("abs_val_grad",))
    np.testing.assert_array_equal(x.abs_val_grad, [6.0, 6.0])
    assert x.entropy_wrt_output is None  # it described one backprop, abs_val_grad two
    with pytest.raises(ValueError, match="compute_entropy"):
        x.compute_entropy()


def test_grads_keep_the_leaf_dtype_next_to_a_wider_constant():
    with jax.enable_x64(True):
        x = bf.Node(jnp.array([1.0, 2.0], jnp.float32))
        (x * np.array([1.0, -2.0], np.float64)).sum().backprop()
        for field in ("grad", "abs_val_grad", "entropy_wrt_output"):
            assert getattr(x, field).dtype == jnp.float32, field
        assert x.max_grad_of_output_wrt_node[0].dtype == jnp.float32
        np.testing.assert_array_equal(x.grad, [1.0, -2.0])


@pytest.mark.parametrize("stored", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_new_kernel_compiles_once_though_the_pool_compiles_it_ahead_of_the_sweep(dtype, stored, tmp_path,
                                                                                       monkeypatch):
    """The sweep's kernels start compiling in a thread pool on stand-in states; if those differed
    from the sweep's own in anything jit keys on (a weakly typed pointer, a missing state, the
    float64 setting, which `jax.enable_x64` makes per thread), the sweep would compile each kernel
    a second time. Kernels kept on disk (`kernel_store`) compile once too: a call typed unlike
    the executable's would fall back to jit and compile there."""
    from brunoflow.ad import kernel_store, primitive

    monkeypatch.setattr(kernel_store, "folder", (lambda: str(tmp_path)) if stored else (lambda: None))
    rng = np.random.default_rng(5)
    shapes = ((7, 11), (11, 13), (13, 3)) if dtype == "float32" else ((6, 10), (10, 12), (12, 3))  # new kernels
    if stored:
        shapes = tuple((a + 2, b + 2) for a, b in shapes[:2]) + ((shapes[2][0] + 2, 3),)
    with jax.enable_x64(dtype == "float64"):
        x, w1, w2 = (bf.Node(rng.normal(size=s).astype(dtype)) for s in shapes)
        root = _mlp(x, w1, w2) + (x * x).sum()
        before = len(primitive._backward_cache)
        root.backprop(values_to_compute=("grad", "abs_val_grad", "entropy", "max_grad", "max_path"))
        assert root.val.dtype == dtype
    new = list(primitive._backward_cache.values())[before:]
    assert len(new) > 1 and all(isinstance(k, kernel_store.StoredKernel) == stored for k in new)

    def compiles(kernel):
        if stored:
            return len(kernel._compiled) + kernel.jitted._cache_size()
        return kernel._cache_size()

    assert [compiles(kernel) for kernel in new] == [1] * len(new)


ALL_VALUES = ("grad", "abs_val_grad", "entropy", "max_grad", "max_path")


@pytest.mark.parametrize("x64", [False, True])
def test_a_sweep_cut_at_a_node_and_continued_from_its_states_gives_the_whole_sweeps_values(x64):
    """Every path from the root to x crosses `hidden`: sweeping the part above it from a copy
    of it, then the part below from the states left on the copy, is the whole sweep."""
    from brunoflow.ad.backprop import backprop, states_of
    with jax.enable_x64(x64):
        x, w1, w2 = _leaves()
        x, w1, w2 = (bf.Node(n.val.astype(jnp.float64 if x64 else jnp.float32)) for n in (x, w1, w2))
        hidden = bf.func.tanh(x @ w1)
        bf.func.tanh(hidden @ w2).sum().backprop(ALL_VALUES, inputs=[x])
        whole = {f: [np.asarray(a) for a in jax.tree.leaves(getattr(x, f))] for f in FIELDS + ("max_grad_of_output_wrt_node",
                                                                                          "max_path_of_output_wrt_node")}
        x.zero_gradients()
        cut = bf.Node(hidden.val)
        backprop(bf.func.tanh(cut @ w2).sum(), ALL_VALUES, inputs=[cut])
        backprop(hidden, ALL_VALUES, inputs=[x], seed=states_of(cut, ALL_VALUES))
        for field, arrays in whole.items():
            for got, expected in zip(jax.tree.leaves(getattr(x, field)), arrays):
                assert got.dtype == expected.dtype
                np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=field)


def test_a_seed_that_is_not_a_state_of_the_semirings_is_refused():
    from brunoflow.ad.backprop import backprop
    x, w1, w2 = _leaves()
    root = _mlp(x, w1, w2)
    with pytest.raises(ValueError, match="2 states for 1 semirings"):
        backprop(root, ("grad",), seed=((jnp.ones(()),), (jnp.ones(()),)))
    with pytest.raises(ValueError, match="not shaped as its seed"):
        backprop(root, ("max_grad",), seed=((jnp.ones(()),),))
    with pytest.raises(ValueError, match=r"not shaped as its seed.*got \(\(3,\),\)"):
        backprop(root, ("grad",), seed=((jnp.ones(3),),))
    root.backprop(("grad",))  # the model is still usable
    assert x.grad is not None
