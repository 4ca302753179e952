"""The module scope: which Network is running, so every Node made inside knows its maker.

`Network.__call__` enters a scope; `Node` reads it once, at creation. Nothing else names
nodes by module, so analyses can find "layer 3's attention input" by path alone.
"""

import contextlib

_stack = [(None, "")]


@contextlib.contextmanager
def module_scope(module, path):
    _stack.append((module, path))
    try:
        yield
    finally:
        _stack.pop()


def current_scope():
    return _stack[-1]
