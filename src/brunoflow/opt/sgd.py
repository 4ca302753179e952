"""SGD with (torch-style, undampened) momentum."""

import jax
import jax.numpy as jnp

from .optimizer import Optimizer


@jax.jit
def _sgd(val, grad, velocity, step_size, momentum):
    velocity = momentum * velocity + grad
    return val - step_size * velocity, velocity


class SGD(Optimizer):
    """v ← momentum · v + grad; p ← p − step_size · v (torch.optim.SGD with dampening 0)."""

    def __init__(self, params, step_size=0.001, momentum=0.0):
        super().__init__(params, step_size)
        if momentum < 0:
            raise ValueError(f"momentum must be ≥ 0, got {momentum}")
        self.momentum = momentum

    def _init(self, value):
        # torch's first step sets v = grad; momentum · 0 + grad is the same. Plain SGD keeps no state.
        return jnp.zeros_like(value) if self.momentum else ()

    def _update(self, value, grad, velocity):
        if not self.momentum:
            return _sgd(value, grad, grad, self.step_size, 0.0)[0], ()
        return _sgd(value, grad, velocity, self.step_size, self.momentum)
