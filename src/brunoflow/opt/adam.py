"""Adam with bias correction (Kingma & Ba), as torch.optim.Adam without weight decay."""

import math

import jax
import jax.numpy as jnp

from .optimizer import Optimizer


@jax.jit
def _adam(val, grad, m, v, t, beta1, beta2, log_beta1, log_beta2, one_minus_beta1, one_minus_beta2, step_size, eps):
    t = t + 1
    m = beta1 * m + one_minus_beta1 * grad
    v = beta2 * v + one_minus_beta2 * grad * grad
    # 1 − β^t as −expm1(t·log β): t is an array (the state must be traceable), and 1 − 0.999^t
    # computed in float32 would lose digits where this keeps float32's relative precision
    tf = t.astype(val.dtype)
    m_hat = m / -jnp.expm1(tf * log_beta1.astype(val.dtype))
    v_hat = v / -jnp.expm1(tf * log_beta2.astype(val.dtype))
    return val - step_size * m_hat / (jnp.sqrt(v_hat) + eps), (t, m, v)


class Adam(Optimizer):
    """Per parameter: moments m, v and its own step count t (a parameter that got no
    gradient this step keeps its t, as torch)."""

    def __init__(self, params, step_size=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, step_size)
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), got {beta1} and {beta2}")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _init(self, value):
        return jnp.zeros((), jnp.int32), jnp.zeros_like(value), jnp.zeros_like(value)

    def _update(self, value, grad, state):
        t, m, v = state
        b1, b2 = self.beta1, self.beta2
        # the 1 − β terms and log β in host float64, as torch: 1 − 0.999 loses digits in float32;
        # as arrays, so that no dtype promotion depends on x64 mode
        return _adam(value, grad, m, v, t, b1, b2, jnp.asarray(math.log(b1) if b1 else -jnp.inf),
                     jnp.asarray(math.log(b2) if b2 else -jnp.inf), 1 - b1, 1 - b2, self.step_size, self.eps)
