"""Graph templates: what one traced forward made, so later calls rebuild it without running it.

A forward traced once (under `jax.eval_shape` or `jax.jit`) leaves its graph behind as Nodes
holding tracers. `record` walks it from the outputs (`ancestors`: Node needs no hook) and keeps,
for every node made during the forward, in creation order: its primitive, static parameters,
name, class, module path, shape and dtype, and where each input came from. `rebuild` makes
fresh Nodes from that with `Node.from_op`, linked to the caller's real parameters and input
Nodes, so every semiring walks them as it walks an eager forward's nodes; their values come from
one compiled program instead of one kernel per op.

Sources of an input (a tuple, kind first): NODE k (made node k), PARAM i (the i-th of the
network's parameters()), INPUT j (the j-th Node the caller passed), CONST value (a concrete
array or Python number, kept), TRACED t (an array computed during the forward, e.g. an attention
mask or a softmax shift: the program returns it with the outputs).
"""

import dataclasses

import jax
import jax.numpy as jnp

from . import node as node_module
from .backprop import ancestors
from .node import Node

NODE, PARAM, INPUT, CONST, TRACED = range(5)


class NotReplayable(Exception):
    """The forward made something a template cannot hold; the caller runs it eagerly instead."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    cls: type
    op: object          # the Primitive, or None for a leaf made inside the forward
    static: dict
    name: object
    module_path: str
    inputs: tuple       # sources, see the module docstring
    shape: tuple
    dtype: object
    value: object = None  # a made leaf's concrete value; None when the program computes it


@dataclasses.dataclass
class Template:
    recipes: list       # made nodes, in creation order
    consts: list        # (shape, dtype) of each TRACED constant
    skeleton: object    # the forward's return value, Nodes and arrays replaced by sources
    returned: tuple     # indices of made nodes the forward returns (their values are copied out)
    arrays: list        # (shape, dtype) of traced non-Node arrays the forward returns


def _aval(x):
    return tuple(jnp.shape(x)), jnp.result_type(x)


def _is_traced(x):
    return isinstance(x, jax.core.Tracer)


def mark():
    """The creation counter now: `record` keeps the nodes made after it (take it after making the
    stand-ins of the caller's Nodes)."""
    return next(node_module._creation_order)


def record(result, params, inputs, first_order, module_paths):
    """The template of one traced forward.

    result: what forward returned; params: the network's parameters (in parameters() order);
    inputs: the stand-in Nodes for the caller's Node arguments; first_order: the creation
    counter when the forward started (older nodes are parameters or inputs, or foreign);
    module_paths: {id(module): path} of the network's modules.
    """
    roots = []
    _walk_nodes(result, roots.append)
    seen = {}
    for root in roots:
        for node in ancestors(root):
            seen[id(node)] = node
    made = sorted((n for n in seen.values() if n._order >= first_order), key=lambda n: n._order)
    sources = {id(p): (PARAM, i) for i, p in enumerate(params)}
    sources.update({id(n): (INPUT, j) for j, n in enumerate(inputs)})
    sources.update({id(n): (NODE, k) for k, n in enumerate(made)})
    for node in seen.values():
        if id(node) not in sources:
            raise NotReplayable(f"the forward reads {node!r}, a Node that is neither a parameter, an argument nor "
                                "made by the forward")
    consts, const_of = [], {}

    def source(x):
        if isinstance(x, Node):
            return sources[id(x)]
        if _is_traced(x):
            if id(x) not in const_of:
                const_of[id(x)] = (TRACED, len(consts))
                consts.append((x, _aval(x)))
            return const_of[id(x)]
        return (CONST, x)

    recipes = []
    for node in made:
        if any(_is_traced(leaf) for leaf in jax.tree_util.tree_leaves(node.static)):
            raise NotReplayable(f"{node.op.name} keeps a traced value in its static parameters")
        path = module_paths.get(id(node.module)) if node.module is not None else ""
        if path is None or path != node.module_path:
            raise NotReplayable(f"{node!r} was made by a module outside the network's tree")
        value = None if node.op is not None or _is_traced(node.val) else node.val
        recipes.append(Recipe(type(node), node.op, node.static, node.name, node.module_path,
                              tuple(source(x) for x in node.inputs), *_aval(node.val), value))
    arrays = []

    def out_source(x):
        if isinstance(x, Node):
            return sources[id(x)]
        if _is_traced(x):
            arrays.append(_aval(x))
            return (TRACED, len(arrays) - 1)
        return (CONST, x)

    skeleton = _map(result, out_source)
    returned = tuple(sorted({sources[id(r)][1] for r in roots if sources[id(r)][0] == NODE}))
    template = Template(recipes, [a for _, a in consts], skeleton, returned, arrays)
    return template, [c for c, _ in consts], made


def returned_arrays(result):
    """The traced non-Node arrays in a forward's return value, in the order `record` numbers them."""
    found = []
    _map(result, lambda x: found.append(x) if not isinstance(x, Node) and _is_traced(x) else None)
    return found


def rebuild(template, params, inputs, modules, consts, values, arrays, deferred):
    """Fresh Nodes for one call; returns what the forward would have returned.

    params/inputs: the real Parameters and the caller's Nodes; modules: {path: module};
    consts: the TRACED constants' arrays; values: {made index: array} for the returned nodes;
    arrays: the returned non-Node arrays; deferred(k, recipe) -> the value of any other made node.
    Returns (the forward's return value, the made Nodes).
    """
    made = []
    table = (made, params, inputs, None, consts)
    for k, recipe in enumerate(template.recipes):
        ins = tuple(s[1] if s[0] == CONST else table[s[0]][s[1]] for s in recipe.inputs)
        if recipe.value is not None:
            val = recipe.value
        elif k in values:
            val = values[k]
        else:
            val = deferred(k, recipe)
        node = recipe.cls.from_op(recipe.op, ins, recipe.static, val)
        node.name = recipe.name
        node.module, node.module_path = modules[recipe.module_path], recipe.module_path
        made.append(node)
    table = (made, params, inputs, None, arrays)
    return _unmap(template.skeleton, lambda s: s[1] if s[0] == CONST else table[s[0]][s[1]]), made


def match(exact, bucket):
    """How to read the graph `exact` off values computed for `bucket`, the same forward on longer
    inputs: None unless both made the same nodes from the same sources (then node k of one is
    node k of the other, cut to size). Returns (sources in bucket of exact's TRACED constants,
    indices in bucket's returned arrays of exact's). A constant may be concrete at one length
    and traced at the other (a default the caller left out, an argument the padding filled in)."""
    if len(exact.recipes) != len(bucket.recipes) or exact.returned != bucket.returned:
        return None
    consts = [None] * len(exact.consts)
    arrays = [None] * len(exact.arrays)

    def pair(s, t, found):
        if s[0] in (NODE, PARAM, INPUT) or t[0] in (NODE, PARAM, INPUT):
            return s == t
        if s[0] == CONST:
            return True  # used as it is
        if found[s[1]] is None:
            found[s[1]] = t
        return found[s[1]][0] == t[0] and found[s[1]][1] is t[1] if t[0] == CONST else found[s[1]] == t

    for x, y in zip(exact.recipes, bucket.recipes):
        if (x.cls, x.op, x.module_path, x.name, len(x.inputs), len(x.shape)) != (
                y.cls, y.op, y.module_path, y.name, len(y.inputs), len(y.shape)):
            return None
        if not all(pair(s, t, consts) for s, t in zip(x.inputs, y.inputs)):
            return None
    if not _pair_skeletons(exact.skeleton, bucket.skeleton, lambda s, t: pair(s, t, arrays)):
        return None
    if any(t is None for t in consts) or any(t is None or t[0] != TRACED for t in arrays):
        return None
    return consts, [t[1] for t in arrays]


# -- return values: Nodes and arrays inside tuples, lists, dicts and dataclasses (ModelOutput) --

def _map(x, leaf):
    if isinstance(x, Node) or _is_traced(x):
        return ("leaf", leaf(x))
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return ("dataclass", type(x), tuple((f.name, _map(getattr(x, f.name), leaf))
                                            for f in dataclasses.fields(x) if f.init))
    if isinstance(x, dict):
        return ("dict", type(x), tuple((k, _map(v, leaf)) for k, v in x.items()))
    if isinstance(x, (tuple, list)):
        return ("seq", type(x), tuple(_map(v, leaf) for v in x), hasattr(x, "_fields"))
    return ("leaf", leaf(x))


def _unmap(skeleton, leaf):
    kind = skeleton[0]
    if kind == "leaf":
        return leaf(skeleton[1])
    if kind == "dataclass":
        return skeleton[1](**{name: _unmap(s, leaf) for name, s in skeleton[2]})
    if kind == "dict":
        return skeleton[1]((k, _unmap(s, leaf)) for k, s in skeleton[2])
    items = [_unmap(s, leaf) for s in skeleton[2]]
    return skeleton[1](*items) if skeleton[3] else skeleton[1](items)


def _walk_nodes(x, visit):
    _map(x, lambda v: visit(v) if isinstance(v, Node) else None)


def _pair_skeletons(a, b, pair):
    if a[0] != b[0]:
        return False
    if a[0] == "leaf":
        return pair(a[1], b[1])
    if a[1] is not b[1] or len(a[2]) != len(b[2]):
        return False
    if a[0] == "seq":
        return all(_pair_skeletons(s, t, pair) for s, t in zip(a[2], b[2]))
    return all(k == j and _pair_skeletons(s, t, pair) for (k, s), (j, t) in zip(a[2], b[2]))
