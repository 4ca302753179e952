"""Node's array-like surface: what numpy and Python see when handed a Node."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf


def _node(shape, seed=0):
    return bf.Node(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def test_np_asarray_reads_the_value_without_running_a_kernel():
    # numpy used to take a Node for a sequence (it has __len__/__iter__) and build an object
    # array of Nodes, one getitem kernel per element: over 15 minutes for a BERT logits tensor.
    small = _node((2, 3, 4))
    bf.kernel_stats.reset()
    array = np.asarray(small)
    assert (bf.kernel_stats.misses, bf.kernel_stats.hits) == (0, 0)
    assert array.dtype == np.float32 and array.shape == (2, 3, 4)
    np.testing.assert_array_equal(array, np.asarray(small.val))

    logits = _node((1, 12, 30522))
    start = time.perf_counter()
    array = np.asarray(logits)
    assert time.perf_counter() - start < 1.0
    assert (bf.kernel_stats.misses, bf.kernel_stats.hits) == (0, 0)
    np.testing.assert_array_equal(array, np.asarray(logits.val))


@pytest.mark.skipif(np.lib.NumpyVersion(np.__version__) < "2.0.0", reason="np.asarray(copy=) is numpy 2's")
def test_np_asarray_follows_numpys_dtype_and_copy_protocol():
    node = _node((3, 2))
    assert np.asarray(node, dtype=np.float64).dtype == np.float64
    assert np.asarray(node).dtype == np.float32
    copied = np.asarray(node, copy=True)
    copied[0, 0] = 123.0  # a copy is the caller's to write
    assert float(node.val[0, 0]) != 123.0
    np.testing.assert_array_equal(np.asarray(node, copy=False), np.asarray(node.val))
    np.testing.assert_array_equal(np.array(node), np.asarray(node.val))


def test_numpy_is_a_writable_host_copy_as_torch_tensor_numpy():
    node = _node((2, 5))
    array = node.numpy()
    assert isinstance(array, np.ndarray) and array.dtype == np.float32 and array.flags.writeable
    np.testing.assert_array_equal(array, np.asarray(node.val))
    array[:] = 0.0
    assert np.any(np.asarray(node.val) != 0.0)  # JAX values are immutable: the node keeps its own


def test_np_asarray_under_jit_raises_jaxs_tracer_conversion_error():
    def read(x):
        return np.asarray(bf.Node(x) * 2.0)

    with pytest.raises(jax.errors.TracerArrayConversionError):
        jax.jit(read)(jnp.ones((4, 30522)))


def test_ndarray_on_the_left_defers_to_nodes_reflected_operators():
    node = _node((3, 4))
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    for result, expected in [(array - node, array - np.asarray(node.val)),
                             (array * node, array * np.asarray(node.val)),
                             (array.T @ node, array.T @ np.asarray(node.val))]:
        assert isinstance(result, bf.Node)  # a Node in the graph, not an object array of Nodes
        np.testing.assert_allclose(np.asarray(result), expected, rtol=1e-6)


def test_len_and_iteration_walk_the_first_axis():
    node = _node((3, 2))
    rows = list(node)
    assert len(node) == 3 and all(isinstance(row, bf.Node) and row.shape == (2,) for row in rows)
    np.testing.assert_array_equal(np.stack([np.asarray(row) for row in rows]), np.asarray(node.val))
    with pytest.raises(TypeError, match="0-d Node"):
        len(bf.Node(jnp.float32(1.0)))
