"""Elementwise primitives: one row per op, incl. broadcasting, constants and reflected operators."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf
from brunoflow import func as F

from .._check import check_elementwise

COND = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, True]])

ROWS = [
    # id, bf, jnp, shapes, domain
    ("add_broadcast_row", F.add, jnp.add, [(3, 4), (4,)], "real"),
    ("add_outer_broadcast", lambda x, y: x + y, jnp.add, [(3, 1), (1, 4)], "real"),
    ("add_scalar_right", lambda x: x + 2.0, lambda x: x + 2.0, [(3, 4)], "real"),
    ("add_scalar_left", lambda x: 2.0 + x, lambda x: 2.0 + x, [(3, 4)], "real"),
    ("add_0d_node", F.add, jnp.add, [(2, 3), ()], "real"),
    ("sub_broadcast", F.sub, jnp.subtract, [(4,), (3, 4)], "real"),
    ("rsub_scalar", lambda x: 2.0 - x, lambda x: 2.0 - x, [(3, 4)], "real"),
    ("mul_outer_broadcast", lambda x, y: x * y, jnp.multiply, [(3, 1), (1, 4)], "real"),
    ("mul_scalar_left", lambda x: 3.0 * x, lambda x: 3.0 * x, [(3, 4)], "real"),
    # x in both slots: two parallel edges of weight x each, not one edge of weight 2x
    ("mul_self", lambda x: x * x, lambda x: x * x, [(3, 4)], "nonzero", [(jnp.multiply, [0, 0])]),
    ("div", lambda x, y: x / y, jnp.divide, [(3, 4), (4,)], "positive"),
    ("rdiv_scalar", lambda x: 1.0 / x, lambda x: 1.0 / x, [(3, 4)], "nonzero"),
    ("pow_square", lambda x: x ** 2, lambda x: x ** 2, [(3, 4)], "nonzero"),
    ("pow_nodes", F.pow, jnp.power, [(3, 4), (4,)], "positive"),
    ("rpow_int", lambda x: 2 ** x, lambda x: 2 ** x, [(3, 4)], "real"),
    ("neg_operator", lambda x: -x, jnp.negative, [(3, 4)], "real"),
    ("abs_builtin", lambda x: abs(x), jnp.abs, [(3, 4)], "nonzero"),
    ("exp", F.exp, jnp.exp, [(3, 4)], "real"),
    ("log", F.log, jnp.log, [(3, 4)], "positive"),
    ("sqrt", F.sqrt, jnp.sqrt, [(3, 4)], "positive"),
    ("tanh", F.tanh, jnp.tanh, [(3, 4)], "real"),
    ("sigmoid", F.sigmoid, jax.nn.sigmoid, [(3, 4)], "real"),
    ("relu", F.relu, jax.nn.relu, [(3, 4)], "nonzero"),
    ("erf", F.erf, jax.lax.erf, [(3, 4)], "real"),
    ("gelu_exact", F.gelu, lambda x: jax.nn.gelu(x, approximate=False), [(3, 4)], "real"),
    ("gelu_tanh", lambda x: F.gelu(x, approximate=True), lambda x: jax.nn.gelu(x, approximate=True),
     [(3, 4)], "real"),
    ("maximum", F.maximum, jnp.maximum, [(3, 4), (4,)], "real"),
    ("maximum_constant", lambda x: F.maximum(x, 0.0), lambda x: jnp.maximum(x, 0.0), [(3, 4)], "nonzero"),
    ("minimum", F.minimum, jnp.minimum, [(3, 4), (3, 4)], "real"),
    ("where_broadcast", lambda x, y: F.where(COND, x, y), lambda x, y: jnp.where(COND, x, y),
     [(3, 4), (4,)], "real"),
    ("where_constant", lambda x: F.where(COND, x, 0.0), lambda x: jnp.where(COND, x, 0.0), [(3, 4)], "real"),
]


@pytest.mark.parametrize("fn_bf, fn_jnp, shapes, domain, ops",
                         [pytest.param(*r[1:5], r[5] if len(r) > 5 else None, id=r[0]) for r in ROWS])
def test_elementwise(fn_bf, fn_jnp, shapes, domain, ops):
    check_elementwise(fn_bf, fn_jnp, shapes, domain=domain, ops=ops)


@pytest.mark.parametrize("fn_bf, fn_jnp", [(F.maximum, jnp.maximum), (F.minimum, jnp.minimum)])
def test_exact_ties_split_the_credit_half_and_half(fn_bf, fn_jnp):
    x = np.array([1.0, 2.0, -3.0, 0.5], np.float32)
    y = np.array([1.0, 0.0, -3.0, 4.0], np.float32)
    (xn, yn), _ = check_elementwise(fn_bf, fn_jnp, None, inputs=[x, y], then_sum=True)
    tie = x == y
    np.testing.assert_array_equal(np.asarray(xn.grad)[tie], 0.5)
    np.testing.assert_array_equal(np.asarray(yn.grad)[tie], 0.5)
    # each half-edge contributes -½ log ½ to the entropy; the other input's edge is 0 and no edge
    np.testing.assert_allclose(np.asarray(xn.entropy_wrt_output)[tie], 0.5 * np.log(2), rtol=1e-6)


def test_where_condition_carries_no_derivative():
    x, y = bf.Node(jnp.ones((3, 4))), bf.Node(jnp.full((3, 4), 2.0))
    out = F.where(COND, x, y)
    assert [n for n in out.inputs if isinstance(n, bf.Node)] == [x, y]
    out.sum().backprop()
    np.testing.assert_array_equal(x.grad, COND.astype(np.float32))
    np.testing.assert_array_equal(y.grad, (~COND).astype(np.float32))
