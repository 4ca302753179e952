"""The JAX settings a trace depends on beyond its arguments, for brunoflow's caches of executables.

`jax.jit` keys its own cache on them; the executables brunoflow keeps itself (compiled forwards,
backward kernels kept on disk, explanation programs) key on the two that change numbers: the
float64 mode (the dtypes of constants and Python scalars) and the default matmul precision
(float32 products on GPUs and TPUs run at reduced precision unless more is asked for). An
executable compiled under one must not serve a call under the other. Both can hold for one
thread only (`jax.enable_x64`, `jax.default_matmul_precision`), so work handed to another
thread takes them along (`applied`).
"""

import contextlib

import jax


def current():
    """(float64 mode, default matmul precision) on this thread: hashable, with a stable repr."""
    return bool(jax.config.jax_enable_x64), jax.config.jax_default_matmul_precision


@contextlib.contextmanager
def applied(settings):
    """Run the block under `settings` (from `current()`, maybe on another thread)."""
    x64, precision = settings
    with jax.enable_x64(x64), jax.default_matmul_precision(precision):
        yield
