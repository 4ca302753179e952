"""Contractions: linear in each operand, Jacobian entries are the other operand's entries.

The VJP for one operand is the transpose of the forward with the other operand held fixed
(derived by jax.vjp); the engine passes φ(other operand), so |·| and -|x|log|x| come free.
Two things do not map, so einsum rewrites them first: a product of three or more operands
(-|ab|log|ab| ≠ φ(a)φ(b)) becomes a chain of two-operand primitives, and a letter summed
inside one operand only (`ij,k->i`: the entry Σ_k b_k, and φ(Σ b) ≠ Σ φ(b)) is summed out of
that operand first by a one-operand einsum, whose entries are all 1 (a structural op).
"""

import jax.numpy as jnp

from ..ad.node import value_of
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


def _unary_relation(static):
    """A one-operand einsum copies (permutes, takes a diagonal) or spreads (sums), never both."""
    term, output = static["subscripts"].split("->")
    summed = set(term) - set(output)
    if not summed:
        return "copy"
    if len(set(term)) == len(term):
        return "spread"
    raise NotImplementedError(f"max_path through einsum {static['subscripts']!r}: a diagonal that is also "
                              "summed; take the diagonal and the sum as two einsums")


# One operand (transpose, diagonal, sums): every Jacobian entry is 1, like reshape's.
_einsum_unary = Linear("einsum", lambda x, *, subscripts: jnp.einsum(subscripts, x), relation=_unary_relation)


def _letters_kept(term, needed):
    """`term` without the letters outside `needed` (and without repeats): what survives a pre-sum."""
    return "".join(dict.fromkeys(c for c in term if c in needed))


def _spell_out_ellipsis(terms, output, shapes):
    """Replace `...` by letters, numpy's way: its axes align from the right across operands,
    and an operand's size-1 axis broadcasts against a longer one. The engine then sees only
    letters, so a pre-sum and the max-times transpose treat those axes like any other: a
    size-1 axis that broadcasts gets a letter of its own (summed out first, entries 1)."""
    if not any("..." in t for t in terms) and "..." not in output:
        return terms, output
    if "..." in output and not any("..." in t for t in terms):
        raise ValueError("einsum: '...' in the output but in no operand")
    free = iter(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                if c not in "".join(terms) + output)
    ranks = [len(shape) - len(t.replace("...", "")) if "..." in t else 0 for t, shape in zip(terms, shapes)]
    n = max(ranks)
    shared = [next(free) for _ in range(n)]
    sizes = [1] * n
    for t, shape, r in zip(terms, shapes, ranks):
        if "..." in t:
            start = t.index("...")
            for i, size in enumerate(shape[start:start + r]):
                sizes[n - r + i] = max(sizes[n - r + i], size)
    spelled = []
    for t, shape, r in zip(terms, shapes, ranks):
        if "..." not in t:
            spelled.append(t)
            continue
        start = t.index("...")
        own = "".join(shared[n - r + i] if size == sizes[n - r + i] else next(free)
                      for i, size in enumerate(shape[start:start + r]))
        spelled.append(t.replace("...", own))
    return spelled, output.replace("...", "".join(shared))


def einsum(subscripts, *operands):
    """numpy-style einsum with explicit output ("ij,jk->ik"); 3+ operands chain pairwise."""
    subscripts = subscripts.replace(" ", "")
    if "->" not in subscripts:
        raise ValueError(f"einsum: write the output explicitly, e.g. 'ij,jk->ik' (got {subscripts!r})")
    inputs, output = subscripts.split("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands but {len(operands)} were given")
    shapes = [tuple(jnp.shape(value_of(x))) for x in operands]
    for term, shape in zip(terms, shapes):
        letters = len(term.replace("...", ""))
        fits = letters <= len(shape) if "..." in term else letters == len(shape)
        if not fits:
            raise ValueError(f"einsum: term {term!r} has {letters} indices but its operand has shape {shape}")
    terms, output = _spell_out_ellipsis(terms, output, shapes)
    subscripts = ",".join(terms) + "->" + output
    if len(terms) == 1:
        return bind(_einsum_unary, operands[0], subscripts=subscripts)
    terms, operands = list(terms), list(operands)
    for k, term in enumerate(terms):
        needed = set("".join(terms[:k] + terms[k + 1:]) + output)
        kept = _letters_kept(term, needed)
        if set(term) - needed:
            operands[k] = bind(_einsum_unary, operands[k], subscripts=f"{term}->{kept}")
            terms[k] = kept
    while len(terms) > 2:
        kept = _letters_kept(terms[0] + terms[1], set("".join(terms[2:]) + output))
        first = _einsum(operands[0], operands[1], subscripts=f"{terms[0]},{terms[1]}->{kept}")
        terms, operands = [kept] + terms[2:], [first] + operands[2:]
    return _einsum(*operands, subscripts=",".join(terms) + "->" + output)
