"""top_path follows the max-product back-pointers from a leaf element to the output."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf
from brunoflow.ad.paths import source_of
from brunoflow.ad.tropical import DEFERRED

from .._check import edge_weights


def _network():
    rng = np.random.default_rng(0)
    x = bf.Node(rng.normal(size=(2, 3)).astype(np.float32), name="x")
    w1 = bf.Node(rng.normal(size=(3, 4)).astype(np.float32))
    w2 = bf.Node(rng.normal(size=(4, 2)).astype(np.float32))
    hidden = bf.func.tanh(x @ w1)
    out = (bf.func.tanh(hidden @ w2) * hidden[:, :2]).sum()
    return x, hidden, out


def test_hops_are_consecutive_edges_ending_at_the_output():
    x, _, out = _network()
    out.backprop()
    for e in np.ndindex(*x.shape):
        hops = bf.top_path(x, e)
        assert hops[0].node is x and hops[0].index == e
        assert hops[-1].node is out
        for prev, hop in zip(hops, hops[1:]):
            assert any(inp is prev.node for inp in hop.node.inputs)
            assert prev.node.get_max_grad_parent()[prev.index] is hop.node
        np.testing.assert_allclose(hops[0].value, x.max_grad_of_output_wrt_node[0][e], rtol=1e-6)


def test_elementwise_hops_keep_the_element():
    x = bf.Node(jnp.array([0.5, -1.0, 2.0]))
    out = bf.func.exp(bf.func.tanh(x) * 2.0).sum()
    out.backprop(values_to_compute=("max_grad",))
    hops = bf.top_path(x, 1)
    assert [h.node.op.name if h.node.op else "leaf" for h in hops] == ["leaf", "tanh", "mul", "exp", "reduce_sum"]
    assert all(h.index == (1,) for h in hops[:-1])


def test_top_path_needs_max_grad():
    x, _, out = _network()
    out.backprop(values_to_compute=("grad",))
    with pytest.raises(ValueError, match="max_grad"):
        bf.top_path(x, (0, 0))


@pytest.mark.parametrize("track", ["max", "min"])
def test_max_path_hops_multiply_out_to_the_reported_value(track):
    x, _, out = _network()
    out.backprop(values_to_compute=("max_path",))
    field = "max_path_of_output_wrt_node" if track == "max" else "min_path_of_output_wrt_node"
    for e in np.ndindex(*x.shape):
        hops = bf.top_path(x, e, track=track)
        assert hops[0].node is x and hops[-1].node is out and hops[-1].value == 1.0
        product = 1.0
        for prev, hop in zip(hops, hops[1:]):
            weights = edge_weights(hop.node, prev.node, prev.index, hop.index)
            w = min(weights, key=lambda w: abs(w * hop.value - prev.value))  # the slot the path used
            assert w != 0 and w * hop.value == pytest.approx(prev.value, rel=1e-5, abs=1e-6)
            product *= w
        assert product == pytest.approx(float(getattr(x, field)[0][e]), rel=1e-5)


def test_max_path_is_at_least_the_op_granular_max_and_the_walk_needs_no_jvp(monkeypatch):
    x, _, out = _network()
    out.backprop(values_to_compute=("max_path", "max_grad"))
    monkeypatch.setattr("brunoflow.ad.paths._jacobian_column", None)  # the exact walk reads pointers only
    for e in np.ndindex(*x.shape):
        assert bf.top_path(x, e)[0].value == pytest.approx(float(x.max_path_of_output_wrt_node[0][e]))


def test_no_path_is_a_clear_error():
    x = bf.Node(jnp.array([1.0, 2.0]))
    out = (x * jnp.array([0.0, 3.0])).sum()
    out.backprop(values_to_compute=("max_path",))
    assert int(x.max_path_of_output_wrt_node[1][0]) == -2 and float(x.max_path_of_output_wrt_node[0][0]) == 0
    assert bf.top_path(x, 1)[0].value == pytest.approx(3.0)
    with pytest.raises(ValueError, match="no path"):
        bf.top_path(x, 0)


# -- a path worth ±inf or NaN is still a path (found from outside) ------------------------

@pytest.mark.parametrize("through", ["mul", "matmul", "getitem"])
def test_max_path_reports_an_infinite_best_path_and_walks_it(through):
    x = bf.Node(jnp.array([1.0, 3.0]))
    weights = jnp.array([-jnp.inf, 2.0])
    if through == "mul":
        out = (x * weights).sum()
    elif through == "matmul":
        out = x @ weights
    else:
        out = (x[jnp.array([0, 1, 1])] * jnp.array([-jnp.inf, 2.0, 1.0])).sum()
    out.backprop(("max_path",))
    hi, consumer, _ = x.max_path_of_output_wrt_node
    lo = x.min_path_of_output_wrt_node[0]
    np.testing.assert_array_equal(hi, [-np.inf, 2.0])
    np.testing.assert_array_equal(lo, [-np.inf, 1.0 if through == "getitem" else 2.0])
    assert np.all(np.asarray(consumer) >= 0)
    hops = bf.top_path(x, 0)
    assert hops[0].value == -np.inf and hops[-1].node is out


def test_a_nan_path_ranks_below_every_number_as_in_nanmax():
    x = bf.Node(jnp.array([1.0, 3.0]))
    out = x @ jnp.array([[jnp.nan, 2.0], [1.0, 1.0]])  # x[0] reaches out[0] with NaN, out[1] with 2
    out.sum().backprop(("max_path",))
    hi, consumer, source = x.max_path_of_output_wrt_node
    np.testing.assert_array_equal(hi, [2.0, 1.0])
    assert int(source[0]) == DEFERRED  # matmul keeps values only; the walk recomputes the pointer
    assert source_of(x, 0) // 2 == 1  # the number, not the NaN edge


def test_an_element_whose_every_path_is_nan_reads_nan_and_top_path_says_why():
    x = bf.Node(jnp.array([1.0, 3.0]))
    hidden = x * jnp.array([jnp.nan, 2.0])
    out = bf.func.tanh(hidden).sum()  # NaN reaches the output through x[0] only
    out.backprop(("max_path",))
    hi, consumer, _ = x.max_path_of_output_wrt_node
    assert np.isnan(hi[0]) and int(consumer[0]) == -2
    assert np.isfinite(hi[1]) and int(consumer[1]) >= 0
    with pytest.raises(ValueError, match="NaN product"):
        bf.top_path(x, 0)


@pytest.mark.parametrize("track", ["max", "min"])
def test_the_traced_top_path_is_the_walk_and_runs_under_jit(track):
    from brunoflow.ad.paths import trace_top_path
    x, _, out = _network()
    out.backprop(values_to_compute=("max_path",))
    for flat, e in enumerate(np.ndindex(*x.shape)):
        walk = [(id(h.node), h.index, h.value) for h in reversed(bf.top_path(x, e, track=track))]
        traced = [(id(h.node), h.index, h.value) for h in trace_top_path(x, flat, track=track).hops()]
        assert [w[:2] for w in walk] == [t[:2] for t in traced]
        np.testing.assert_allclose([w[2] for w in walk], [t[2] for t in traced], rtol=1e-6)

    @jax.jit
    def positions_and_values(start):  # the whole graph, backprop and trace in one program
        x, _, out = _network()
        out.backprop(values_to_compute=("max_path",))
        trace = trace_top_path(x, start, track=track)
        return trace.positions, trace.values

    eager = trace_top_path(x, 4, track=track)
    positions, values = positions_and_values(4)
    np.testing.assert_array_equal(positions, eager.positions)
    np.testing.assert_allclose(values, eager.values, rtol=1e-6)
