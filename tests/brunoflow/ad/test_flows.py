"""consumer_flows: a node's semiring value split by the consumer it came through."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf


def _two_branch_graph():
    rng = np.random.default_rng(0)
    x = bf.Node(rng.normal(size=(3, 4)).astype(np.float32))
    w = bf.Node(rng.normal(size=(4, 2)).astype(np.float32))
    through_matmul = bf.func.tanh(x @ w)
    through_scale = x * x * 3.0  # x twice in one mul: parallel edges of one consumer
    root = through_matmul.sum() + through_scale.sum()
    return x, w, root


def test_flows_add_up_to_the_value_and_split_it_by_branch():
    x, w, root = _two_branch_graph()
    root.backprop()
    flows = bf.consumer_flows(x, "grad")
    assert [c.op.name for c, _ in flows] == ["matmul", "mul"]  # creation order
    matmul_branch = jax.grad(lambda v: jnp.tanh(v @ w.val).sum())(x.val)
    square_branch = jax.grad(lambda v: (v * v * 3.0).sum())(x.val)
    np.testing.assert_allclose(flows[0][1][0], matmul_branch, rtol=1e-5)
    np.testing.assert_allclose(flows[1][1][0], square_branch, rtol=1e-5)
    for value, field in (("abs_val_grad", "abs_val_grad"), ("entropy", "entropy_wrt_output")):
        total = sum(state[-1] for _, state in bf.consumer_flows(x, value))
        np.testing.assert_allclose(total, getattr(x, field), rtol=1e-5, err_msg=value)
    hi = np.maximum.reduce([state[0] for _, state in bf.consumer_flows(x, "max_grad")])
    np.testing.assert_allclose(hi, x.max_grad_of_output_wrt_node[0], rtol=1e-6)


def test_flows_need_the_consumers_values():
    x, w, root = _two_branch_graph()
    root.backprop(save_leaf_grads_only=True)
    with pytest.raises(ValueError, match="holds no AbsGrad values"):
        bf.consumer_flows(x, "abs_val_grad")
