import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brunoflow as bf
from brunoflow.ad import compiler_options
from brunoflow.ad.primitive import backward_kernel, clear_caches


@pytest.fixture
def fresh_options():
    compiler_options.fast_compile.cache_clear()
    yield
    compiler_options.fast_compile.cache_clear()


def test_the_options_are_xlas_cpu_ones_on_cpu_and_none_elsewhere(fresh_options):
    expected = compiler_options.FAST_COMPILE_CPU if jax.default_backend() == "cpu" else {}
    assert compiler_options.fast_compile() == expected


def test_an_option_this_xla_lacks_is_dropped_not_raised(fresh_options, monkeypatch):
    monkeypatch.setattr(compiler_options, "FAST_COMPILE_CPU", {"xla_no_such_option_here": False})
    assert compiler_options.fast_compile() == {}


def test_a_kernel_with_options_runs_alone_and_inside_a_trace():
    def f(x):
        return jnp.where(x > 0, x * 2.0, -x)

    kernel = compiler_options.WithOptions(f, compiler_options.FAST_COMPILE_CPU)
    x = jnp.linspace(-2.0, 2.0, 7)
    # inside another jit, XLA refuses options on a nested program: the plain jit must serve it
    np.testing.assert_array_equal(kernel(x), f(x))
    np.testing.assert_array_equal(jax.jit(lambda y: kernel(y) + 1)(x), f(x) + 1)
    np.testing.assert_array_equal(jax.vmap(kernel)(x[None]), f(x)[None])


def test_backward_kernels_of_non_contractions_compile_with_the_options():
    clear_caches()
    x = bf.Parameter(jnp.ones((2, 3)))
    w = bf.Parameter(jnp.ones((3, 4)))
    y = bf.func.matmul(bf.func.tanh(x), w)
    semirings = bf.ad.semirings.resolve(("grad", "max_path"))
    elementwise = backward_kernel(y.inputs[0].op, {}, semirings, ((0,),), ((True, True),), (x.val,))
    contraction = backward_kernel(y.op, {}, semirings, ((0,), (1,)), ((True, True), (True, True)),
                                  (y.inputs[0].val, w.val))
    with_options = bool(compiler_options.fast_compile())  # on CPU
    assert isinstance(getattr(elementwise, "jitted", elementwise), compiler_options.WithOptions) == with_options
    assert not isinstance(getattr(contraction, "jitted", contraction), compiler_options.WithOptions)
    y.backprop(values_to_compute=("grad", "max_path"))
    np.testing.assert_allclose(x.grad, (1 - np.tanh(1.0) ** 2) * 4 * np.ones((2, 3)), rtol=1e-6)
