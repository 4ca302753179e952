"""Compiled forwards (brunoflow.net.compiled, brunoflow.ad.replay): one program per signature, and
a graph that is the eager one, node for node, for every semiring."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf
from brunoflow.ad.backprop import ancestors
from brunoflow.ad.node import Deferred
from brunoflow.net import Dropout, LayerNorm, Linear, Network, compiled, cuts

ALL_VALUES = ("grad", "max_grad", "abs_val_grad", "entropy", "max_path")


class Block(Network):
    def __init__(self, width, seed):
        super().__init__()
        self.dense = Linear(width, width, key=seed)
        self.norm = LayerNorm(width)

    def forward(self, x):
        return self.norm(bf.func.tanh(self.dense(x)))


class Tagger(Network):
    """Per position: blocks, then a softmax over 3 tags; positions never mix, so padding the
    sequence axis leaves the real positions alone."""

    compiled_forward = True

    def __init__(self, width=4, seed=0, merge=False):
        super().__init__()
        self.block = Block(width, seed)
        self.head = Linear(width, 3, key=seed + 1)
        self.merge = merge

    def forward(self, x, scale=1.0):
        hidden = self.block(x)
        scores = self.head(hidden) * scale
        if self.merge:  # (batch, seq) merged into rows: a padded run cannot be cut back unless batch is 1
            scores = bf.func.reshape(scores, (-1, 3))
        return {"probs": bf.func.softmax(scores, axis=-1), "hidden": (hidden, None)}


class Noisy(Tagger):
    """A Tagger whose output goes through dropout: in training, no program can hold it."""

    def __init__(self):
        super().__init__()
        self.drop = Dropout(0.5, key=0)

    def forward(self, x):
        return self.drop(super().forward(x)["probs"])


def _x(shape=(2, 5, 4), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.fixture(autouse=True)
def fresh_caches():
    compiled.clear()
    yield


def _eager(model, *args, **kwargs):
    model.compiled_forward = False
    try:
        return model(*args, **kwargs)
    finally:
        del model.compiled_forward


def _graph(root):
    return sorted(ancestors(root), key=lambda n: n._order)


def assert_same_graph(got, expected, leaves=()):
    """Node for node: op, static, module and path, name, shape, dtype, inputs, values."""
    got, expected = _graph(got), _graph(expected)
    assert len(got) == len(expected)
    position = [{id(n): i for i, n in enumerate(nodes)} for nodes in (got, expected)]
    for a, b in zip(got, expected):
        assert (a.op, a.static, a.module, a.module_path, a.name, a.shape, a.dtype) == (
            b.op, b.static, b.module, b.module_path, b.name, b.shape, b.dtype)
        if a.op is None and any(a is leaf for leaf in leaves):
            assert a is b
        for u, v in zip(a.inputs, b.inputs):
            if isinstance(v, bf.Node):
                assert position[0][id(u)] == position[1][id(v)]
            else:
                np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(a.val), np.asarray(b.val), rtol=1e-5, atol=1e-6)


def _semiring_values(model, out, leaves):
    out.backprop(values_to_compute=ALL_VALUES)
    values = {}
    for name, leaf in [*model.named_parameters(), *(("input", x) for x in leaves)]:
        values[name] = (leaf.grad, leaf.abs_val_grad, leaf.compute_entropy().val,
                        *leaf.max_grad_of_output_wrt_node, *leaf.max_neg_grad_of_output_wrt_node,
                        *leaf.max_path_of_output_wrt_node, *leaf.min_path_of_output_wrt_node)
        leaf._zero_self()
    return values


def test_a_compiled_call_makes_the_eager_graph_and_every_semiring_walks_it_alike():
    model = Tagger()
    x = bf.Node(_x(), name="x")
    eager = _eager(model, x)
    got = model(x)
    assert compiled.stats.calls == 1 and compiled.stats.programs == 1
    assert got["hidden"][1] is None and isinstance(got["hidden"], tuple)
    assert_same_graph(got["probs"], eager["probs"], leaves=[x, *model.parameters()])
    assert got["hidden"][0].module_path == "block.norm"
    expected = _semiring_values(model, eager["probs"][1, 2, 0], [x])
    for name, values in _semiring_values(model, got["probs"][1, 2, 0], [x]).items():
        for k, (a, b) in enumerate(zip(values, expected[name])):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=f"{name}[{k}]")


def test_only_returned_values_are_copied_out_the_rest_on_first_read():
    model = Tagger()
    out = model(_x())
    inner = [n for n in _graph(out["probs"]) if n.op is not None and n is not out["hidden"][0]][:-1]
    assert all(isinstance(n._val, Deferred) for n in inner)
    assert not isinstance(out["probs"]._val, Deferred) and not isinstance(out["hidden"][0]._val, Deferred)
    assert [n.shape for n in inner[:2]] == [(4, 4), (2, 5, 4)]  # known without computing (transpose, matmul)
    assert compiled.stats.programs == 1
    inner[3].val  # one read makes them all, with one more program
    assert compiled.stats.programs == 2
    assert not any(isinstance(n._val, Deferred) for n in inner)


def test_one_program_per_signature():
    model = Tagger()
    model(_x(seed=0), scale=1.0)
    model(_x(seed=1), scale=1.0)  # new values, the same shapes and static values
    assert (compiled.stats.templates, compiled.stats.programs) == (1, 1)
    model(_x(seed=1), scale=2.0)
    model(_x((2, 6, 4)), scale=1.0)
    assert (compiled.stats.templates, compiled.stats.programs) == (3, 3)


def test_an_executable_serves_only_the_jax_settings_it_was_compiled_under():
    model = Tagger()
    model(_x())
    with jax.default_matmul_precision("highest"):  # on a GPU: float32 products at full precision
        model(_x())
    assert compiled.stats.programs == 2
    model(_x())  # the first executable again
    assert compiled.stats.programs == 2


def test_a_padded_call_is_read_back_at_the_callers_length():
    model = Tagger()
    x = _x((2, 5, 4))
    padded = np.concatenate([x, np.zeros((2, 3, 4), np.float32)], axis=1)
    eager = _eager(model, x)
    for n in range(5, 8):  # lengths 5-7 of the same 8-long program
        part = x[:, :n] if n <= 5 else np.concatenate([x, np.ones((2, n - 5, 4), np.float32)], axis=1)
        wide = np.concatenate([part, np.zeros((2, 8 - n, 4), np.float32)], axis=1)
        out = compiled.forward(model, (part,), {}, padded=((wide,), {}), lengths=(n, 8))
        assert out["probs"].shape == (2, n, 3)
    assert compiled.stats.programs == 1
    got = compiled.forward(model, (x,), {}, padded=((padded,), {}), lengths=(5, 8))
    assert_same_graph(got["probs"], eager["probs"])  # the caller's graph: shapes and reshapes of length 5


@pytest.mark.parametrize("batch, rows, padded_runs", [(2, None, 0), (1, None, 1), (2, 2, 1), (2, 3, 0)])
def test_a_padded_call_that_merges_batch_and_sequence(batch, rows, padded_runs):
    model = Tagger(merge=True)
    x = _x((batch, 5, 4))
    padded = np.concatenate([x, np.zeros((batch, 3, 4), np.float32)], axis=1)
    lengths = (5, 8) if rows is None else (5, 8, rows)
    got = compiled.forward(model, (x,), {}, padded=((padded,), {}), lengths=lengths)
    # rows b*5+s are not the first 10 of b*8+s: unless the caller says how many rows lead the
    # merged axis, batch 2 runs at its own length; batch 1's rows are the first 5 either way
    assert (compiled.stats.padded, compiled.stats.programs) == (padded_runs, 1)
    assert_same_graph(got["probs"], _eager(model, x)["probs"])
    assert got["probs"].shape == (batch * 5, 3)


def test_inside_a_jax_transformation_and_with_dropout_the_call_runs_eagerly():
    model = Tagger()
    x = _x()
    expected = np.asarray(_eager(model, x)["probs"].val)
    np.testing.assert_allclose(jax.jit(lambda v: model(v)["probs"].val)(x), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda v: model(v)["probs"].val)(x[:, None])[:, 0], expected, rtol=1e-5,
                               atol=1e-7)
    assert compiled.stats.calls == 0 and compiled.stats.eager == 2

    noisy = Noisy()
    first, second = np.asarray(noisy(x).val), np.asarray(noisy(x).val)
    assert not np.array_equal(first, second)  # a fresh mask every call, as eager
    assert compiled.stats.calls == 0
    noisy.eval()
    np.testing.assert_allclose(np.asarray(noisy(x).val), expected, rtol=1e-6)
    assert compiled.stats.calls == 1


def test_a_forward_that_reads_a_node_from_outside_runs_eagerly():
    outside = bf.Node(np.ones(4, np.float32))

    class Reader(Tagger):
        def forward(self, x):
            return super().forward(x)["hidden"][0] * outside

    model = Reader()
    x = _x()
    np.testing.assert_allclose(np.asarray(model(x).val), np.asarray(_eager(model, x).val), rtol=1e-6)
    model(x)
    assert compiled.stats.calls == 0 and compiled.stats.eager == 2 and compiled.stats.templates == 1


def test_errors_come_from_the_eager_forward():
    model = Tagger()
    with pytest.raises(ValueError, match=r"Linear expects inputs of shape \(\.\.\., 4\)"):
        model(_x((2, 5, 3)))


def test_plain_networks_run_eagerly_unless_asked():
    model = Block(4, 0)
    model(_x())
    assert compiled.stats.calls == 0
    model.compiled_forward = True
    model(_x())
    assert compiled.stats.calls == 1


def test_compile_key_shares_programs_between_networks_of_one_architecture():
    class Shared(Tagger):
        def compile_key(self):
            return "tagger"

    first, second = Shared(seed=0), Shared(seed=5)
    x = _x()
    first(x)
    got = second(x)
    assert compiled.stats.programs == 1
    np.testing.assert_allclose(np.asarray(got["probs"].val), np.asarray(_eager(second, x)["probs"].val), rtol=1e-6)
    assert got["hidden"][0].inputs[0].module is second.block.norm  # the caller's modules, not the first's
    first.block.dense.weight.val = jnp.zeros((4, 4))  # a new value, not a new architecture
    first(x)
    assert compiled.stats.programs == 1


def test_cuts_off_the_host_give_the_same_values(monkeypatch):
    # accelerators cut with lax.slice (no host round trip); the CPU takes a numpy view
    model = Tagger(merge=True)
    x = _x((2, 5, 4))
    padded = np.concatenate([x, np.zeros((2, 3, 4), np.float32)], axis=1)
    monkeypatch.setattr(cuts, "on_cpu", lambda value: False)
    got = compiled.forward(model, (x,), {}, padded=((padded,), {}), lengths=(5, 8, 2))
    assert compiled.stats.padded == 1
    assert_same_graph(got["probs"], _eager(model, x)["probs"])


def _hidden_only(model, x):
    """A part of Tagger's forward, run as a root call of the whole model (paths from it)."""
    return model.block(x)


def test_a_function_of_the_network_runs_as_its_root_call_with_every_value_at_once():
    model = Tagger()
    x = bf.Node(_x(), name="x")
    with model.as_root():
        eager = model.block(x)
    got = compiled.forward(model, (x,), {}, function=_hidden_only, values_now=True)
    assert compiled.stats.calls == 1 and compiled.stats.programs == 1  # values_now: no second program
    assert not any(isinstance(n._val, Deferred) for n in _graph(got))
    assert_same_graph(got, eager, leaves=[x, *model.parameters()])
    assert got.module_path == "block.norm"
    expected = _semiring_values(model.block, eager[1, 2, 0], [x])  # the head is not in this graph
    for name, values in _semiring_values(model.block, got[1, 2, 0], [x]).items():
        for k, (a, b) in enumerate(zip(values, expected[name])):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6, err_msg=f"{name}[{k}]")
    model(x)  # the network's own forward is another program, not the function's
    assert compiled.stats.programs == 2 and compiled.stats.templates == 2
    compiled.forward(model, (bf.Node(_x(seed=1)),), {}, function=_hidden_only, values_now=True)
    assert compiled.stats.programs == 2  # the function's program, reused


def test_a_prepared_call_compiles_on_a_thread_and_the_call_then_runs_that_executable():
    model = Tagger()
    x = bf.Node(_x(), name="x")
    assert compiled.forward(model, (x,), {}, function=_hidden_only, values_now=True, prepare=True) is None
    # traced here (the trace swaps the weights, so it cannot leave this thread); nothing ran
    assert compiled.stats.programs == 1 and compiled.stats.calls == 0
    with model.as_root():
        eager = model.block(x)
    got = compiled.forward(model, (x,), {}, function=_hidden_only, values_now=True)
    assert compiled.stats.programs == 1 and compiled.stats.calls == 1  # the prepared executable, no new trace
    assert_same_graph(got, eager, leaves=[x, *model.parameters()])
    compiled.forward(model, (x,), {}, function=_hidden_only, values_now=True, prepare=True)
    assert compiled.stats.programs == 1  # preparing a compiled call again does nothing


def test_a_prepared_call_that_cannot_compile_runs_and_counts_nothing():
    noisy, x = Noisy(), bf.Node(_x(), name="x")
    assert compiled.forward(noisy, (x,), {}, prepare=True) is None  # dropout in training: no program
    assert compiled.stats.eager == 0 and compiled.stats.programs == 0
    assert compiled.forward(noisy, (x,), {}) is compiled.EAGER and compiled.stats.eager == 1
