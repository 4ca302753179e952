"""What each consumer sent back to a node in the last backprop, before ⊕ merged it.

After `y.backprop()`, `node.abs_val_grad` is the ⊕ over node's consumers of what each pulled
back. Splitting it by consumer answers "how much of the gradient mass reaches this layer's
input through the query projection, the key, the value, or the skip connection". Each
consumer's share is recomputed from its stored state with the same cached backward kernel
the sweep used, so nothing here is per-element Python.
"""

from .primitive import backward_kernel
from .scaled import Scaled
from .semirings import Semiring, resolve


def consumer_flows(node, value="abs_val_grad", scaled=False):
    """[(consumer, state)] for every consumer of `node` in the last backprop.

    `value`: a `values_to_compute` name ("grad", "abs_val_grad", "entropy", "max_grad") or a
    Semiring; `state` is that semiring's values shaped like `node`, as the node's fields show
    them: (a,) for abs_val_grad, (a, h) for entropy (a plain array each, inf where it passes the
    dtype's range; `scaled=True` gives the `Scaled` sums instead, finite at any depth),
    (grad,) for grad, (hi, lo, hi_from, lo_from) for max_grad. Consumers must still hold their
    values: backprop without `save_leaf_grads_only`, or retain them.
    """
    semiring = value if isinstance(value, Semiring) else resolve((value,))[0]
    flows = []
    for index, consumer in enumerate(node.get_parents()):
        if consumer is None:
            raise ValueError(f"a consumer of {node!r} was freed: keep a reference to the output while reading flows")
        stored = [getattr(consumer, field) for field in semiring.fields]
        if any(v is None for v in stored):
            raise ValueError(f"{consumer!r} holds no {semiring!r} values: backprop with it, without "
                             "save_leaf_grads_only (or retain the consumers)")
        slots = tuple(k for k, inp in enumerate(consumer.inputs)
                      if inp is node and (consumer.op.differentiable is None or k in consumer.op.differentiable))
        xs = tuple(getattr(inp, "val", inp) for inp in consumer.inputs)
        kernel = backward_kernel(consumer.op, consumer.static, (semiring,), (slots,), ((True,),), xs)
        ((state,),) = kernel(xs, consumer.val, (tuple(semiring.from_fields(stored)),), (None,), (index,))
        flows.append((consumer, _readable(semiring, state, scaled)))
    return flows


def _readable(semiring, state, scaled):
    fields = semiring.to_fields(state)
    if not any(isinstance(v, Scaled) for v in fields):  # e.g. max_grad: its pointers travel in the state
        return state
    return tuple(v if scaled or not isinstance(v, Scaled) else v.value() for v in fields)
