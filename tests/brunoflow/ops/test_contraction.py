"""Contractions: matmul and einsum; Jacobian entries are the other operand's entries."""

import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf
from brunoflow import func as F

from .._check import check_contraction

CONSTANT = np.array([[0.5, -1.5], [2.0, 1.0], [-0.75, 1.25]], np.float32)

ROWS = [
    # id, bf, jnp, shapes
    ("matmul_operator", lambda a, b: a @ b, jnp.matmul, [(2, 3), (3, 4)]),
    ("matmul_batch_broadcast", F.matmul, jnp.matmul, [(2, 1, 2, 3), (3, 3, 2)]),
    ("matmul_vector_left", F.matmul, jnp.matmul, [(3,), (3, 4)]),
    ("matmul_vector_right", F.matmul, jnp.matmul, [(2, 3), (3,)]),
    ("matmul_dot", F.matmul, jnp.matmul, [(3,), (3,)]),
    ("matmul_constant_right", lambda a: a @ CONSTANT, lambda a: a @ CONSTANT, [(4, 3)]),
    ("einsum_batched", lambda a, b: F.einsum("bij,bkj->bik", a, b), lambda a, b: jnp.einsum("bij,bkj->bik", a, b),
     [(2, 2, 3), (2, 4, 3)]),
    ("einsum_outer", lambda a, b: F.einsum("i,j->ij", a, b), lambda a, b: jnp.einsum("i,j->ij", a, b),
     [(3,), (4,)]),
    ("einsum_rowwise_dot", lambda a, b: F.einsum("ij,ij->i", a, b), lambda a, b: jnp.einsum("ij,ij->i", a, b),
     [(3, 4), (3, 4)]),
    ("einsum_diag_times_vector", lambda a, b: F.einsum("ii,i->i", a, b), lambda a, b: jnp.einsum("ii,i->i", a, b),
     [(3, 3), (3,)]),
    # a in both slots: parallel edges, as the bf graph has them
    ("einsum_same_operand_twice", lambda a: F.einsum("ij,kj->ik", a, a), lambda a: jnp.einsum("ij,kj->ik", a, a),
     [(3, 2)], [(lambda a, b: jnp.einsum("ij,kj->ik", a, b), [0, 0])]),
    ("matmul_same_operand_twice", lambda a: a @ a, lambda a: a @ a, [(3, 3)], [(jnp.matmul, [0, 0])]),
]


@pytest.mark.parametrize("fn_bf, fn_jnp, shapes, ops",
                         [pytest.param(*r[1:4], r[4] if len(r) > 4 else None, id=r[0]) for r in ROWS])
def test_contraction(fn_bf, fn_jnp, shapes, ops):
    check_contraction(fn_bf, fn_jnp, shapes, ops=ops)


# One operand: every Jacobian entry is the constant 1 (a permutation, a diagonal, a sum),
# so −|w| log|w| = 0 and the entropy of a path through it adds nothing (docs/architecture.md §3).
UNARY = [
    ("einsum_transpose", "ij->ji", [(3, 4)]),
    ("einsum_diagonal", "ii->i", [(3, 3)]),
    ("einsum_row_sum", "ij->i", [(3, 4)]),
]


@pytest.mark.parametrize("subscripts, shapes", [pytest.param(*r[1:], id=r[0]) for r in UNARY])
def test_einsum_one_operand(subscripts, shapes):
    check_contraction(lambda a: F.einsum(subscripts, a), lambda a: jnp.einsum(subscripts, a), shapes)


def test_einsum_three_operands_is_a_chain_of_two_operand_contractions():
    # the graph is (a·b)·c: two einsum primitives, and the oracle tape mirrors that chain
    check_contraction(lambda a, b, c: F.einsum("ij,jk,kl->il", a, b, c),
                      lambda a, b, c: jnp.einsum("ij,jk,kl->il", a, b, c), [(2, 3), (3, 2), (2, 2)],
                      ops=[(lambda a, b: jnp.einsum("ij,jk->ik", a, b), [0, 1]),
                           (lambda ab, c: jnp.einsum("ik,kl->il", ab, c), [3, 2])],
                      names=["einsum", "einsum"])


def test_einsum_letter_summed_inside_one_operand():
    # ∂out_i/∂a_ij = Σ_k b_k: an edge of weight Σ_k b_k, not one path per k, so
    # |grad| of a is |Σ_k b_k| (the engine must not substitute |b| into the VJP here).
    # einsum sums such letters out first (entries 1), then contracts: the tape mirrors that.
    check_contraction(lambda a, b: F.einsum("ij,k->i", a, b), lambda a, b: jnp.einsum("ij,k->i", a, b),
                      None, inputs=[np.ones((2, 2)), np.array([1.0, -1.0, 2.0])],
                      ops=[(lambda a: jnp.einsum("ij->i", a), [0]),
                           (lambda b: jnp.einsum("k->", b), [1]),
                           (lambda a, b: jnp.einsum("i,->i", a, b), [2, 3])],
                      names=["einsum", "einsum", "einsum"])
    a, b = bf.Node(np.ones((2, 2), np.float32)), bf.Node(np.array([1.0, -1.0, 2.0], np.float32))
    F.einsum("ij,k->i", a, b).sum().backprop(("abs_val_grad",))
    np.testing.assert_allclose(a.abs_val_grad, np.full((2, 2), 2.0))


def test_matmul_abs_and_entropy_use_the_other_operand_entries():
    a = bf.Node(jnp.array([[2.0, -0.5]]))
    b = bf.Node(jnp.array([[1.0], [3.0]]))
    (a @ b).backprop()
    np.testing.assert_allclose(b.abs_val_grad, [[2.0], [0.5]])
    np.testing.assert_allclose(b.entropy_wrt_output, [[-2 * np.log(2)], [-0.5 * np.log(0.5)]], rtol=1e-6)
    np.testing.assert_allclose(a.max_neg_grad_of_output_wrt_node[0], [[1.0, 3.0]])


def _semiring_values(fn, *values):
    nodes = [bf.Node(np.asarray(v, np.float32)) for v in values]
    out = fn(*nodes)
    out.sum().backprop(("grad", "entropy", "max_grad", "max_path"))
    return [{f: np.asarray(getattr(n, f)[0] if isinstance(getattr(n, f), tuple) else getattr(n, f))
             for f in ("grad", "abs_val_grad", "entropy_wrt_output", "max_grad_of_output_wrt_node",
                       "max_path_of_output_wrt_node", "min_path_of_output_wrt_node")} for n in nodes]


@pytest.mark.parametrize("with_dots, with_letters, shapes", [
    ("...j,j->", "bj,j->", [(2, 2), (2,)]),                 # ... summed inside one operand
    ("...j->...", "bj->b", [(2, 3)]),                         # one operand: a spread under max_path
    ("...ij,...jk->...ik", "bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("i...,i...->...", "ibc,ibc->bc", [(2, 2, 3), (2, 2, 3)]),
])
def test_einsum_ellipsis_is_the_same_graph_as_its_letters(with_dots, with_letters, shapes):
    rng = np.random.default_rng(1)
    values = [rng.normal(size=s) for s in shapes]
    dots = _semiring_values(lambda *xs: F.einsum(with_dots, *xs), *values)
    letters = _semiring_values(lambda *xs: F.einsum(with_letters, *xs), *values)
    for d, l in zip(dots, letters):
        for field in d:
            np.testing.assert_allclose(d[field], l[field], rtol=1e-6, err_msg=field)


def test_einsum_ellipsis_broadcasts_size_one_axes_like_numpy():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(1, 2, 3)), rng.normal(size=(4, 3, 2))
    check_contraction(lambda x, y: F.einsum("...ij,...jk->...ik", x, y),
                      lambda x, y: jnp.einsum("...ij,...jk->...ik", x, y), None, inputs=[a, b],
                      ops=[(lambda x: jnp.einsum("Cij->ij", x), [0]),
                           (lambda x, y: jnp.einsum("ij,Ajk->Aik", x, y), [2, 1])],
                      names=["einsum", "einsum"])
