"""A whole forward + backprop + read-out can run under jax.jit and jax.vmap (docs/architecture.md §2)."""

import jax
import jax.numpy as jnp
import numpy as np

import brunoflow as bf


def analysis(x_val, w1_val, w2_val):
    x, w1, w2 = bf.Node(x_val), bf.Node(w1_val), bf.Node(w2_val)
    hidden = bf.func.tanh(x @ w1)
    out = bf.func.log_softmax(hidden @ w2, axis=-1)[..., 0].sum()
    out.backprop(values_to_compute=("grad", "max_grad", "abs_val_grad", "entropy", "max_path"))
    hi, hi_from = x.max_grad_of_output_wrt_node
    lo, lo_from = x.max_neg_grad_of_output_wrt_node
    path, path_consumer, path_source = x.max_path_of_output_wrt_node
    return dict(grad=x.grad, w1_grad=w1.grad, abs=x.abs_val_grad, entropy=x.compute_entropy().val,
                hi=hi, hi_from=hi_from, lo=lo, lo_from=lo_from, w1_entropy=w1.entropy_wrt_output,
                path=path, path_consumer=path_consumer, path_source=path_source,
                w1_min_path=w1.min_path_of_output_wrt_node[0])


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32))


def _assert_trees_close(a, b):
    for key in a:
        np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), rtol=2e-5, atol=1e-6, err_msg=key)


def test_jit_matches_eager():
    w1, w2 = _weights()
    x = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    _assert_trees_close(jax.jit(analysis)(x, w1, w2), analysis(x, w1, w2))


def test_vmap_over_a_batch_matches_one_at_a_time():
    w1, w2 = _weights()
    xs = np.random.default_rng(2).normal(size=(5, 2, 4)).astype(np.float32)
    batched = jax.jit(jax.vmap(analysis, in_axes=(0, None, None)))(xs, w1, w2)
    for i in range(len(xs)):
        _assert_trees_close({k: v[i] for k, v in batched.items()}, analysis(xs[i], w1, w2))


def test_jitted_grad_equals_jax_grad():
    w1, w2 = _weights(3)
    x = np.random.default_rng(4).normal(size=(2, 4)).astype(np.float32)
    expected = jax.grad(lambda a: jax.nn.log_softmax(jnp.tanh(a @ w1) @ w2, axis=-1)[..., 0].sum())(x)
    np.testing.assert_allclose(jax.jit(analysis)(x, w1, w2)["grad"], expected, rtol=1e-5, atol=1e-6)
