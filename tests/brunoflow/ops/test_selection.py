"""Selections: reduce_max / reduce_min, one-hot Jacobians that split ties evenly (as jax does)."""

import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf
from brunoflow import func as F

from .._check import check_selection

ROWS = [
    # id, bf op, jnp op, axis, keepdims, shape, ties (values in {-1, 0, 1}) or distinct values
    ("max_all_ties", F.reduce_max, jnp.max, None, False, (3, 4), True),
    ("max_axis0", F.reduce_max, jnp.max, 0, False, (3, 4), False),
    ("max_last_keepdims_ties", F.reduce_max, jnp.max, -1, True, (2, 3, 4), True),
    ("max_tuple_ties", F.reduce_max, jnp.max, (0, 2), False, (2, 3, 4), True),
    ("min_all", F.reduce_min, jnp.min, None, False, (3, 4), False),
    ("min_axis1_keepdims_ties", F.reduce_min, jnp.min, 1, True, (3, 4), True),
    ("min_tuple", F.reduce_min, jnp.min, (1, 2), True, (2, 3, 4), False),
]


@pytest.mark.parametrize("fn_bf, fn_jnp, axis, keepdims, shape, ties", [pytest.param(*r[1:], id=r[0]) for r in ROWS])
def test_selection(fn_bf, fn_jnp, axis, keepdims, shape, ties):
    (x,), _ = check_selection(lambda x: fn_bf(x, axis=axis, keepdims=keepdims),
                              lambda x: fn_jnp(x, axis=axis, keepdims=keepdims), [shape], ties=ties)
    split = (np.asarray(x.grad) % 1 != 0).any()  # a tie shows up as a fractional share
    assert split == ties


def test_ties_split_credit_and_entropy():
    x = bf.Node(jnp.array([[1.0, 3.0, 3.0, 3.0], [2.0, -1.0, 0.0, 1.0]]))
    F.reduce_max(x, axis=1).sum().backprop()
    third = 1 / 3
    np.testing.assert_allclose(x.grad, [[0, third, third, third], [1, 0, 0, 0]], rtol=1e-6)
    np.testing.assert_allclose(x.entropy_wrt_output, [[0] + [third * np.log(3)] * 3, [0, 0, 0, 0]], rtol=1e-6)
    np.testing.assert_allclose(x.max_grad_of_output_wrt_node[0], x.grad)
