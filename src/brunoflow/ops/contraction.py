"""Contractions: linear in each operand, Jacobian entries are the other operand's entries.

The VJP for one operand is the transpose of the forward with the other operand held fixed
(derived by jax.vjp); the engine passes φ(other operand), so |·| and -|x|log|x| come free.
More than two operands do not map (-|ab|log|ab| ≠ φ(a)φ(b)), so einsum with three or more
operands is a chain of two-operand primitives.
"""

import jax.numpy as jnp

from ..ad.node import Node
from ..ad.primitive import Linear, bind


def contraction(name, impl):
    prim = Linear(name, impl, contraction=True)

    def apply(*xs, **static):
        return bind(prim, *xs, **static)

    apply.__name__ = apply.__qualname__ = name
    apply.primitive = prim
    return apply


matmul = contraction("matmul", jnp.matmul)
_einsum = contraction("einsum", lambda *xs, subscripts: jnp.einsum(subscripts, *xs))


def einsum(subscripts, *operands):
    """numpy-style einsum with explicit output ("ij,jk->ik"); 3+ operands chain pairwise."""
    subscripts = subscripts.replace(" ", "")
    if "->" not in subscripts:
        raise ValueError(f"einsum: write the output explicitly, e.g. 'ij,jk->ik' (got {subscripts!r})")
    inputs, output = subscripts.split("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands but {len(operands)} were given")
    for term, x in zip(terms, operands):
        ndim = len(jnp.shape(x.val if isinstance(x, Node) else x))
        if "." not in term and len(term) != ndim:
            raise ValueError(f"einsum: term {term!r} has {len(term)} indices but its operand has shape "
                             f"{jnp.shape(x.val if isinstance(x, Node) else x)}")
    while len(terms) > 2:
        rest = "".join(terms[2:]) + output
        kept = "".join(dict.fromkeys(c for c in terms[0] + terms[1] if c in rest))
        first = _einsum(operands[0], operands[1], subscripts=f"{terms[0]},{terms[1]}->{kept}")
        terms, operands = [kept] + terms[2:], (first,) + tuple(operands[2:])
    return _einsum(*operands, subscripts=",".join(terms) + "->" + output)
