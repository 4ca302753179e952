"""Max-times transposes: the running scans against the direct reductions, ties included, and a
contraction's recomputed (DEFERRED) source against brute force over its dense Jacobian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brunoflow.ad import tropical
from brunoflow.ops.contraction import matmul


def state(rng, shape):
    """Tie-heavy (hi, lo, reached): values in {-1, 0, 1}, lo <= hi, a third unreached."""
    hi = rng.integers(-1, 2, size=shape).astype(np.float32)
    lo = hi - rng.integers(0, 2, size=shape)
    return hi, lo.astype(np.float32), rng.random(shape) > 1 / 3


def both_ways(monkeypatch, run, unroll_above=0):
    direct = run()
    monkeypatch.setattr(tropical, "_SCAN_ABOVE", 0)
    monkeypatch.setattr(tropical, "_UNROLL_ABOVE", unroll_above)
    scanned = run()
    for name, want, got in zip(("hi", "lo", "hi source", "lo source"), direct, scanned):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=name)
    return direct


def matmul_case(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, size=(2, 3, 5)).astype(np.float32)
    weights = rng.integers(-1, 2, size=(5, 7)).astype(np.float32)
    x[..., 2], weights[2] = 0, 0  # x[..., 2] and weights[2] have no edge at all
    return (x, weights), state(rng, (2, 3, 7))


def transpose(k, xs, up):
    out = jnp.matmul(*xs)
    return matmul.primitive._max_times(k, xs, out, {}, up)


@pytest.mark.parametrize("k", [0, 1])
def test_values_scan_equals_direct_for_a_batched_matmul_transpose(monkeypatch, k):
    xs, up = matmul_case(k)
    result = both_ways(monkeypatch, lambda: transpose(k, xs, up))
    sources = np.asarray(result[2])
    assert np.any(sources == tropical.NO_SOURCE) and np.all((sources == tropical.NO_SOURCE)
                                                            | (sources == tropical.DEFERRED))


@pytest.mark.parametrize("k", [0, 1])
def test_a_deferred_source_is_the_best_edge_by_brute_force(k):
    xs, (hi, lo, reached) = matmul_case(10 + k)
    top, bottom, source, _ = transpose(k, xs, (hi, lo, reached))
    # dense Jacobian of the output with respect to operand k: J[o, e]
    jacobian = np.asarray(jax.jacobian(lambda t: jnp.matmul(*(t if j == k else x for j, x in enumerate(xs))))(xs[k]))
    jacobian = jacobian.reshape(hi.size, xs[k].size)
    checked = 0
    for e in range(xs[k].size):
        edges = np.flatnonzero((jacobian[:, e] != 0) & reached.ravel())
        assert (source.ravel()[e] == tropical.DEFERRED) == (len(edges) > 0)
        if not len(edges):
            continue
        candidates = [(jacobian[o, e] * track[o], 2 * o + t) for o in edges
                      for t, track in enumerate((hi.ravel(), lo.ravel()))]
        for on_min, want in ((False, max(v for v, _ in candidates)), (True, min(v for v, _ in candidates))):
            code = int(tropical.einsum_source(tropical.matmul_subscripts(3, 2), (k,), xs, (hi, lo, reached),
                                              jnp.int32(e), jnp.asarray(on_min)))
            assert code == min(c for v, c in candidates if v == want), (e, on_min)
            assert (bottom if on_min else top).ravel()[e] == want
            checked += 1
    assert checked > 10


@pytest.mark.parametrize("unroll_above", [0, 1 << 30])
def test_scan_equals_direct_when_reducing_inner_and_leading_axes(monkeypatch, unroll_above):
    rng = np.random.default_rng(7)
    weight = rng.integers(-1, 2, size=(3, 1)).astype(np.float32)  # fixed along the last reduced axis
    hi, lo, reached = state(rng, (4, 3, 6))
    code = np.arange(hi.size, dtype=np.int32).reshape(hi.shape)
    both_ways(monkeypatch, lambda: tropical.reduce_to(weight, hi, lo, reached, code, (3, 1)), unroll_above)
