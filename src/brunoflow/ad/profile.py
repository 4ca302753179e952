"""A profiling aid: where a backprop's time goes, kernel by kernel.

    from brunoflow.ad.profile import kernel_timings
    with kernel_timings() as timings:
        y.backprop()
    timings.by_op                # {"matmul": seconds, "tanh": seconds, ...}
    timings.by_op_and_shapes     # {("matmul", ((128, 384), (384, 384))): seconds, ...}

While it records, the sweep waits for a backward kernel's inputs before calling it and for its
result after, so each time is that kernel's own dispatch and compute. That serialises what JAX
would otherwise overlap: a profiled sweep is slower than a plain one, and its times say where the
time goes, not how long a sweep takes. Eager sweeps only: under jax.jit no kernel runs on its own.
"""

import contextlib
import time

import jax
import numpy as np

# What backprop adds its kernel times to while kernel_timings() is open; None costs it one test.
recording = None


class KernelTimings:
    """Seconds spent in backward kernels inside one `kernel_timings()`, summed over its calls,
    per op name and per (op name, shapes of the op's inputs); ops in the order first met."""

    def __init__(self):
        self.by_op = {}
        self.by_op_and_shapes = {}
        self.calls = 0

    def time(self, op_name, inputs, kernel, args):
        """kernel(*args), timed from its arguments being ready to its result being ready."""
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(args)):
            raise RuntimeError("kernel_timings() times eager backprops; this one is traced (jax.jit / jax.vmap), "
                               "so its kernels are compiled together and have no times of their own")
        jax.block_until_ready(args)
        start = time.perf_counter()
        out = jax.block_until_ready(kernel(*args))
        took = time.perf_counter() - start
        key = (op_name, tuple(np.shape(x) for x in inputs))
        self.by_op[op_name] = self.by_op.get(op_name, 0.0) + took
        self.by_op_and_shapes[key] = self.by_op_and_shapes.get(key, 0.0) + took
        self.calls += 1
        return out


@contextlib.contextmanager
def kernel_timings():
    """Record every backward kernel of the backprops run inside; yields their KernelTimings.
    A nested kernel_timings() records on its own, and the outer one resumes after it."""
    global recording
    outer, recording = recording, KernelTimings()
    try:
        yield recording
    finally:
        recording = outer
