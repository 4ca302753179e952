"""Structural primitives (0/1 or constant Jacobians) and the Node methods wired to them."""

import signal

import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf
from brunoflow import func as F

from .._check import check_structural

GATHER = np.array([0, 2, 2, 1, 0])  # repeated indices: scatter-add must accumulate
PICKED = np.array([[2, 0], [1, 1], [0, 2]])  # one class per (row, column) of a (3, 2, 3) input
LOOKED_UP = np.array([[0, 2, 2], [1, 3, 2]])  # 2 is the padding id; 4 is never looked up
MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])

ROWS = [
    # id, bf, jnp, shapes
    ("reshape_infer", lambda x: F.reshape(x, (2, -1)), lambda x: jnp.reshape(x, (2, -1)), [(3, 4)]),
    ("reshape_method_varargs", lambda x: x.reshape(4, 3), lambda x: x.reshape(4, 3), [(3, 4)]),
    ("T", lambda x: x.T, lambda x: x.T, [(3, 4)]),
    ("transpose_method", lambda x: x.transpose(1, 0), lambda x: x.transpose(1, 0), [(3, 4)]),
    ("permute_negative_axes", lambda x: F.permute(x, (-1, 0, 1)), lambda x: jnp.transpose(x, (2, 0, 1)),
     [(2, 3, 4)]),
    ("swapaxes", lambda x: F.swapaxes(x, 0, 2), lambda x: jnp.swapaxes(x, 0, 2), [(2, 3, 4)]),
    ("expand_dims_tuple", lambda x: F.expand_dims(x, (0, 2)), lambda x: jnp.expand_dims(x, (0, 2)), [(3, 4)]),
    ("squeeze_axis", lambda x: F.squeeze(x, 1), lambda x: jnp.squeeze(x, 1), [(3, 1, 4)]),
    ("squeeze_all", F.squeeze, jnp.squeeze, [(1, 3, 1)]),
    # a new leading axis and a stretched size-1 axis at once
    ("broadcast_to", lambda x: F.broadcast_to(x, (2, 3, 4)), lambda x: jnp.broadcast_to(x, (2, 3, 4)),
     [(1, 4)]),
    ("getitem_slice", lambda x: x[1:3], lambda x: x[1:3], [(4, 3)]),
    ("getitem_int", lambda x: x[1], lambda x: x[1], [(4, 3)]),
    ("getitem_negative_step", lambda x: x[::2, ::-1], lambda x: x[::2, ::-1], [(4, 3)]),
    ("getitem_none_slice", lambda x: x[:, None, 1:], lambda x: x[:, None, 1:], [(4, 3)]),
    ("getitem_ellipsis", lambda x: x[..., 2], lambda x: x[..., 2], [(2, 3, 4)]),
    ("getitem_gather_repeated", lambda x: x[GATHER], lambda x: x[GATHER], [(4, 3)]),
    # a list and a jax array as the two index arrays; the pair (0, 1) repeats
    ("getitem_gather_pairs", lambda x: x[[0, 0, 3], jnp.array([1, 1, 2])],
     lambda x: x[np.array([0, 0, 3]), np.array([1, 1, 2])], [(4, 3)]),
    ("getitem_bool_mask", lambda x: x[MASK], lambda x: x[np.nonzero(MASK)], [(3, 4)]),
    ("pick", lambda x: F.pick(x, PICKED), lambda x: jnp.take_along_axis(x, PICKED[..., None], -1)[..., 0],
     [(3, 2, 3)]),
    # the padding rows copy nothing: no edge from table row 2, as from row 4 that no id picks
    ("lookup_padding_idx", lambda x: F.lookup(x, LOOKED_UP, 2),
     lambda x: jnp.where((LOOKED_UP == 2)[..., None], 0.0, x[LOOKED_UP]), [(5, 3)]),
    ("concat_last_axis", lambda x, y, z: F.concat([x, y, z], axis=-1),
     lambda x, y, z: jnp.concatenate([x, y, z], -1), [(2, 1), (2, 3), (2, 2)]),
    ("concat_same_input_twice", lambda x: F.concat([x, x], axis=1), lambda x: jnp.concatenate([x, x], 1), [(2, 3)]),
    ("stack_last_axis", lambda x, y: F.stack([x, y], axis=-1), lambda x, y: jnp.stack([x, y], -1), [(2, 3), (2, 3)]),
    ("pad", lambda x: F.pad(x, ((1, 0), (2, 1))), lambda x: jnp.pad(x, ((1, 0), (2, 1))), [(2, 3)]),
    ("reduce_sum_all", F.reduce_sum, jnp.sum, [(3, 4)]),
    ("reduce_sum_negative_keepdims", lambda x: F.reduce_sum(x, -1, keepdims=True),
     lambda x: jnp.sum(x, -1, keepdims=True), [(2, 3, 4)]),
    ("reduce_sum_tuple", lambda x: F.reduce_sum(x, (0, 2)), lambda x: jnp.sum(x, (0, 2)), [(2, 3, 4)]),
    ("sum_method", lambda x: x.sum(0), lambda x: x.sum(0), [(3, 4)]),
    ("reduce_mean_all", F.reduce_mean, jnp.mean, [(3, 4)]),
    ("reduce_mean_axis_keepdims", lambda x: F.reduce_mean(x, 0, keepdims=True),
     lambda x: jnp.mean(x, 0, keepdims=True), [(3, 4)]),
    ("reduce_mean_tuple", lambda x: F.reduce_mean(x, (0, 2)), lambda x: jnp.mean(x, (0, 2)), [(2, 3, 4)]),
]


@pytest.mark.parametrize("fn_bf, fn_jnp, shapes", [pytest.param(*r[1:], id=r[0]) for r in ROWS])
def test_structural(fn_bf, fn_jnp, shapes):
    check_structural(fn_bf, fn_jnp, shapes)


def test_tensor_root_is_seeded_with_ones():
    (x,), root = check_structural(lambda x: x[GATHER], lambda x: x[GATHER], [(4, 3)], then_sum=False)
    assert root.shape == (5, 3)
    np.testing.assert_array_equal(x.grad, np.array([2, 1, 2, 0])[:, None] * np.ones((1, 3)))


def test_gather_counts_repeated_indices_and_unselected_rows_get_zero():
    x = bf.Node(jnp.arange(12.0).reshape(4, 3))
    x[GATHER].sum().backprop()
    np.testing.assert_array_equal(x.grad[:, 0], [2, 1, 2, 0])
    np.testing.assert_array_equal(x.abs_val_grad[:, 0], [2, 1, 2, 0])
    np.testing.assert_array_equal(x.entropy_wrt_output, np.zeros((4, 3)))  # every edge is 1: −1·log 1 = 0
    np.testing.assert_allclose(x.compute_entropy().val[:, 0], [np.log(2), 0, np.log(2), 0], rtol=1e-6)


def test_mean_entries_are_one_over_n_for_every_semiring():
    x = bf.Node(jnp.ones((2, 4)))
    F.reduce_mean(x).backprop()
    np.testing.assert_allclose(x.grad, np.full((2, 4), 1 / 8))
    np.testing.assert_allclose(x.entropy_wrt_output, np.full((2, 4), np.log(8) / 8), rtol=1e-6)
    np.testing.assert_allclose(x.max_grad_of_output_wrt_node[0], np.full((2, 4), 1 / 8))


def test_iterating_a_node_yields_its_rows_and_stops():
    # Python iterates with __getitem__ until IndexError; x[3] must not clamp to x[2] as jax does
    def give_up(signum, frame):
        raise TimeoutError("iterating a (3, 2) Node did not stop within 1 s")

    x = bf.Node(jnp.arange(6.0).reshape(3, 2))
    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(1)
    try:
        rows = list(x)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert len(rows) == 3
    np.testing.assert_array_equal(rows[2].val, [4.0, 5.0])


def test_mean_over_an_empty_axis_backprops_like_jax():
    x = bf.Node(jnp.ones((0, 3)))
    y = F.reduce_mean(x, axis=0)
    assert np.all(np.isnan(np.asarray(y.val)))  # as jnp.mean
    y.sum().backprop()
    assert x.grad.shape == (0, 3) and x.abs_val_grad.shape == (0, 3)
