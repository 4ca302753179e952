"""Property-based tests of the engine: random small graphs over every op family, every semiring
against the brute-force path oracle (tests/brunoflow/_oracle.py) and `grad` against `jax.grad`.

A graph is drawn as a program over 2-d tensors: elementwise ops (unary, and binary against the
same tensor, an equal-shaped one or a new leaf that broadcasts), contractions (matmul, einsum,
one operand in both slots), structural ops (transpose, gather with repeated rows, concat,
reshape, a kept-dims sum) and a selection (max over a row), then a sum. `check_graph` compares
every tensor's grad, |grad|, entropy, op-granular max/min with its parents, and the exact path
max/min whose pointers (a contraction's recomputed ones included) must be edges that multiply out.

The example budget keeps `make test` short; `make fuzz` runs the same properties longer
(`--hypothesis-profile=fuzz`; the profiles are in tests/conftest.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import brunoflow as bf
from brunoflow import func as F

from ._check import assert_close, check_graph, random_inputs


UNARY = {"tanh": (F.tanh, jnp.tanh), "sigmoid": (F.sigmoid, jax.nn.sigmoid), "neg": (F.neg, jnp.negative)}
BINARY = {"add": (F.add, jnp.add), "sub": (F.sub, jnp.subtract), "mul": (F.mul, jnp.multiply)}
SIZES = st.integers(1, 3)


class Program:
    """Leaves (shapes) and ops [(name, bf fn, jnp fn, inputs)]; an input is ("leaf", i) or ("op", k)."""

    def __init__(self, shape):
        self.leaves, self.ops, self.shapes = [shape], [], {("leaf", 0): shape}

    def leaf(self, shape):
        self.leaves.append(shape)
        ref = ("leaf", len(self.leaves) - 1)
        self.shapes[ref] = shape
        return ref

    def op(self, name, fn_bf, fn_jnp, inputs, shape):
        self.ops.append((name, fn_bf, fn_jnp, inputs))
        ref = ("op", len(self.ops) - 1)
        self.shapes[ref] = shape
        return ref

    def ids(self, inputs):
        return [i if kind == "leaf" else len(self.leaves) + i for kind, i in inputs]


@st.composite
def programs(draw):
    program = Program((draw(SIZES), draw(SIZES)))
    current = ("leaf", 0)
    for _ in range(draw(st.integers(2, 5))):
        rows, cols = program.shapes[current]
        kind = draw(st.sampled_from(["unary", "binary", "contraction", "structural", "selection"]))
        if kind == "unary":
            name = draw(st.sampled_from(sorted(UNARY)))
            current = program.op(name, *UNARY[name], [current], (rows, cols))
        elif kind == "binary":
            name = draw(st.sampled_from(sorted(BINARY)))
            partner = draw(st.sampled_from(["itself", "equal", "broadcast"]))
            if partner == "itself":
                other = current
            else:
                same = [r for r, s in program.shapes.items() if s == (rows, cols) and r != current]
                if partner == "equal" and same:
                    other = draw(st.sampled_from(same))
                else:
                    other = program.leaf(draw(st.sampled_from([(rows, cols), (1, cols), (rows, 1), (cols,)])))
            current = program.op(name, *BINARY[name], [current, other], (rows, cols))
        elif kind == "contraction":
            form = draw(st.sampled_from(["matmul", "einsum", "einsum_self"]))
            if form == "einsum_self":
                current = program.op(form, lambda a, b: F.einsum("ij,kj->ik", a, b),
                                     lambda a, b: jnp.einsum("ij,kj->ik", a, b), [current, current], (rows, rows))
            else:
                width = draw(SIZES)
                if form == "matmul":
                    weight = program.leaf((cols, width))
                    current = program.op(form, F.matmul, jnp.matmul, [current, weight], (rows, width))
                else:
                    weight = program.leaf((width, cols))
                    current = program.op(form, lambda a, b: F.einsum("ij,kj->ik", a, b),
                                         lambda a, b: jnp.einsum("ij,kj->ik", a, b), [current, weight], (rows, width))
        elif kind == "structural":
            form = draw(st.sampled_from(["transpose", "gather", "concat", "reshape", "sum"]))
            if form == "transpose":
                current = program.op(form, lambda a: a.T, lambda a: a.T, [current], (cols, rows))
            elif form == "gather":
                index = np.asarray(draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=4)))
                current = program.op(form, lambda a, i=index: a[i], lambda a, i=index: a[i], [current],
                                     (len(index), cols))
            elif form == "concat":
                current = program.op(form, lambda a, b: F.concat([a, b], axis=0),
                                     lambda a, b: jnp.concatenate([a, b], axis=0), [current, current], (2 * rows, cols))
            elif form == "reshape":
                current = program.op(form, lambda a, s=(cols, rows): F.reshape(a, s),
                                     lambda a, s=(cols, rows): jnp.reshape(a, s), [current], (cols, rows))
            else:
                current = program.op(form, lambda a: F.reduce_sum(a, axis=0, keepdims=True),
                                     lambda a: jnp.sum(a, axis=0, keepdims=True), [current], (1, cols))
        else:
            current = program.op("reduce_max", lambda a: F.reduce_max(a, axis=1, keepdims=True),
                                 lambda a: jnp.max(a, axis=1, keepdims=True), [current], (rows, 1))
    program.op("reduce_sum", lambda a: a.sum(), jnp.sum, [current], ())
    return program, draw(st.integers(0, 2 ** 16))


def _build(program, seed):
    leaves = [bf.Node(a) for a in random_inputs(program.leaves, "nonzero", seed)]
    made = []
    for _, fn_bf, _, inputs in program.ops:
        made.append(fn_bf(*[leaves[i] if kind == "leaf" else made[i] for kind, i in inputs]))
    tape_ops = [(fn_jnp, program.ids(inputs)) for _, _, fn_jnp, inputs in program.ops]
    return leaves, made[-1], tape_ops


@given(programs())
def test_every_semiring_of_a_random_graph_matches_the_path_oracle(drawn):
    program, seed = drawn
    leaves, root, tape_ops = _build(program, seed)
    check_graph(leaves, root, tape_ops, names=None)


@given(programs())
def test_grad_of_a_random_graph_is_jax_grad(drawn):
    program, seed = drawn
    leaves, root, _ = _build(program, seed)
    root.backprop(values_to_compute=("grad", "abs_val_grad"))

    def f(*arrays):
        values = list(arrays)
        for _, _, fn_jnp, inputs in program.ops:
            values.append(fn_jnp(*[values[i] for i in program.ids(inputs)]))
        return values[-1]

    expected = jax.grad(f, argnums=tuple(range(len(leaves))))(*[leaf.val for leaf in leaves])
    for k, (leaf, want) in enumerate(zip(leaves, expected)):
        assert_close(leaf.grad, want, scale=leaf.abs_val_grad, err_msg=f"grad of leaf {k}")
