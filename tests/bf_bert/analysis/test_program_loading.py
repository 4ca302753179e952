import jax
import numpy as np

from bf_bert.analysis.program import _Jitted, _Loaded


class _Counting:
    def __init__(self):
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return sum(float(np.sum(a)) for a in args)


def test_the_loading_run_serves_only_the_call_with_its_very_arguments():
    executable = _Counting()
    x, y = np.ones(3), np.zeros(2)
    loaded = _Loaded(executable, ((x, y), "output of the loading run"))
    assert loaded(x, y) == "output of the loading run" and executable.calls == 0
    assert loaded(x, y) == 3.0 and executable.calls == 1  # once only: a later call runs again


def test_other_arguments_never_get_the_loading_runs_output():
    executable = _Counting()
    x, y = np.ones(3), np.zeros(2)
    loaded = _Loaded(executable, ((x, y), "output of the loading run"))
    assert loaded(x.copy(), y) == 3.0  # equal values, but not the arrays that run read
    assert loaded(x, y) == 3.0 and executable.calls == 2  # and the stored output is gone


def test_a_program_keeps_one_executable_per_jax_settings():
    program = _Jitted(jax.jit(lambda a, b: a @ b), disk_key=None)
    args = (np.ones((2, 3), np.float32), np.ones((3, 2), np.float32))
    program.executable(args, run_once=False).result()
    with jax.default_matmul_precision("highest"):  # on a GPU: float32 products at full precision
        assert not program.has(args)
        program.executable(args, run_once=False).result()
    assert program.has(args) and len(program.executables) == 2
