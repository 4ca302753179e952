"""Scaled path sums: |grad| and entropy stay finite in float32 at any depth, and exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf

LAYERS, SPREAD = 40, 5e4  # per layer |grad| grows 2·SPREAD - 1 ≈ 1e5: 1e200 after 40 layers


def _deep_chain(dtype):
    """y_{k+1} = W_k · (s·y_k - (s-1)·y_k) (no sum over W's rows): the true gradient stays
    ±1 per layer (W is a signed permutation), |grad| multiplies by 2s-1 per layer."""
    x = bf.Node(jnp.asarray([0.5, -1.0, 2.0], dtype))
    y = x
    rng = np.random.default_rng(0)
    for _ in range(LAYERS):
        w = jnp.asarray(rng.permutation(np.eye(3)) * rng.choice([-1.0, 1.0], size=(3, 1)), dtype)
        y = bf.func.matmul(w, SPREAD * y - (SPREAD - 1) * y)
    return x, y.sum()


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_a_40_layer_chain_whose_abs_grad_is_1e200_stays_finite_and_exact(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        x, root = _deep_chain(dtype)
        root.backprop(values_to_compute=("grad", "entropy", "max_path"))
        per_layer = 2 * SPREAD - 1
        np.testing.assert_allclose(np.asarray(x.log_abs_val_grad), np.full(3, LAYERS * np.log(per_layer)), rtol=1e-6)
        np.testing.assert_allclose(np.abs(np.asarray(x.grad)), np.ones(3), rtol=1e-3)  # s·y - (s-1)·y rounds
        # two edges per layer with weights s and s-1: entropy is LAYERS times that coin's
        p = SPREAD / per_layer
        coin = -(p * np.log(p) + (1 - p) * np.log(1 - p))
        np.testing.assert_allclose(np.asarray(x.compute_entropy().val), np.full(3, LAYERS * coin), rtol=1e-5)
        value = np.asarray(x.abs_val_grad)
        assert value.dtype == dtype
        if dtype == jnp.float32:  # the true value does not fit: inf, never a wrong finite number
            assert np.isinf(value).all()
        else:
            np.testing.assert_allclose(value, np.full(3, per_layer ** LAYERS), rtol=1e-10)
        # the largest |single path| takes the s edge every layer: one product, not kept scaled, so
        # in float32 it overflows honestly (on real models single paths stay small: < 1e5 on MiniLM)
        top = np.maximum(np.asarray(x.max_path_of_output_wrt_node[0]), -np.asarray(x.min_path_of_output_wrt_node[0]))
        if dtype == jnp.float32:
            assert np.isinf(top).all()
        else:
            np.testing.assert_allclose(np.log(top), np.full(3, LAYERS * np.log(SPREAD)), rtol=1e-10)


def test_leaf_accumulation_aligns_exponents():
    with jax.enable_x64(False):
        x, root = _deep_chain(jnp.float32)
        root.backprop(values_to_compute=("entropy",))
        first = np.asarray(x.log_abs_val_grad)
        entropy = np.asarray(x.compute_entropy().val)
        (x * 1.0).sum().backprop(values_to_compute=("entropy",))  # adds 1 per element: far below 1e200
        np.testing.assert_allclose(np.asarray(x.log_abs_val_grad), first, rtol=1e-7)
        (x * 1e-3).sum().backprop(values_to_compute=("entropy",))
        np.testing.assert_allclose(np.asarray(x.compute_entropy().val), entropy, rtol=1e-5)


def test_scaled_values_read_back_as_the_plain_sums():
    a = bf.Scaled(jnp.asarray([0.5, 0.25, 0.0], jnp.float32), jnp.asarray(3, jnp.int32))
    np.testing.assert_array_equal(np.asarray(a.value()), [4.0, 2.0, 0.0])
    np.testing.assert_allclose(np.asarray(a.log()), [np.log(4.0), np.log(2.0), -np.inf], rtol=1e-7)
    b = bf.Scaled(jnp.asarray([0.5, 0.5, 0.5], jnp.float32), jnp.asarray(1, jnp.int32))
    np.testing.assert_array_equal(np.asarray((a + b).value()), [5.0, 3.0, 1.0])
    np.testing.assert_array_equal(np.asarray(a.ratio(b)), [4.0, 2.0, 0.0])
    np.testing.assert_array_equal(np.asarray(sum([a, b]).sum().value()), 9.0)
    huge = bf.Scaled(jnp.asarray([0.5], jnp.float32), jnp.asarray(200, jnp.int32))
    assert np.isinf(np.asarray(huge.value())).all() and np.isfinite(np.asarray(huge.log())).all()


def test_consumer_flows_give_scaled_sums_on_request():
    x, root = _deep_chain(jnp.float32)
    root.backprop(values_to_compute=("entropy", "max_grad"))  # max_grad records the consumers
    flows = [state for _, state in bf.consumer_flows(x, "entropy", scaled=True)]
    assert len(flows) == 2  # s·y and (s-1)·y
    a, h = flows[0]
    assert isinstance(a, bf.Scaled) and isinstance(h, bf.Scaled)
    total = sum(state[0] for _, state in bf.consumer_flows(x, "entropy", scaled=True))
    np.testing.assert_allclose(np.asarray(total.log()), np.asarray(x.log_abs_val_grad), rtol=1e-6)
    plain = [state for _, state in bf.consumer_flows(x, "entropy")]
    assert all(np.isinf(np.asarray(a)).all() for a, _ in plain)  # 1e200 in float32, as abs_val_grad
