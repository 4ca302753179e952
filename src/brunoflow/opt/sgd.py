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

    def _update(self, p, velocity):
        if velocity is None:  # plain SGD keeps no state: 0 · grad + grad = grad
            velocity = jnp.zeros_like(p.val) if self.momentum else p.grad
        p.val, velocity = _sgd(p.val, p.grad, velocity, self.step_size, self.momentum)
        return velocity if self.momentum else None
