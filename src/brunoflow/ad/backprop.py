"""One iterative reverse-topological sweep for any set of semirings.

Creation order is a topological order (inputs exist before the ops that use them), so
the sweep is: collect the output's ancestors, sort by creation, walk backwards. Each op
node runs ONE cached jitted kernel that pulls every semiring's state to each of its
inputs and ⊕-accumulates it there. Values stay on the device; nothing here reads them.
"""

import concurrent.futures
import os
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from . import jax_settings, profile
from .kernel_store import StoredKernel
from .node import Node, register_semiring_fields, value_of
from .primitive import backward_kernel
from .primitive import stats as kernel_stats
from .semirings import BY_NAME, resolve


def ancestors(root):
    """Every Node reachable from root through inputs (root included), without recursion."""
    seen = {id(root): root}
    stack = [root]
    while stack:
        node = stack.pop()
        for inp in node.inputs:
            if isinstance(inp, Node) and id(inp) not in seen:
                seen[id(inp)] = inp
                stack.append(inp)
    return list(seen.values())


def _check_float(nodes):
    for node in nodes:
        if not jnp.issubdtype(node.dtype, jnp.inexact):
            raise TypeError(f"backprop needs floating-point nodes, but {node!r} has dtype {node.dtype}; "
                            "cast it (bf.func.astype / Node(val.astype(float))) or pass it as a constant array")


def _retention(retain):
    if retain is None:
        return lambda node: False
    if callable(retain):
        return retain
    kept = {id(n) for n in retain}
    return lambda node: id(node) in kept


def _stored_state(node, semiring):
    values = [getattr(node, f, None) for f in semiring.fields]
    return None if any(v is None for v in values) else semiring.from_fields(values)


def _store(node, semirings, states, stale):
    for semiring, state in zip(semirings, states):
        for field, value in zip(semiring.fields, semiring.to_fields(state)):
            setattr(node, field, value)
    for field in stale:
        setattr(node, field, None)


def _stale_fields(semirings):
    """Fields that another semiring stores beside ones this sweep writes (entropy_wrt_output
    beside abs_val_grad, after an AbsGrad-only sweep): they would describe other backprops
    than their partners, so compute_entropy() would mix the two. The sweep clears them."""
    written = {f for s in semirings for f in s.fields}
    stale = set()
    for other in BY_NAME.values():
        if written & set(other.fields):
            stale |= set(other.fields) - written
    return tuple(sorted(stale))


def _initial_states(node, semirings):
    """Per semiring, what earlier backprops left on a leaf (so this sweep ⊕-accumulates into
    it, like torch's .grad), or None. Non-leaf values are recomputed by every sweep."""
    if node.op is not None:
        return tuple(None for _ in semirings)
    return tuple(_stored_state(node, s) for s in semirings)


def _check_accumulable(nodes, semirings):
    """A leaf whose stored fields cover part of a semiring's state (abs_val_grad from an
    AbsGrad sweep, no entropy yet) cannot be ⊕-accumulated: the missing part's history is
    lost. Raised before any kernel runs, so nothing is half-written."""
    for node in nodes:
        if node.op is not None:
            continue
        for semiring in semirings:
            stored = [f for f in semiring.fields if getattr(node, f, None) is not None]
            if stored and len(stored) < len(semiring.fields):
                missing = [f for f in semiring.fields if f not in stored]
                raise ValueError(f"{node!r} holds {stored} from an earlier backprop but not {missing}, so "
                                 f"{semiring!r} cannot accumulate onto it; call zero_gradients() first "
                                 "(or ask for the same values in every backprop)")


def backprop(root, values_to_compute, save_leaf_grads_only=False, retain=None, inputs=None, seed=None):
    """See Node.backprop. `seed`: the root's state per semiring of `values_to_compute` (as
    `states_of` reads them off a node), instead of each semiring's own seed: the sweep then
    continues one that reached `root` from a larger graph, e.g. one layer of a network at a
    time, whose output is the only link to the layers above it."""
    semirings = resolve(values_to_compute)
    for semiring in semirings:
        register_semiring_fields(semiring.fields)
    order = sorted(ancestors(root), key=lambda n: n._order, reverse=True)
    _check_float(order)
    keep = _retention(retain)
    wanted = None
    if inputs is not None:
        wanted = _on_paths_from(inputs, order)
        if id(root) not in wanted:
            raise ValueError("backprop(inputs=...): none of the given inputs is an ancestor of this node")
        order = [n for n in order if id(n) in wanted]
        given = {id(n) for n in inputs}
        keep = (lambda kept: lambda node: id(node) in given or kept(node))(keep)
    track_parents = any(s.tracks_parents for s in semirings)

    if track_parents:
        _register_consumers(order, wanted)
    _check_accumulable(order, semirings)
    stale = _stale_fields(semirings)
    steps = _plan(order, root, semirings, wanted, track_parents)
    states = {id(root): _seed(root, semirings) if seed is None else _given_seed(root, semirings, seed)}
    for node, xs, distinct, consumer, kernel, compiling in steps:
        up = states[id(node)]
        if kernel is not None:
            if compiling is not None:
                compiling.result()
            acc = [states.get(id(u)) or _initial_states(u, semirings) for u in distinct]
            args = (xs, node.val, up, tuple(acc), consumer)
            new = kernel(*args) if profile.recording is None else profile.recording.time(node.op.name, xs, kernel, args)
            for u, state in zip(distinct, new):
                states[id(u)] = state
        if not save_leaf_grads_only or keep(node):
            _store(node, semirings, up, stale)
        del states[id(node)]  # consumed: every consumer of node came before it in the sweep
    for node in order:
        if node.op is None and id(node) in states:
            _store(node, semirings, states.pop(id(node)), stale)


def _plan(order, root, semirings, wanted, track_parents):
    """Per op node of the sweep: (node, its input arrays, distinct inputs, consumer slots, kernel or
    None, Future or None). Which inputs already hold a state at each step is fixed by the order alone, so every
    kernel is known before the first one runs: kernels not compiled yet start compiling on
    other cores (`_warm`) while the sweep runs the ones before them."""
    steps, has_state, missing = [], {id(root)}, []
    for node in order:
        if node.op is None:
            continue
        distinct, groups = _distinct_inputs(node.inputs, node.op.differentiable, wanted)
        if not distinct:
            steps.append((node, (), distinct, (), None, None))
            continue
        first = tuple((False,) * len(semirings) if id(u) in has_state
                      else tuple(s is None for s in _initial_states(u, semirings)) for u in distinct)
        has_state.update(id(u) for u in distinct)
        consumer = tuple(_consumer_index(u, node) if track_parents else 0 for u in distinct)
        xs = tuple(value_of(inp) for inp in node.inputs)
        misses = kernel_stats.misses
        kernel = backward_kernel(node.op, node.static, semirings, groups, first, xs)
        if kernel_stats.misses > misses:
            missing.append((len(steps), first))
        steps.append((node, xs, distinct, consumer, kernel, None))
    if len(missing) > 1 and _COMPILERS is not None and not isinstance(root.val, jax.core.Tracer):
        settings = jax_settings.current()  # `with jax.enable_x64()` and the like hold on this thread only
        for k, first in missing:
            node, xs, distinct, consumer, kernel, _ = steps[k]
            steps[k] = (node, xs, distinct, consumer, kernel,
                        _COMPILERS.submit(_warm, kernel, node, xs, distinct, first, consumer, semirings, settings))
    return steps


# Compiling is most of a new shape's first sweep, and XLA releases the GIL while it compiles.
_COMPILERS = (concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count(), thread_name_prefix="bf-kernels")
              if (os.cpu_count() or 1) > 1 else None)


def _warm(kernel, node, xs, distinct, first, consumer, semirings, settings):
    """Compile `kernel` by running it once on the node's real inputs and stand-in states (zeros
    shaped as the seeds: the sweep's structure, shapes and dtypes; None where the sweep has none
    yet), under the sweep's JAX settings. Any error is left for the sweep's own call to raise."""
    try:
        with jax_settings.applied(settings):
            if isinstance(kernel, StoredKernel) and kernel.load():  # read from disk: nothing to compile
                return
            stand_in = tuple(_zeros_like_seed(s, node.val) for s in semirings)
            acc = tuple(tuple(None if none else _zeros_like_seed(s, u.val) for s, none in zip(semirings, nones))
                        for u, nones in zip(distinct, first))
            jax.block_until_ready(kernel(xs, node.val, stand_in, acc, consumer))
    except Exception:
        pass


def _zeros_like_seed(semiring, value):
    """Zeros shaped as the semiring's seed, put on the device from the host: made eagerly, the
    seed itself would compile a fill kernel for every new shape (and a kernel called on host
    arrays would compile a variant of its own)."""
    return jax.tree.map(lambda a: jax.device_put(np.zeros(a.shape, a.dtype)), _seed_shapes(semiring, value))


def _seed_shapes(semiring, value):
    """The semiring's seed at `value` as shapes and dtypes, nothing computed."""
    return jax.eval_shape(lambda v: tuple(semiring.seed(v)), value)


def _seed(root, semirings):
    """The output's own state; a leaf output (y = x, then y.backprop()) accumulates onto what
    earlier backprops left on it, like any leaf, as torch's x.backward() does."""
    seeds = tuple(tuple(s.seed(root.val)) for s in semirings)
    return tuple(seed if old is None else tuple(s.plus(old, seed))
                 for s, seed, old in zip(semirings, seeds, _initial_states(root, semirings)))


def _given_seed(root, semirings, seed):
    seed = tuple(tuple(state) for state in seed)
    if len(seed) != len(semirings):
        raise ValueError(f"backprop(seed=...): {len(seed)} states for {len(semirings)} semirings {semirings}")
    for semiring, state in zip(semirings, seed):
        expected = _seed_shapes(semiring, root.val)
        if jax.tree.structure(state) != jax.tree.structure(expected) or any(
                jnp.shape(a) != b.shape for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(expected))):
            got = jax.tree.map(jnp.shape, state)
            raise ValueError(f"backprop(seed=...): the state given for {semiring!r} is not shaped as its seed at "
                             f"{root!r}: got {got}, expected {jax.tree.map(lambda a: a.shape, expected)}")
    return seed


def states_of(node, values_to_compute):
    """The states the last backprop left on `node`, one per semiring of `values_to_compute`
    (None for a semiring it holds none of): what `backprop(seed=...)` takes."""
    return tuple(_stored_state(node, s) for s in resolve(values_to_compute))


def _on_paths_from(inputs, order):
    """ids of the nodes on some path from one of `inputs` to the root (order: newest first).

    As torch's backward(inputs=...): everything else — e.g. every weight, when the inputs are
    the embeddings — is treated as a constant, and no kernel runs for it."""
    wanted = {id(n) for n in inputs}
    for node in reversed(order):  # creation order: a node's inputs are decided before it
        if id(node) not in wanted and node.op is not None and any(
                id(u) in wanted for u in _distinct_inputs(node.inputs, node.op.differentiable)[0]):
            wanted.add(id(node))
    return wanted


def _distinct_inputs(inputs, differentiable, wanted=None):
    """The distinct differentiable Node inputs (among `wanted` ids, if given), and which slots each one fills."""
    slots = {}
    nodes = {}
    for k, inp in enumerate(inputs):
        if (isinstance(inp, Node) and (differentiable is None or k in differentiable)
                and (wanted is None or id(inp) in wanted)):
            slots.setdefault(id(inp), []).append(k)
            nodes[id(inp)] = inp
    return list(nodes.values()), tuple(tuple(s) for s in slots.values())


def _register_consumers(order, wanted=None):
    """Give consumers their get_parents() positions in creation order (order is newest first),
    so a max-product tie, which goes to the lower position, goes to the earliest-made consumer."""
    for node in reversed(order):
        if node.op is not None:
            for u in _distinct_inputs(node.inputs, node.op.differentiable, wanted)[0]:
                _consumer_index(u, node)


def _consumer_index(node, consumer):
    """Position of consumer in node.get_parents(), appending it the first time."""
    for i, ref in enumerate(node._consumers):
        if ref() is consumer:
            return i
    node._consumers.append(weakref.ref(consumer))
    return len(node._consumers) - 1
