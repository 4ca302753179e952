"""Layers against torch.nn on identical weights: outputs, gradients, init and input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import brunoflow as bf
from brunoflow.net import Dropout, Embedding, LayerNorm, Linear
from brunoflow.net.ids import check_in_range


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _close(bf_value, torch_value, tol=1e-5):
    np.testing.assert_allclose(np.asarray(bf_value), torch_value.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_loads_torch_weights_and_matches_its_output(bias):
    torch.manual_seed(0)
    reference = torch.nn.Linear(5, 3, bias=bias)
    layer = Linear(5, 3, bias=bias, key=1)
    assert list(layer.state_dict()) == list(reference.state_dict())
    layer.load_state_dict(reference.state_dict())
    x = _randn(2, 4, 5)
    expected = reference(torch.from_numpy(x))
    _close(layer(x).val, expected)
    _close(layer(bf.Node(x)).val, expected)


def test_linear_grads_match_torch_autograd():
    torch.manual_seed(1)
    reference = torch.nn.Linear(4, 3)
    layer = Linear(4, 3)
    layer.load_state_dict(reference.state_dict())
    x_val = _randn(5, 4, seed=2)
    x_torch = torch.from_numpy(x_val).requires_grad_()
    torch.tanh(reference(x_torch)).pow(2).sum().backward()
    x = bf.Node(x_val)
    (bf.func.tanh(layer(x)) ** 2).sum().backprop(values_to_compute=("grad",))
    _close(x.grad, x_torch.grad)
    _close(layer.weight.grad, reference.weight.grad)
    _close(layer.bias.grad, reference.bias.grad)


def test_linear_init_is_torch_like_and_seeded():
    layer = Linear(64, 32, key=3)
    w, b = np.asarray(layer.weight.val), np.asarray(layer.bias.val)
    assert w.shape == (32, 64) and b.shape == (32,) and w.dtype == np.float32
    assert np.abs(w).max() <= 1 / 8 and np.abs(w).max() > 0.9 / 8  # uniform(±1/sqrt(in_features))
    np.testing.assert_array_equal(Linear(64, 32, key=3).weight.val, w)
    np.testing.assert_array_equal(Linear(64, 32, key=jax.random.PRNGKey(3)).weight.val, w)
    bf.net.manual_seed(5)
    first, second = Linear(64, 32), Linear(64, 32)
    assert not np.array_equal(first.weight.val, second.weight.val)  # the default stream advances
    bf.net.manual_seed(5)
    np.testing.assert_array_equal(Linear(64, 32).weight.val, first.weight.val)


def test_linear_rejects_a_wrong_last_dimension():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 5\).*got shape \(2, 4\)"):
        Linear(5, 3)(np.zeros((2, 4), np.float32))


def test_linear_rows_computes_only_those_outputs_with_the_same_paths():
    linear = Linear(4, 6, key=0)
    x = bf.Node(np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32))
    rows = jnp.array([5, 1])
    chosen = linear(x, rows=rows)
    full = linear(x)
    np.testing.assert_allclose(chosen.val, np.asarray(full.val)[:, [5, 1]], rtol=1e-6)
    (chosen[:, 0] - chosen[:, 1]).sum().backprop(values_to_compute=("grad", "abs_val_grad", "max_path"),
                                                 inputs=[x])
    by_rows = [np.asarray(v) for v in (x.grad, x.abs_val_grad, x.max_path_of_output_wrt_node[0])]
    x.zero_gradients()
    (full[:, 5] - full[:, 1]).sum().backprop(values_to_compute=("grad", "abs_val_grad", "max_path"), inputs=[x])
    for got, want in zip(by_rows, (x.grad, x.abs_val_grad, x.max_path_of_output_wrt_node[0])):
        np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("rows", [[7], [-1, 2]])
def test_linear_rows_out_of_range_fail_on_host_and_leave_the_layer_usable(rows):
    linear = Linear(4, 6, key=0)
    x = np.ones((1, 4), np.float32)
    with pytest.raises(ValueError, match=r"Linear rows must be in \[0, 5\] \(out_features=6\)"):
        linear(x, rows=jnp.array(rows))
    assert linear(x, rows=jnp.array([5])).shape == (1, 1)


def test_embedding_matches_torch_and_zeroes_the_padding_row():
    torch.manual_seed(2)
    reference = torch.nn.Embedding(10, 6, padding_idx=1)
    layer = Embedding(10, 6, padding_idx=1)
    np.testing.assert_array_equal(layer.weight.val[1], np.zeros(6))
    layer.load_state_dict(reference.state_dict())
    ids = np.array([[1, 2, 9], [0, 2, 5]])
    _close(layer(ids).val, reference(torch.from_numpy(ids)))
    _close(layer(torch.from_numpy(ids)).val, reference(torch.from_numpy(ids)))
    assert Embedding(10, 6, padding_idx=-1).padding_idx == 9


def test_embedding_padding_row_gets_no_gradient_and_no_path_as_torch():
    # torch masks the padding row's gradient; here it has no edge from the lookup at all, so every
    # semiring sees it as a row no id picked (row 7), while its value still reaches the output
    torch.manual_seed(3)
    reference = torch.nn.Embedding(10, 4, padding_idx=1)
    with torch.no_grad():
        reference.weight[1] = 0.5  # a checkpoint may hold any padding row
    layer = Embedding(10, 4, padding_idx=1)
    layer.load_state_dict(reference.state_dict())
    ids = np.array([[1, 2, 9], [0, 1, 5]])
    weights = _randn(2, 3, 4, seed=4)
    expected = reference(torch.from_numpy(ids))
    (expected * torch.from_numpy(weights)).sum().backward()
    out = layer(ids)
    _close(out.val, expected)
    (out * weights).sum().backprop(("grad", "entropy", "max_grad", "max_path"))
    table = layer.weight
    _close(table.grad, reference.weight.grad)
    assert np.all(np.asarray(table.grad)[1] == 0)
    for field in ("grad", "abs_val_grad", "entropy_wrt_output"):
        np.testing.assert_array_equal(np.asarray(getattr(table, field))[1], np.asarray(getattr(table, field))[7],
                                      err_msg=field)
    for field in ("max_grad_of_output_wrt_node", "max_path_of_output_wrt_node"):
        value, pointer = getattr(table, field)[0], getattr(table, field)[1]
        np.testing.assert_array_equal(np.asarray(value)[1], np.asarray(value)[7], err_msg=field)
        np.testing.assert_array_equal(np.asarray(pointer)[1], np.asarray(pointer)[7], err_msg=field)
    assert np.asarray(table.abs_val_grad)[[0, 2, 5, 9]].min() > 0  # the rows looked up do have paths


@pytest.mark.parametrize("ids", [[[0, 10]], [[-1, 3]]])
def test_embedding_ids_out_of_range_fail_on_host(ids):
    with pytest.raises(ValueError, match=r"ids must be in \[0, 9\].*got ids in"):
        Embedding(10, 4)(np.array(ids))


def test_the_range_check_names_the_ids_their_range_and_where_the_size_comes_from():
    with pytest.raises(ValueError) as plain:
        check_in_range(np.array([[3, 12]]), 10, "input_ids", "vocab_size")
    assert str(plain.value) == "input_ids must be in [0, 9] (vocab_size=10), got input_ids in [3, 12]"
    with pytest.raises(ValueError) as owned:
        check_in_range(torch.tensor([-1, 3]), 10, "ids", "num_embeddings", owner="Embedding")
    assert str(owned.value) == "Embedding ids must be in [0, 9] (num_embeddings=10), got ids in [-1, 3]"
    with pytest.raises(ValueError, match=r"got token_type_ids in \[1, 1\]"):  # booleans index as 0/1
        check_in_range(np.array([True]), 1, "token_type_ids", "type_vocab_size")
    check_in_range(np.array([0, 9]), 10, "ids", "num_embeddings")


def test_embedding_skips_the_range_check_for_traced_ids():
    layer = Embedding(10, 4)
    out = jax.jit(lambda ids: layer(ids).val)(jnp.array([3, 4]))
    np.testing.assert_array_equal(out, layer.weight.val[jnp.array([3, 4])])


def test_layernorm_matches_torch_output_and_grads():
    torch.manual_seed(3)
    reference = torch.nn.LayerNorm(6, eps=1e-6)
    with torch.no_grad():  # non-trivial affine parameters, so the load is really tested
        reference.weight.normal_()
        reference.bias.normal_()
    layer = LayerNorm(6, eps=1e-6)
    layer.load_state_dict(reference.state_dict())
    x_val = _randn(3, 6, seed=4) * 3 + 1
    x_torch = torch.from_numpy(x_val).requires_grad_()
    expected = reference(x_torch)
    (expected * torch.arange(6.0)).sum().backward()
    x = bf.Node(x_val)
    out = layer(x)
    _close(out.val, expected)
    (out * jnp.arange(6.0)).sum().backprop(values_to_compute=("grad",))
    _close(x.grad, x_torch.grad, tol=1e-4)
    _close(layer.weight.grad, reference.weight.grad, tol=1e-4)


def test_layernorm_over_two_axes_and_shape_check():
    reference = torch.nn.LayerNorm((2, 3))
    layer = LayerNorm((2, 3))
    x = _randn(4, 2, 3, seed=5)
    _close(layer(x).val, reference(torch.from_numpy(x)))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, 3\).*got shape \(4, 3\)"):
        layer(np.zeros((4, 3), np.float32))


def test_dropout_scales_survivors_and_is_seeded():
    x = np.ones((200, 50), np.float32)
    out = np.asarray(Dropout(0.25, key=0)(x).val)
    assert set(np.unique(out)) == {0.0, np.float32(1 / 0.75)}
    assert abs((out == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(Dropout(0.25, key=0)(x).val, out)
    explicit = Dropout(0.25, key=0)
    np.testing.assert_array_equal(explicit(x, key=jax.random.PRNGKey(9)).val,
                                  explicit(x, key=jax.random.PRNGKey(9)).val)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)


def test_using_dropout_key_varies_masks_under_jit_and_restores_keys():
    import jax
    from brunoflow.net import Sequential, using_dropout_key
    net = Sequential(Dropout(0.5, key=0), Dropout(0.5, key=1))
    before = [np.asarray(m.key) for m in net.modules() if isinstance(m, Dropout)]

    @jax.jit
    def run(x, key):
        with using_dropout_key(net, key):
            return net(bf.Node(x)).val

    x = np.ones(64, np.float32)
    a, b, again = run(x, jax.random.PRNGKey(0)), run(x, jax.random.PRNGKey(1)), run(x, jax.random.PRNGKey(0))
    assert not np.array_equal(a, b)          # a new key, new masks, without a recompile
    np.testing.assert_array_equal(a, again)  # the same key, the same masks
    assert run._cache_size() == 1
    after = [np.asarray(m.key) for m in net.modules() if isinstance(m, Dropout)]
    assert all(np.array_equal(k, old) for k, old in zip(after, before))
