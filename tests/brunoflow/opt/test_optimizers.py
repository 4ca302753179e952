"""SGD and Adam: exact updates against torch.optim, and a small MLP that actually trains."""

import numpy as np
import pytest
import torch

import brunoflow as bf
from brunoflow.net import Linear, Network


class MLP(Network):
    def __init__(self):
        super().__init__()
        self.hidden = Linear(2, 16, key=0)
        self.out = Linear(16, 1, key=1)

    def forward(self, x):
        return self.out(bf.func.tanh(self.hidden(x)))


def _data():
    x = np.random.default_rng(0).uniform(-2, 2, size=(64, 2)).astype(np.float32)
    return x, (np.sin(x[:, :1]) * x[:, 1:]).astype(np.float32)


def _train(make_optimizer, steps=200):
    model, (x, y) = MLP(), _data()
    opt = make_optimizer(model.parameters())  # a generator, as torch users pass it
    losses = []
    for _ in range(steps):
        loss = bf.func.mse_loss(model(x), y)
        loss.backprop(values_to_compute=("grad",))
        opt.step()
        opt.zero_gradients()
        losses.append(float(loss.val))
    return losses


@pytest.mark.parametrize("make_optimizer", [
    lambda params: bf.opt.SGD(params, step_size=0.05, momentum=0.9),
    lambda params: bf.opt.Adam(params, step_size=0.01),
], ids=["sgd-momentum", "adam"])
def test_mlp_trains(make_optimizer):
    losses = _train(make_optimizer)
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def _steps_against_torch(bf_opt_class, torch_opt_class, bf_kwargs, torch_kwargs, steps=4):
    rng = np.random.default_rng(1)
    start = rng.normal(size=(3, 2)).astype(np.float32)
    grads = [rng.normal(size=(3, 2)).astype(np.float32) for _ in range(steps)]
    p = bf.Parameter(start)
    t = torch.nn.Parameter(torch.from_numpy(start.copy()))
    opt, reference = bf_opt_class([p], **bf_kwargs), torch_opt_class([t], **torch_kwargs)
    for g in grads:
        p.grad, t.grad = bf.Node(g).val, torch.from_numpy(g)
        opt.step()
        reference.step()
        np.testing.assert_allclose(np.asarray(p.val), t.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_sgd_momentum_matches_torch():
    _steps_against_torch(bf.opt.SGD, torch.optim.SGD, dict(step_size=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9))


def test_plain_sgd_matches_torch():
    _steps_against_torch(bf.opt.SGD, torch.optim.SGD, dict(step_size=0.3), dict(lr=0.3))


def test_adam_matches_torch():
    _steps_against_torch(bf.opt.Adam, torch.optim.Adam, dict(step_size=0.01, beta1=0.8, beta2=0.99, eps=1e-6),
                         dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6))


def test_parameter_without_grad_is_skipped_and_zero_gradients_clears():
    used, unused = bf.Parameter(np.ones(2, np.float32)), bf.Parameter(np.ones(2, np.float32))
    opt = bf.opt.Adam(iter([used, unused, used]), step_size=0.1)
    assert len(opt.params) == 2  # each parameter once
    (used * 3.0).sum().backprop(values_to_compute=("grad", "abs_val_grad"))
    opt.step()
    assert np.all(np.asarray(used.val) < 1) and np.array_equal(np.asarray(unused.val), np.ones(2))
    opt.zero_gradients()
    assert used.grad is None and used.abs_val_grad is None


def test_step_makes_new_arrays_and_keeps_dtype():
    p = bf.Parameter(np.ones(2, np.float32))
    before = p.val
    (p * p).sum().backprop(values_to_compute=("grad",))
    bf.opt.SGD([p], step_size=0.25).step()
    np.testing.assert_array_equal(np.asarray(p.val), [0.5, 0.5])
    np.testing.assert_array_equal(np.asarray(before), [1.0, 1.0])
    assert p.val.dtype == np.float32


def test_empty_parameter_list_is_an_error():
    with pytest.raises(ValueError, match="no parameters"):
        bf.opt.SGD(iter([]))


@pytest.mark.parametrize("make_optimizer", [
    lambda params: bf.opt.SGD(params, step_size=0.1, momentum=0.9),
    lambda params: bf.opt.SGD(params, step_size=0.1),
    lambda params: bf.opt.Adam(params, step_size=0.05, beta1=0.8),
], ids=["sgd-momentum", "sgd", "adam"])
def test_jitted_update_equals_step(make_optimizer):
    """The pure update (what a jitted training step runs) and step() are one rule."""
    import jax
    rng = np.random.default_rng(2)
    start = [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(4,)).astype(np.float32)]
    grads = [[rng.normal(size=v.shape).astype(np.float32) for v in start] for _ in range(5)]
    params = [bf.Parameter(v) for v in start]
    eager, pure = make_optimizer(params), make_optimizer(params)
    values, state = [p.val for p in params], pure.init_state()
    update = jax.jit(pure.update)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = bf.Node(g).val
        eager.step()
        values, state = update(values, step_grads, state)
        for p, v in zip(params, values):
            np.testing.assert_allclose(np.asarray(p.val), np.asarray(v), rtol=1e-6, atol=1e-7)


def test_update_skips_a_parameter_without_gradient():
    p, q = bf.Parameter(np.ones(2, np.float32)), bf.Parameter(np.ones(2, np.float32))
    opt = bf.opt.Adam([p, q], step_size=0.1)
    state = opt.init_state()
    values, new_state = opt.update([p.val, q.val], [np.ones(2, np.float32), None], state)
    assert np.all(np.asarray(values[0]) < 1) and values[1] is q.val and new_state[1] is state[1]
    assert int(new_state[0][0]) == 1
    with pytest.raises(ValueError, match="1 grads for 2 parameters"):
        opt.update([p.val, q.val], [None], state)
