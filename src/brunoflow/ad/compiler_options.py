"""XLA options for brunoflow's own kernels and programs: compile faster where nothing runs slower.

On CPU, XLA's newer fusion emitters take about twice as long as its older LLVM emitters to
compile the backward kernels of elementwise, structural and reduction ops (select-heavy fusions
with many outputs: a max_path pull writes six arrays per input) and of the layer-scanned
explanation program, and those run no faster with them. A first explanation compiles ~50 such
kernels and the program: 13.5 s with the default emitters, 10.1 s with these options (MiniLM, 16
tokens, two cores; benchmarks/README.md). Contractions keep the default: their max-times scans run
slower under the old emitters.
"""

import functools

import jax
import numpy as np

FAST_COMPILE_CPU = {"xla_cpu_use_fusion_emitters": False}


@functools.cache
def fast_compile():
    """The options for this process's backend: FAST_COMPILE_CPU on CPU, none elsewhere or where
    this XLA does not know them (an option XLA lacks fails every compile: tried once here)."""
    if jax.default_backend() != "cpu":
        return {}
    try:
        jax.jit(lambda x: x + 1, compiler_options=FAST_COMPILE_CPU).lower(np.float32(0)).compile()
    except jax.errors.JaxRuntimeError:
        return {}
    return dict(FAST_COMPILE_CPU)


class WithOptions:
    """`jax.jit(fn)` whose calls outside a trace compile with `options`. XLA takes options for a
    whole program only, so a call inside another trace (a kernel inlined into a compiled
    program) goes through a plain jit and gets that program's options."""

    def __init__(self, fn, options):
        self.plain = jax.jit(fn)
        self.top_level = jax.jit(fn, compiler_options=options)

    def __call__(self, *args):
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(args)):
            return self.plain(*args)
        return self.top_level(*args)

    def lower(self, *args):
        return self.top_level.lower(*args)

    def _cache_size(self):
        """Executables compiled either way (jax.jit's own count, which tests read)."""
        return self.plain._cache_size() + self.top_level._cache_size()
