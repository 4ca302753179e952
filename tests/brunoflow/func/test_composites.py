"""Composites (no backward code of their own): grad vs jax.grad, and their graph granularity
checked against the oracle, which is what the non-gradient semirings depend on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import brunoflow as bf
from brunoflow import func as F

from .._check import assert_close, check_op, random_inputs

rng = np.random.default_rng(7)
C25 = rng.normal(size=(2, 5)).astype(np.float32)   # fixed cotangents: sum(softmax) = 1 has no gradient
C23 = rng.normal(size=(2, 3)).astype(np.float32)
C2 = rng.normal(size=(2,)).astype(np.float32)
IDS = np.array([[0, 2, 2], [1, 0, 3]])
TARGET = np.array([1, 0, 4, 1])
EPS = 1e-5


def _jnp_layer_norm(x, w=None, b=None):
    mean = x.mean(-1, keepdims=True)
    out = (x - mean) / jnp.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + EPS)
    return out * (1 if w is None else w) + (0 if b is None else b)


def _jnp_nll(log_probs, reduction):
    loss = -log_probs[jnp.arange(len(TARGET)), TARGET]
    return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda v: jnp.sum(v * C2.repeat(2))}[reduction](loss)


def _bf_reduction(reduction):
    return {"mean": lambda v: v, "sum": lambda v: v, "none": lambda v: (v * C2.repeat(2)).sum()}[reduction]


ROWS = [
    # id, bf scalar fn, jnp scalar fn, shapes
    ("softmax", lambda x: (F.softmax(x) * C25).sum(), lambda x: (jax.nn.softmax(x) * C25).sum(), [(2, 5)]),
    ("softmax_axis0", lambda x: (F.softmax(x, axis=0) * C25).sum(),
     lambda x: (jax.nn.softmax(x, axis=0) * C25).sum(), [(2, 5)]),
    ("log_softmax", lambda x: (F.log_softmax(x) * C25).sum(), lambda x: (jax.nn.log_softmax(x) * C25).sum(),
     [(2, 5)]),
    ("logsumexp_all", F.reduce_logsumexp, jax.scipy.special.logsumexp, [(2, 5)]),
    ("logsumexp_axis", lambda x: (F.reduce_logsumexp(x, axis=1) * C2).sum(),
     lambda x: (jax.scipy.special.logsumexp(x, axis=1) * C2).sum(), [(2, 5)]),
    ("logsumexp_keepdims", lambda x: (F.reduce_logsumexp(x, axis=-1, keepdims=True) * C2[:, None]).sum(),
     lambda x: (jax.scipy.special.logsumexp(x, axis=-1, keepdims=True) * C2[:, None]).sum(), [(2, 5)]),
    ("layer_norm_affine", lambda x, w, b: (F.layer_norm(x, w, b) * C23).sum(),
     lambda x, w, b: (_jnp_layer_norm(x, w, b) * C23).sum(), [(2, 3), (3,), (3,)]),
    ("layer_norm_plain", lambda x: (F.layer_norm(x) * C23).sum(), lambda x: (_jnp_layer_norm(x) * C23).sum(),
     [(2, 3)]),
    ("embedding", lambda w: (F.embedding(IDS, w) * C23[:, None, :]).sum(),
     lambda w: (w[IDS] * C23[:, None, :]).sum(), [(4, 3)]),
    ("mse_mean", lambda p, t: F.mse_loss(p, t), lambda p, t: jnp.mean((p - t) ** 2), [(2, 3), (2, 3)]),
    ("mse_sum_constant_target", lambda p: F.mse_loss(p, C23, reduction="sum"),
     lambda p: jnp.sum((p - C23) ** 2), [(2, 3)]),
] + [
    (f"nll_{r}", lambda x, r=r: _bf_reduction(r)(F.nll_loss(x, TARGET, reduction=r)),
     lambda x, r=r: _jnp_nll(x, r), [(4, 5)]) for r in ("mean", "sum", "none")
] + [
    (f"cross_entropy_{r}", lambda x, r=r: _bf_reduction(r)(F.cross_entropy(x, TARGET, reduction=r)),
     lambda x, r=r: _jnp_nll(jax.nn.log_softmax(x), r), [(4, 5)]) for r in ("mean", "none")
]


@pytest.mark.parametrize("fn_bf, fn_jnp, shapes", [pytest.param(*r[1:], id=r[0]) for r in ROWS])
def test_composite_grad_matches_jax_grad(fn_bf, fn_jnp, shapes):
    arrays = random_inputs(shapes, "real", seed=3)
    leaves = [bf.Node(a) for a in arrays]
    out = fn_bf(*leaves)
    assert out.shape == ()
    assert_close(out.val, fn_jnp(*arrays), err_msg="forward")
    out.backprop(values_to_compute=("grad", "abs_val_grad"))
    grads = jax.jit(jax.grad(fn_jnp, argnums=tuple(range(len(arrays)))))(*arrays)  # one compile, not one per op
    for k, (leaf, g) in enumerate(zip(leaves, grads)):
        assert_close(leaf.grad, g, scale=leaf.abs_val_grad, err_msg=f"grad of input {k}")


def test_cross_entropy_matches_torch():
    logits = random_inputs([(4, 5)], "real", seed=4)[0]
    x = bf.Node(logits)
    loss = F.cross_entropy(x, TARGET)
    loss.backprop(values_to_compute=("grad",))
    t = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(t, torch.tensor(TARGET))
    expected.backward()
    assert_close(loss.val, expected.item())
    assert_close(x.grad, t.grad.numpy())


def test_dropout_training_uses_the_callers_key():
    key, p = jax.random.PRNGKey(0), 0.4
    xv = random_inputs([(4, 5)], "nonzero", seed=5)[0]
    keep = np.asarray(jax.random.bernoulli(key, 1 - p, xv.shape))
    assert 0 < keep.sum() < keep.size  # the mask really drops something
    x = bf.Node(xv)
    out = F.dropout(x, p, key)
    assert_close(out.val, xv * keep / (1 - p))
    (out * C25.repeat(2, 0)).sum().backprop(values_to_compute=("grad",))
    expected = jax.grad(lambda v: (v * keep / (1 - p) * C25.repeat(2, 0)).sum())(xv)
    assert_close(x.grad, expected)
    np.testing.assert_array_equal(np.asarray(x.grad)[~keep], 0)
    same = F.dropout(bf.Node(xv), p, key)
    np.testing.assert_array_equal(same.val, out.val)  # same key, same mask


def test_dropout_is_the_identity_in_eval_and_at_p_zero():
    x = bf.Node(jnp.ones((2, 3)))
    assert F.dropout(x, 0.5, jax.random.PRNGKey(1), training=False) is x
    assert F.dropout(x, 0.0, jax.random.PRNGKey(1)) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        F.dropout(x, 1.0, jax.random.PRNGKey(1))


# -- granularity: the tape spells out the composite's primitives, one op each -------------

X3 = np.array([0.3, -1.2, 2.1], np.float32)
M3 = float(X3.max())  # the stabilising shift is a constant of the graph, not a branch
SOFTMAX_OPS = [  # leaves: x = 0
    (lambda x: x - M3, [0]),                                     # 1: x − m
    (jnp.exp, [1]),                                              # 2
    (lambda e: jnp.sum(e, axis=-1, keepdims=True), [2]),         # 3
    (jnp.log, [3]),                                              # 4
    (lambda s: s + M3, [4]),                                     # 5: logsumexp = log Σ + m
    (jnp.subtract, [0, 5]),                                      # 6: log_softmax
    (jnp.exp, [6]),                                              # 7: softmax
]
SOFTMAX_NAMES = ["sub", "exp", "reduce_sum", "log", "add", "sub", "exp"]
C3 = np.array([0.5, -2.0, 1.5], np.float32)


def test_softmax_semirings_match_the_oracle_on_its_primitive_graph():
    check_op(lambda x: F.softmax(x) * C3, lambda x: jax.nn.softmax(x) * C3, inputs=[X3],
             ops=SOFTMAX_OPS + [(lambda s: s * C3, [7])], names=SOFTMAX_NAMES + ["mul"])


def test_softmax_as_a_tensor_root_matches_the_oracle():
    # seeded with ones: grad is ~0 (Σ softmax = 1), but |grad| is not: x_i reaches the outputs
    # directly (s_i) and through the normaliser (s_i · Σ_j s_j = s_i), so 2 s_i
    (x,), _ = check_op(F.softmax, jax.nn.softmax, inputs=[X3], then_sum=False, ops=SOFTMAX_OPS,
                       names=SOFTMAX_NAMES)
    np.testing.assert_allclose(x.abs_val_grad, 2 * jax.nn.softmax(X3), rtol=1e-5)


def test_the_stabilising_max_makes_no_path():
    # log p(x1) = x1 − log Σ exp(x): with the max as a branch, the top path of log p(x1)
    # ran x0 → max → sub → q although the shift has no effect on q
    x = bf.Node(jnp.array([3.0, 1.0, -2.0]))
    q = F.log_softmax(x)[1]
    q.backprop(("grad", "entropy", "max_path"))
    p = np.asarray(jax.nn.softmax(x.val))
    np.testing.assert_allclose(x.grad, np.eye(3)[1] - p, rtol=1e-6)
    np.testing.assert_allclose(x.abs_val_grad, np.eye(3)[1] + p, rtol=1e-6)  # one path each, no max route
    for hop in bf.top_path(x, 0):
        assert hop.node.op is None or hop.node.op.name != "reduce_max"


def test_logsumexp_of_a_row_of_minus_infinity_is_minus_infinity():
    x = bf.Node(jnp.array([[-jnp.inf, -jnp.inf], [0.0, 1.0]]))
    out = F.reduce_logsumexp(x, axis=1)
    np.testing.assert_allclose(out.val, jax.scipy.special.logsumexp(x.val, axis=1))


def test_layer_norm_semirings_match_the_oracle_on_its_primitive_graph():
    ops = [  # leaves: x = 0, weight = 1, bias = 2
        (lambda x: jnp.mean(x, -1, keepdims=True), [0]),         # 3
        (jnp.subtract, [0, 3]),                                  # 4: centered
        (jnp.multiply, [4, 4]),                                  # 5: centered², one op, two slots
        (lambda s: jnp.mean(s, -1, keepdims=True), [5]),         # 6: var
        (lambda v: v + EPS, [6]),                                # 7
        (jnp.sqrt, [7]),                                         # 8
        (jnp.divide, [4, 8]),                                    # 9
        (jnp.multiply, [9, 1]),                                  # 10
        (jnp.add, [10, 2]),                                      # 11
        (lambda y: y * C23, [11]),                               # 12
    ]
    names = ["reduce_mean", "sub", "mul", "reduce_mean", "add", "sqrt", "div", "mul", "add", "mul"]
    check_op(lambda x, w, b: F.layer_norm(x, w, b) * C23, lambda x, w, b: _jnp_layer_norm(x, w, b) * C23,
             [(2, 3), (3,), (3,)], ops=ops, names=names)
