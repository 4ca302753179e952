"""Compiled forwards: a root call of a Network as ONE XLA program whose result is still a graph.

An eager forward runs one cached kernel per op (hundreds of Python dispatches, and a compile of
each at every new input shape). Here a root call instead

1. records, once per (architecture, argument shapes and static values), the graph the forward
   makes (`brunoflow.ad.replay`: a `jax.eval_shape` of the forward, no compile), with the
   weights as arguments (`Network.using_parameters`), so no checkpoint is baked in;
2. runs one jitted program that returns the forward's outputs and the arrays it made on the way
   (masks, softmax shifts: the constants its ops read), and rebuilds fresh Nodes from the
   template; every other node holds a `Deferred` value: the first read of one (a backprop, a
   hidden state's value) runs a second program that returns them all, once for that call.

A caller may pass the same call padded to a longer length (`padded`, `lengths=(n, n_padded)`, or
`(n, n_padded, rows)` when a flattened (rows, sequence) axis may lead some values):
the programs then run at the padded shapes, so one compile serves every length up to it, while
the graph and its values are those of the call as given: node k of the padded forward is node k
of the caller's, cut to the first n entries of every axis that grew. That is only right for a
forward whose first n positions ignore the rest (attention masks, labels that skip padding): the
caller vouches for it. The graph itself is recorded at the caller's shapes (a trace, no compile),
so it is exactly the eager one: same ops, static parameters, shapes and paths for every semiring.

Falls back to the eager forward (returns EAGER) inside a jax transformation or with traced
values, with dropout active (its keys would be drawn once, at trace time), when the forward made
something a template cannot hold, or when the trace fails (the eager run then raises the error).
"""

import concurrent.futures
import weakref

import jax
import numpy as np

from ..ad import jax_settings
from ..ad.node import Deferred, Node
from ..ad.replay import TRACED, NotReplayable, mark, rebuild, record, returned_arrays
from . import cuts

EAGER = object()  # returned when a call must run eagerly


class Stats:
    """templates: forwards traced to record their graph (no compile); programs: jitted programs
    traced, i.e. XLA compiles (some served by the persistent cache); calls: compiled calls,
    padded: those of them that ran padded; eager: fallbacks."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.templates = self.programs = self.calls = self.padded = self.eager = 0

    def __repr__(self):
        return (f"Stats(templates={self.templates}, programs={self.programs}, calls={self.calls}, "
                f"padded={self.padded}, eager={self.eager})")


stats = Stats()
_shared = {}  # network.compile_key() -> {signature: _Entry}; keys that are None cache on the instance


def clear():
    _shared.clear()
    stats.reset()


class _Eager(Exception):
    pass


class _Entry:
    """One recorded signature: its template (None: not replayable) and its programs."""

    def __init__(self, signature, template, function):
        self.treedef, self.kinds = signature
        self.template, self.function = template, function
        self.programs = {}
        self.executables = {}  # (program, argument signature) -> Future of its executable
        self.matches = {}
        self.current = None  # (network, params) of the call in flight: whose forward a trace runs


def forward(network, args, kwargs, padded=None, lengths=None, function=None, values_now=False, prepare=False):
    """network.forward(*args, **kwargs) as a root call through one compiled program, or EAGER.

    padded: (args, kwargs) of the same call on inputs padded to a longer length, lengths: (the
    caller's length, the padded one[, rows]); see the module docstring for when that is right.
    function: run `function(network, *args, **kwargs)` as the root call instead of the forward
    (a module-level function: it is part of the cache key), e.g. a part of a model's forward.
    values_now: one program returns every node's value with the outputs, for a caller that
    reads them all (a backprop follows), instead of a second program on the first read.
    prepare: run nothing; trace and lower the program this call would run (here: the trace swaps
    the network's weights) and compile it on a thread, for a caller with other Python work to do
    meanwhile (tracing another program); the call itself then waits for it. Returns None, and
    counts nothing: a forward that cannot compile is counted by the call that runs it eagerly.
    """
    found = _forward(network, args, kwargs, padded, lengths, function, values_now, prepare)
    if prepare:
        return None
    return eager() if found is EAGER else found


def _forward(network, args, kwargs, padded, lengths, function, values_now, prepare):
    from .dropout import Dropout  # here: dropout.py imports module.py, which imports this file

    named = list(network.named_modules())
    if _inside_a_transformation() or any(isinstance(m, Dropout) and m.training and m.p > 0 for _, m in named):
        return EAGER
    params = list(network.parameters())
    param_vals = [p.val for p in params]
    if any(isinstance(v, jax.core.Tracer) for v in param_vals):
        return EAGER
    try:
        exact_call = _flatten(args, kwargs)
        padded_call = _flatten(*padded) if padded is not None else None
    except _Eager:
        return EAGER
    network_sig = (tuple((path, type(m), m.training) for path, m in named),
                   tuple((tuple(np.shape(v)), np.dtype(v.dtype)) for v in param_vals),
                   bool(jax.config.jax_enable_x64))  # constants' dtypes follow it
    with network.as_root():  # paths first: the trace and the rebuilt nodes read them
        for _ in range(2):  # a forward that sets its config on first use is recorded again
            key = network.compile_key()
            cache = (_shared.setdefault((key, network_sig, function), {}) if key is not None
                     else network.__dict__.setdefault("_compiled_forwards", {}).setdefault((network_sig, function), {}))
            context = (network, params, named, key, cache, function)
            exact = _entry(context, exact_call)
            if exact is not _KEY_CHANGED:
                break
        if exact is None or exact is _KEY_CHANGED or exact.template is None:
            return EAGER
        run, run_call, plan = exact, exact_call, None
        if padded_call is not None and padded_call[:2] != exact_call[:2]:
            bucket = _entry(context, padded_call)
            if bucket not in (None, _KEY_CHANGED) and bucket.template is not None:
                plan = cuts.plan(exact, bucket, padded_call[:2], lengths)
                if plan is not None:
                    run, run_call = bucket, padded_call
        if prepare:
            program_args = ([p.val for p in params], run_call[2], [n.val for n in run_call[3]])
            _executable(run, "both" if values_now else "out", network, params, program_args, background=True)
            return None
        stats.calls += 1
        if plan is not None:
            stats.padded += 1
        return _replay(network, params, named, exact, exact_call, run, run_call, plan, values_now)


def _replay(network, params, named, exact, exact_call, run, run_call, plan, values_now):
    program_args = ([p.val for p in params], run_call[2], [n.val for n in run_call[3]])
    template = exact.template
    everything = None
    if values_now:
        everything, consts, arrays = _call(run, "both", network, params, program_args)
        returned = [everything[k] for k in run.template.returned]
    else:
        returned, consts, arrays = _call(run, "out", network, params, program_args)
    node_cuts = None
    if plan is not None:  # read the caller's constants and outputs off the padded run
        const_sources, array_sources, node_cuts, const_cuts, array_cuts = plan
        consts = [cuts.cut_value(consts[s[1]] if s[0] == TRACED else s[1], cut)
                  for s, cut in zip(const_sources, const_cuts)]
        arrays = [cuts.cut_value(arrays[i], cut) for i, cut in zip(array_sources, array_cuts)]
        returned = [cuts.cut_value(v, node_cuts[k]) for k, v in zip(template.returned, returned)]
    values = dict(zip(template.returned, returned))
    if everything is not None:
        result, _ = rebuild(template, params, exact_call[3], dict(named), consts, values, arrays,
                            lambda k, recipe: everything[k] if node_cuts is None
                            else cuts.cut_value(everything[k], node_cuts[k]))
        return result
    later = _Later(run, program_args, node_cuts, network, params)
    result, made = rebuild(template, params, exact_call[3], dict(named), consts, values, arrays,
                           lambda k, recipe: Deferred(recipe.shape, recipe.dtype, later.resolve))
    later.nodes = [weakref.ref(n) for n in made]
    return result


class _Later:
    """The values no caller has read yet, of one call: all made by one run of the "all" program."""

    def __init__(self, entry, program_args, node_cuts, network, params):
        self.entry, self.program_args, self.node_cuts, self.nodes = entry, program_args, node_cuts, []
        self.network, self.params = network, params

    def resolve(self):
        values = _call(self.entry, "all", self.network, self.params, self.program_args)
        for k, (ref, value) in enumerate(zip(self.nodes, values)):
            node = ref()
            if node is not None and node._val.__class__ is Deferred:
                node._val = value if self.node_cuts is None else cuts.cut_value(value, self.node_cuts[k])
        self.program_args = self.nodes = self.network = self.params = None


def _call(entry, which, network, params, program_args):
    return _executable(entry, which, network, params, program_args).result()(*program_args)


# prepared programs compile here, one at a time, while their caller's thread goes on
_compiler = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bf-forward")


def _executable(entry, which, network, params, program_args, background=False):
    """A Future of the executable of an entry's program for these arguments, traced and lowered
    on this thread (the trace runs the network's forward) on first use and compiled here, or on
    `_compiler` if `background`."""
    settings = jax_settings.current()  # per thread: the compile runs under the caller's
    key = (which, jax.tree.structure(program_args),
           tuple((np.shape(a), np.dtype(a.dtype), bool(getattr(a, "weak_type", False)))
                 for a in jax.tree.leaves(program_args)), settings)
    pending = entry.executables.get(key)
    if pending is not None and pending.done() and pending.exception() is not None:
        pending = None  # a failed compile: the next call tries again
    if pending is None:
        entry.current = (network, params)  # the trace runs the forward of this network
        try:
            lowered = _program(entry, which).lower(*program_args)
        finally:
            entry.current = None

        def compile_():
            with jax_settings.applied(settings):
                return lowered.compile()

        if background:
            pending = _compiler.submit(compile_)
        else:
            pending = concurrent.futures.Future()
            pending.set_result(compile_())
        entry.executables[key] = pending
    return pending


_KEY_CHANGED = object()


def _entry(context, call):
    """The cached entry of a signature, recording its template on first use; None when the trace
    failed, _KEY_CHANGED when it changed the network's compile key (a forward that sets config
    on first use: what it recorded may hold for the old key only)."""
    network, params, named, key, cache, function = context
    signature = call[:2]
    entry = cache.get(signature)
    if entry is not None:
        return entry
    try:
        template = _record(network, params, named, call, function)
    except (NotReplayable, jax.errors.JAXTypeError, jax.errors.JAXIndexError):
        template = None  # the trace cannot run this forward: eager from now on
    except Exception:  # noqa: BLE001 (the eager run raises it again, for the caller)
        return None
    if network.compile_key() != key:
        return _KEY_CHANGED
    cache[signature] = entry = _Entry(signature, template, function)
    return entry


def _record(network, params, named, call, function):
    treedef, kinds, arrays, nodes = call
    module_paths = {id(m): path for path, m in named}
    found = {}

    def trace(param_vals, array_vals, node_vals):
        result, stand_ins, first = _run(network, function, treedef, kinds, param_vals, array_vals, node_vals)
        found["template"] = record(result, params, stand_ins, first, module_paths)[0]
        return ()

    stats.templates += 1
    jax.eval_shape(trace, *(_abstract(xs) for xs in ([p.val for p in params], arrays, [n.val for n in nodes])))
    return found["template"]


def _program(entry, which):
    """The jitted forward of an entry: "out" returns (returned nodes' values, traced constants,
    returned arrays); "all" returns every made node's value, in template order; "both" returns
    (every made node's value, traced constants, returned arrays)."""
    program = entry.programs.get(which)
    if program is not None:
        return program

    def body(param_vals, array_vals, node_vals):
        stats.programs += 1
        network, params = entry.current
        result, stand_ins, first = _run(network, entry.function, entry.treedef, entry.kinds, param_vals, array_vals,
                                        node_vals)
        template, consts, made = record(result, params, stand_ins, first,
                                        {id(m): path for path, m in network.named_modules()})
        if len(template.recipes) != len(entry.template.recipes):
            raise NotReplayable("the forward made a different graph when traced again")
        if which == "out":
            return [made[k].val for k in template.returned], consts, returned_arrays(result)
        if which == "both":
            return [n.val for n in made], consts, returned_arrays(result)
        return [n.val for n in made]

    body.__name__ = body.__qualname__ = f"compiled_forward_{which}"
    entry.programs[which] = program = jax.jit(body)
    return program


def _run(network, function, treedef, kinds, param_vals, array_vals, node_vals):
    """The forward on traced values: (its result, the stand-ins of the caller's Nodes, the
    creation counter before it ran)."""
    stand_ins = [Node(v) for v in node_vals]
    arrays, nodes = iter(array_vals), iter(stand_ins)
    leaves = [next(nodes) if k[0] == "node" else next(arrays) if k[0] == "array" else k[2] for k in kinds]
    args, kwargs = jax.tree_util.tree_unflatten(treedef, leaves)
    first = mark()
    with network.using_parameters(param_vals), network.as_root():
        call = network.forward if function is None else (lambda *a, **k: function(network, *a, **k))
        return call(*args, **kwargs), stand_ins, first


def _flatten(args, kwargs):
    """(treedef, kinds, arrays, Nodes) of a call: arrays and Nodes are traced arguments, anything
    else is static and part of the signature (so it must be hashable)."""
    leaves, treedef = jax.tree_util.tree_flatten((args, kwargs), is_leaf=lambda x: isinstance(x, Node))
    kinds, arrays, nodes = [], [], []
    for leaf in leaves:
        if isinstance(leaf, Node):
            if isinstance(leaf._val, jax.core.Tracer):
                raise _Eager
            kinds.append(("node", leaf.shape, np.dtype(leaf.dtype)))
            nodes.append(leaf)
        elif hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            if isinstance(leaf, jax.core.Tracer):
                raise _Eager
            if type(leaf).__module__.startswith("torch"):
                leaf = leaf.detach().cpu().numpy()
            dtype = jax.dtypes.canonicalize_dtype(leaf.dtype)
            kinds.append(("array", tuple(leaf.shape), np.dtype(dtype), bool(getattr(leaf, "weak_type", False))))
            arrays.append(leaf)
        else:
            try:
                hash(leaf)
            except TypeError:
                raise _Eager from None
            kinds.append(("static", type(leaf), leaf))
    return treedef, tuple(kinds), arrays, nodes


def _abstract(values):
    return [jax.ShapeDtypeStruct(np.shape(v), jax.dtypes.canonicalize_dtype(v.dtype),
                                 weak_type=bool(getattr(v, "weak_type", False))) for v in values]


def eager():
    """EAGER, counted: what a caller returns when a compiled call cannot apply."""
    stats.eager += 1
    return EAGER


def _inside_a_transformation():
    """Whether a jax.jit/vmap/grad trace is running (the caller is transforming the model)."""
    try:
        from jax._src.core import trace_state_clean
    except ImportError:  # pragma: no cover (older or newer jax: traced arguments are still caught)
        return False
    return not trace_state_clean()
