"""Adam with bias correction (Kingma & Ba), as torch.optim.Adam without weight decay."""

import jax
import jax.numpy as jnp

from .optimizer import Optimizer


@jax.jit
def _adam(val, grad, m, v, beta1, beta2, one_minus_beta1, one_minus_beta2, correction1, correction2, step_size, eps):
    m = beta1 * m + one_minus_beta1 * grad
    v = beta2 * v + one_minus_beta2 * grad * grad
    m_hat = m / correction1
    v_hat = v / correction2
    return val - step_size * m_hat / (jnp.sqrt(v_hat) + eps), m, v


class Adam(Optimizer):
    """Per parameter: moments m, v and its own step count t (a parameter that got no
    gradient this step keeps its t, as torch)."""

    def __init__(self, params, step_size=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, step_size)
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), got {beta1} and {beta2}")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, p, state):
        t, m, v = state if state is not None else (0, jnp.zeros_like(p.val), jnp.zeros_like(p.val))
        t += 1
        b1, b2 = self.beta1, self.beta2
        # the 1 − β terms in host float64, as torch: 1 − 0.999 loses digits in float32
        p.val, m, v = _adam(p.val, p.grad, m, v, b1, b2, 1 - b1, 1 - b2, 1 - b1 ** t, 1 - b2 ** t,
                            self.step_size, self.eps)
        return t, m, v
