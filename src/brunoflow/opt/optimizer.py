"""Optimizer base: holds the parameters, skips the ones backprop did not reach."""


class Optimizer:
    """Updates `p.val` of each parameter from `p.grad`; jax arrays are immutable, so every
    step stores new arrays (any Node built earlier keeps the value it was built with)."""

    def __init__(self, params, step_size=0.001):
        self.params = list({id(p): p for p in params}.values())  # any iterable, a generator too; each once
        if not self.params:
            raise ValueError(f"{type(self).__name__} got no parameters: pass e.g. net.parameters()")
        self.step_size = step_size
        self.state = {}  # id(param) → that parameter's optimizer state

    def step(self):
        for p in self.params:
            if p.grad is not None:
                self.state[id(p)] = self._update(p, self.state.get(id(p)))

    def _update(self, p, state):
        """Set p.val from p.grad and return the parameter's new state."""
        raise NotImplementedError

    def zero_gradients(self):
        """Clear the semiring values of every parameter; call once per step, as backprop accumulates."""
        for p in self.params:
            p._zero_self()
