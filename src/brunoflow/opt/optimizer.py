"""Optimizer base: holds the parameters, skips the ones backprop did not reach.

Two ways to step. `step()` updates `p.val` from `p.grad` in place, as torch's optimizers do.
`init_state()` / `update()` are the same rule as pure functions of arrays, for a training
step that is one `jax.jit` (the weights and the optimizer state go in as arguments and come
back updated, as with `Network.using_parameters`); both run `_update`, so they agree.
"""


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
                state = self.state.get(id(p))
                p.val, self.state[id(p)] = self._update(p.val, p.grad, self._init(p.val) if state is None else state)

    def init_state(self, values=None):
        """The state before any step, one entry per parameter (in `params` order): arrays only,
        so it can be a jitted function's argument. `values` default to the parameters' own."""
        values = [p.val for p in self.params] if values is None else list(values)
        self._check(values, "values")
        return [self._init(v) for v in values]

    def update(self, values, grads, state):
        """One step as a pure function: (new values, new state). A None gradient leaves its
        parameter and its state as they were (as `step()` skips a parameter without grad)."""
        values, grads, state = list(values), list(grads), list(state)
        for name, given in (("values", values), ("grads", grads), ("state", state)):
            self._check(given, name)
        out_values, out_state = [], []
        for v, g, s in zip(values, grads, state):
            v, s = (v, s) if g is None else self._update(v, g, s)
            out_values.append(v)
            out_state.append(s)
        return out_values, out_state

    def _check(self, given, name):
        if len(given) != len(self.params):
            raise ValueError(f"{type(self).__name__}: {len(given)} {name} for {len(self.params)} parameters")

    def _init(self, value):
        """One parameter's state before its first step (arrays, or () for none)."""
        raise NotImplementedError

    def _update(self, value, grad, state):
        """(new value, new state) of one parameter: pure, so it runs eagerly or traced."""
        raise NotImplementedError

    def zero_gradients(self):
        """Clear the semiring values of every parameter; call once per step, as backprop accumulates."""
        for p in self.params:
            p._zero_self()
