"""The running-max scan of max-times transposes against the direct reduction, ties included."""

import numpy as np
import pytest

from brunoflow.ad import tropical


def state(rng, shape):
    """Tie-heavy (hi, lo, reached): values in {-1, 0, 1}, lo <= hi, a third unreached."""
    hi = rng.integers(-1, 2, size=shape).astype(np.float32)
    lo = hi - rng.integers(0, 2, size=shape)
    return hi, lo.astype(np.float32), rng.random(shape) > 1 / 3


def both_ways(monkeypatch, run, unroll_above):
    direct = run()
    monkeypatch.setattr(tropical, "_SCAN_ABOVE", 0)
    monkeypatch.setattr(tropical, "_UNROLL_ABOVE", unroll_above)
    scanned = run()
    for name, want, got in zip(("hi", "lo", "hi source", "lo source"), direct, scanned):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=name)
    return direct


# unroll_above 0: steps unrolled (by more than some scans' length); 1 << 30: not unrolled
@pytest.mark.parametrize("unroll_above", [0, 1 << 30])
@pytest.mark.parametrize("k", [0, 1])
def test_scan_equals_direct_for_a_batched_matmul_transpose(monkeypatch, unroll_above, k):
    rng = np.random.default_rng(unroll_above + k)
    x = rng.integers(-1, 2, size=(2, 3, 5)).astype(np.float32)
    weights = rng.integers(-1, 2, size=(5, 7)).astype(np.float32)
    x[..., 2], weights[2] = 0, 0  # x[..., 2] and weights[2] have no edge at all
    subscripts = tropical.matmul_subscripts(3, 2)
    hi, lo, reached = state(rng, (2, 3, 7))
    result = both_ways(monkeypatch, lambda: tropical.einsum(subscripts, k, (x, weights), (hi, lo, reached)),
                       unroll_above)
    assert np.any(np.asarray(result[2]) == tropical.NO_SOURCE)  # some elements had no edge: covered


@pytest.mark.parametrize("unroll_above", [0, 1 << 30])
def test_scan_equals_direct_when_reducing_inner_and_leading_axes(monkeypatch, unroll_above):
    rng = np.random.default_rng(7)
    weight = rng.integers(-1, 2, size=(3, 1)).astype(np.float32)  # fixed along the last reduced axis
    hi, lo, reached = state(rng, (4, 3, 6))
    code = np.arange(hi.size, dtype=np.int32).reshape(hi.shape)
    both_ways(monkeypatch, lambda: tropical.reduce_to(weight, hi, lo, reached, code, (3, 1)), unroll_above)
