"""kernel_timings(): the backward kernels of a backprop, timed by op and input shapes, only while asked."""

import jax
import numpy as np
import pytest

import brunoflow as bf
from brunoflow.ad import profile
from brunoflow.ad.backprop import ancestors
from brunoflow.ad.node import value_of
from brunoflow.ad.profile import kernel_timings


def _graph():
    rng = np.random.default_rng(0)
    x, w = (bf.Node(rng.normal(size=shape).astype(np.float32)) for shape in ((2, 3), (3, 4)))
    return x, w, bf.func.tanh(x @ w).sum()


def test_every_backward_kernel_of_the_graph_is_timed_by_op_and_by_input_shapes():
    x, w, root = _graph()
    made = [n for n in ancestors(root) if n.op is not None]
    with kernel_timings() as timings:
        root.backprop(values_to_compute=("grad",))
    assert set(timings.by_op) == {n.op.name for n in made} and len(timings.by_op) == 3
    assert timings.calls == len(made)
    assert set(timings.by_op_and_shapes) == {(n.op.name, tuple(np.shape(value_of(i)) for i in n.inputs)) for n in made}
    assert ("matmul", ((2, 3), (3, 4))) in timings.by_op_and_shapes
    assert all(t > 0 for t in timings.by_op.values())
    assert sum(timings.by_op.values()) == pytest.approx(sum(timings.by_op_and_shapes.values()))
    plain_x, plain_w, plain_root = _graph()
    plain_root.backprop(values_to_compute=("grad",))
    np.testing.assert_array_equal(x.grad, plain_x.grad)  # timing the kernels does not change what they compute
    np.testing.assert_array_equal(w.grad, plain_w.grad)


def test_nothing_is_recorded_outside_kernel_timings():
    with kernel_timings() as timings:
        pass
    _, _, root = _graph()
    root.backprop(values_to_compute=("grad",))
    assert profile.recording is None
    assert timings.calls == 0 and not timings.by_op and not timings.by_op_and_shapes


def test_a_traced_backprop_is_refused_rather_than_timed_as_its_trace():
    def step(x, w):
        root = bf.func.tanh(bf.Node(x) @ bf.Node(w)).sum()
        root.backprop(values_to_compute=("grad",))
        return root.val

    x, w, _ = _graph()
    with kernel_timings(), pytest.raises(RuntimeError, match="times eager backprops"):
        jax.jit(step)(x.val, w.val)
