"""Network: registration, names, state dicts, module paths on nodes, modes, printing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf
from brunoflow.ad.backprop import ancestors
from brunoflow.net import Dropout, LayerNorm, Linear, ModuleList, Network, Sequential


class Block(Network):
    def __init__(self, width, seed):
        super().__init__()
        self.dense = Linear(width, width, key=seed)
        self.norm = LayerNorm(width)

    def forward(self, x):
        return self.norm(bf.func.tanh(self.dense(x)))


class Model(Network):
    def __init__(self, width=4, depth=2, seed=0):
        super().__init__()
        self.encoder = ModuleList([Block(width, seed + i) for i in range(depth)])
        self.head = Linear(width, 2, key=seed + 100)

    def forward(self, x):
        for block in self.encoder:
            x = block(x)
        return (self.head(x) * 2.0).sum()  # the mul and sum are the root's own nodes


def _x(seed=0):
    return np.random.default_rng(seed).normal(size=(3, 4)).astype(np.float32)


EXPECTED_NAMES = ["encoder.0.dense.weight", "encoder.0.dense.bias", "encoder.0.norm.weight", "encoder.0.norm.bias",
                  "encoder.1.dense.weight", "encoder.1.dense.bias", "encoder.1.norm.weight", "encoder.1.norm.bias",
                  "head.weight", "head.bias"]


def test_parameter_names_follow_registration_order():
    model = Model()
    assert [name for name, _ in model.named_parameters()] == EXPECTED_NAMES
    assert [name for name, _ in model.named_parameters(prefix="bert")] == ["bert." + n for n in EXPECTED_NAMES]
    assert [name for name, _ in model.encoder[1].named_parameters(recurse=False)] == []
    assert len(list(model.parameters())) == 10
    assert [name for name, _ in model.named_modules()] == [
        "", "encoder", "encoder.0", "encoder.0.dense", "encoder.0.norm", "encoder.1", "encoder.1.dense",
        "encoder.1.norm", "head"]
    assert [name for name, _ in model.named_children()] == ["encoder", "head"]
    assert list(model.children()) == [model.encoder, model.head]
    assert model.get_submodule("encoder.1.norm") is model.encoder[1].norm


def test_shared_parameter_is_yielded_once_but_state_dict_keeps_both_names():
    model = Model()
    model.head.weight = model.encoder[0].dense.weight
    model.head.bias = None
    names = [name for name, _ in model.named_parameters()]
    assert "head.weight" not in names and len(names) == 8
    assert "head.weight" in model.state_dict() and "head.bias" not in model.state_dict()
    model.assign_module_paths()
    assert model.head.weight.module_path == "encoder.0.dense"  # the first owner keeps it


def test_setattr_rules():
    model = Model()
    with pytest.raises(TypeError, match="parameter 'weight'.*copy_"):
        model.head.weight = jnp.zeros((2, 4))
    with pytest.raises(TypeError, match="submodule 'head'"):
        model.head = "not a network"
    model.scale = 3.0  # plain attributes stay plain
    assert model.scale == 3.0 and "scale" not in dict(model.named_parameters())
    model.extra = bf.Parameter(jnp.ones(2))
    assert list(dict(model.named_parameters()))[0] == "extra"  # a module's own parameters come first, as torch
    del model.extra
    assert "extra" not in model.state_dict()

    class Forgot(Network):
        def __init__(self):
            self.w = bf.Parameter(jnp.ones(2))

    with pytest.raises(AttributeError, match=r"call super\(\)\.__init__\(\) first"):
        Forgot()


def test_state_dict_round_trip():
    source, target = Model(seed=1), Model(seed=2)
    x = _x()
    assert not np.allclose(source(x).val, target(x).val)
    state = source.state_dict()
    assert list(state) == EXPECTED_NAMES
    result = target.load_state_dict({k: np.asarray(v) for k, v in state.items()})
    assert result == ([], [])
    np.testing.assert_array_equal(source(x).val, target(x).val)
    for name, value in target.state_dict().items():
        np.testing.assert_array_equal(value, state[name])


def test_failed_load_reports_every_problem_and_changes_nothing():
    model = Model(seed=1)
    before = {k: np.asarray(v) for k, v in model.state_dict().items()}
    bad = {k: v + 1.0 for k, v in Model(seed=2).state_dict().items()}  # valid entries would change values
    del bad["encoder.1.norm.bias"]
    bad["encoder.9.dense.weight"] = jnp.zeros((4, 4))
    bad["head.weight"] = jnp.zeros((3, 4))
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(bad)
    message = str(info.value)
    assert "missing keys: encoder.1.norm.bias" in message
    assert "unexpected keys: encoder.9.dense.weight" in message
    assert "head.weight: expected shape (2, 4), got (3, 4)" in message
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_non_strict_load_returns_missing_and_unexpected_keys():
    model, other = Model(seed=1), Model(seed=2)
    state = other.state_dict()
    del state["head.bias"]
    state["stray"] = jnp.zeros(1)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert (missing, unexpected) == (["head.bias"], ["stray"])
    np.testing.assert_array_equal(model.head.weight.val, other.head.weight.val)
    with pytest.raises(RuntimeError, match="shape mismatch"):  # shapes are checked even when not strict
        model.load_state_dict({"head.bias": jnp.zeros(5)}, strict=False)


def test_every_node_carries_its_module_path():
    model = Model()
    out = model(_x())
    nodes = ancestors(out)
    by_path = {}
    for node in nodes:
        by_path.setdefault(node.module_path, []).append(node)
    assert {"", "encoder.0.dense", "encoder.0.norm", "encoder.0", "encoder.1.dense", "head"} <= set(by_path)
    assert out.module_path == "" and out.module is model
    for node in by_path["encoder.1.dense"]:
        assert node.module is model.encoder[1].dense
    matmuls = [n for n in by_path["encoder.0.dense"] if n.op is not None and n.op.name == "matmul"]
    assert len(matmuls) == 1
    assert {n.op.name for n in by_path["encoder.0"] if n.op is not None} == {"tanh"}
    assert model.encoder[1].norm.bias.module_path == "encoder.1.norm"
    assert model.encoder[1].norm.bias.module is model.encoder[1].norm
    assert bf.Node(1.0).module_path == "" and bf.Node(1.0).module is None  # outside any call


def test_paths_follow_the_root_and_tree_changes():
    model = Model()
    sub_out = model.encoder[1](_x())  # called on its own, the block is the root
    assert {n.module_path for n in ancestors(sub_out) if n.op is not None} == {"", "dense", "norm"}
    model.encoder.append(Block(4, 7))
    out = model(_x())
    paths = {n.module_path for n in ancestors(out) if n.op is not None}
    assert {"encoder.1.dense", "encoder.2.dense", "encoder.2.norm"} <= paths and "dense" not in paths
    assert model.encoder[2].dense.weight.module_path == "encoder.2.dense"


def test_network_outside_the_tree_is_attributed_to_its_caller():
    class Loose(Network):
        def __init__(self):
            super().__init__()
            self.inner = [Linear(4, 4, key=0)]  # a plain list registers nothing

        def forward(self, x):
            return self.inner[0](x)

    out = Loose()(_x())
    assert out.module_path == "" and isinstance(out.module, Linear)


def test_train_eval_toggle_every_module_and_dropout():
    class Net(Network):
        def __init__(self):
            super().__init__()
            self.body = Sequential(Linear(4, 64, key=0), Dropout(0.5, key=1))

        def forward(self, x):
            return self.body(x)

    net = Net()
    x = _x()
    assert all(m.training for m in net.modules())
    first, second = net(x).val, net(x).val
    assert (first == 0).any() and not np.array_equal(first, second)  # a fresh mask each call
    net.eval()
    assert not any(m.training for m in net.modules())
    np.testing.assert_array_equal(net(x).val, net.body[0](x).val)
    assert net.train() is net and net.body[1].training


def test_containers():
    layers = ModuleList([Linear(2, 2, key=i) for i in range(3)])
    assert len(layers) == 3 and layers[-1] is layers[2] and list(layers)[0] is layers[0]
    assert isinstance(layers[1:], ModuleList) and len(layers[1:]) == 2
    with pytest.raises(IndexError, match="out of range for ModuleList of length 3"):
        layers[3]
    layers.extend([Linear(2, 2)]).append(Linear(2, 2))
    assert [n for n, _ in layers.named_children()] == ["0", "1", "2", "3", "4"]
    seq = Sequential(layers[0], bf.net.Dropout(0.0), layers[1])
    x = _x()[:, :2]
    np.testing.assert_allclose(seq(x).val, layers[1](layers[0](x)).val, rtol=1e-6)
    with pytest.raises(NotImplementedError):
        layers(x)


def test_zero_gradients_clears_every_parameter():
    model = Model()
    model(_x()).backprop(values_to_compute=("grad", "abs_val_grad"))
    assert all(p.grad is not None and p.abs_val_grad is not None for p in model.parameters())
    model.zero_gradients()
    assert all(p.grad is None and p.abs_val_grad is None for p in model.parameters())


def test_repr_prints_the_tree():
    text = repr(Model(depth=1))
    assert text.startswith("Model(\n  (encoder): ModuleList(\n    (0): Block(\n")
    assert "      (dense): Linear(in_features=4, out_features=4, bias=True)" in text
    assert "(norm): LayerNorm((4,), eps=1e-05, elementwise_affine=True)" in text
    assert text.endswith("  (head): Linear(in_features=4, out_features=2, bias=True)\n)")


def test_forward_and_backprop_of_a_network_run_under_jit():
    model = Model()

    def analysis(x_val):
        x = bf.Node(x_val)
        model(x).backprop(values_to_compute=("grad", "entropy"))
        result = (x.grad, x.compute_entropy().val, model.head.weight.grad)
        model.zero_gradients()
        return result

    eager = analysis(_x())
    jitted = jax.jit(analysis)(_x())
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
