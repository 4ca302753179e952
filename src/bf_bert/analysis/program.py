"""The compiled step every explanation runs: forward, one all-semiring backprop, read-out.

`explain`, `explain_batch` and the dataset analysis call the same program. It is one
`jax.jit` of a `jax.vmap` over sentences (of the step itself for one sentence), built once per
(architecture, quantity, contrast or not, semirings) and kept for the process; XLA compiles it
once per (batch size, padded length).
The exact top path (max_path) is a stage of its own, run op by op after it (see Program).
The weights are arguments, not constants, so a second checkpoint of the same architecture (or
the same one loaded again) reuses the compiled program, and the persistent compilation cache
(`bf_bert.compile_cache`) serves them across processes.
Per-row target/contrast ids and mask positions are traced, so one program serves any words.
"""

import concurrent.futures
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import brunoflow as bf
from brunoflow.ad import jax_settings, scaled
from brunoflow.ad.backprop import ancestors
from brunoflow.ad.compiler_options import fast_compile
from brunoflow.ad.primitive import signature

from ..compile_cache import exported_program
from . import top_path_stage
from ..explanation import ATTENTION_BRANCHES, MLP_BRANCHES

# consumer module path, relative to its layer → the branch it is
_BRANCH_OF = {"attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
              "attention.output": "skip", "intermediate.dense": "mlp", "output": "skip"}


class Readout(NamedTuple):
    """Everything one explanation reads from the backprop, as arrays (S tokens, L layers).

    value: () the quantity q. Per token (S,), from its input embedding row: grad_norm ‖∂q/∂e‖,
    grad_x_input ∂q/∂e·e, log_abs_grad (natural log of Σ units of abs_val_grad: finite in float32,
    where the sum itself passes 1e38 on real models), entropy (of the token's paths),
    max_grad (operation-granular, max over units), top_path (exact max over paths and units;
    NaN when max_path did not run). Per layer and branch: attention_share/attention_entropy
    (L, 4: query, key, value, skip) and mlp_share/mlp_entropy (L, 2: mlp, skip) of the mass
    reaching the sub-block's input; per layer, token and attention branch: token_share and
    token_entropy (L, S, 4). Credit: oplus (L, S) the branch code of the token's top unit
    (4: other) and oplus_value (L, S) that unit's max_grad value (what the paper averages per
    branch), buckets (L, S, 4) the bucket_sum buckets.
    """

    value: jax.Array
    grad_norm: jax.Array
    grad_x_input: jax.Array
    log_abs_grad: jax.Array
    entropy: jax.Array
    max_grad: jax.Array
    top_path: jax.Array
    attention_share: jax.Array
    attention_entropy: jax.Array
    mlp_share: jax.Array
    mlp_entropy: jax.Array
    token_share: jax.Array
    token_entropy: jax.Array
    oplus: jax.Array
    oplus_value: jax.Array
    buckets: jax.Array


def read_out(model, value, embeddings, hidden_states) -> Readout:
    """The Readout of one backprop from `value` (batch row 0), as device arrays, no host reads."""
    last = last_node_per_module(value)
    per_layer = []
    for layer in range(model.config.num_hidden_layers):
        layer_path = f"{model.base_model_prefix}.encoder.layer.{layer}"
        per_layer.append(layer_read_out(hidden_states[layer], last[f"{layer_path}.attention.output.LayerNorm"],
                                        layer_path))
    return assemble_read_out(value.val, embeddings, [jnp.stack(column) for column in zip(*per_layer)])


def layer_read_out(layer_input, attention_output, layer_path):
    """One layer's columns of the Readout, from its input and its attention block's output nodes
    (attention and MLP shares and entropies, per-token shares, branch credit), in Readout order."""
    a_attention, h_attention = _flows_by_branch(layer_input, layer_path, ATTENTION_BRANCHES)
    a_mlp, h_mlp = _flows_by_branch(attention_output, layer_path, MLP_BRANCHES)
    return (*_share_and_entropy(a_attention.sum(-1), h_attention.sum(-1)),
            *_share_and_entropy(a_mlp.sum(-1), h_mlp.sum(-1)),
            *_share_and_entropy(a_attention, h_attention), *branch_credit(layer_input, layer_path))


def assemble_read_out(value, embeddings, stacked) -> Readout:
    """The Readout from q's value, the embeddings leaf after the backprop, and the layers'
    columns of `layer_read_out` stacked on a leading layer axis."""
    a, h = embeddings.scaled_abs_val_grad[0].sum(-1), embeddings.scaled_entropy_wrt_output[0].sum(-1)
    grad = embeddings.grad[0]
    max_path = embeddings.max_path_of_output_wrt_node
    return Readout(
        value=value, grad_norm=jnp.linalg.norm(grad, axis=-1), grad_x_input=(grad * embeddings.val[0]).sum(-1),
        log_abs_grad=a.log(), entropy=scaled.entropy(a, h),
        max_grad=embeddings.max_grad_of_output_wrt_node[0][0].max(-1),
        top_path=jnp.full(a.shape, jnp.nan, a.dtype) if max_path is None else max_path[0][0].max(-1),
        attention_share=stacked[0], attention_entropy=stacked[1], mlp_share=stacked[2], mlp_entropy=stacked[3],
        token_share=jnp.swapaxes(stacked[4], 1, 2), token_entropy=jnp.swapaxes(stacked[5], 1, 2),
        oplus=stacked[6], oplus_value=stacked[7], buckets=stacked[8])


def _share_and_entropy(a, h):
    """Scaled sums with branches on axis 0: each one's share of the mass, and the entropy of its own paths."""
    return a.ratio(a.sum(0)[None]), scaled.entropy(a, h)


def last_node_per_module(root):
    """module path → the last node made there (a module's output), over the whole graph."""
    last = {}
    for node in sorted(ancestors(root), key=lambda n: n._order):
        last[node.module_path] = node
    return last


def branch_of(consumer, layer_path):
    return branch_of_path(consumer.module_path, layer_path)


def branch_of_path(module_path, layer_path):
    """The branch a consumer made at `module_path` is, seen from the input of `layer_path`."""
    relative = module_path[len(layer_path) + 1:] if module_path.startswith(layer_path) else ""
    return _BRANCH_OF.get(relative, "other")


def _flows_by_branch(node, layer_path, branches):
    """(a, h) of the entropy semiring that each branch's consumers sent back to `node`, summed
    over units: two Scaled (len(branches), S)."""
    a_by, h_by = {}, {}
    for consumer, (a, h) in bf.consumer_flows(node, "entropy", scaled=True):
        name = branch_of(consumer, layer_path)
        if name in branches:
            a_by[name] = a[0].sum(-1) + a_by.get(name, 0)
            h_by[name] = h[0].sum(-1) + h_by.get(name, 0)
    nothing = bf.Scaled(jnp.zeros(node.shape[1], node.dtype), jnp.zeros((), jnp.int32))  # a branch may be absent
    return (scaled.stack([a_by.get(b, nothing) for b in branches]),
            scaled.stack([h_by.get(b, nothing) for b in branches]))


def branch_credit(node, layer_path):
    """Per token of a layer input, from the operation-granular max_grad: the oplus branch code
    and its top unit's value (S,), and the bucket_sum buckets (S, 4). Any model whose layers
    have BERT's module paths (the sequence classifiers of `bf_bert.synthetic` too)."""
    codes = [ATTENTION_BRANCHES.index(b) if b in ATTENTION_BRANCHES else len(ATTENTION_BRANCHES)
             for b in (branch_of(c, layer_path) for c in node.get_parents())]
    table = jnp.asarray(codes + [len(ATTENTION_BRANCHES)], jnp.int32)  # index -1: nothing flowed
    hi, winner = node.max_grad_of_output_wrt_node
    branch = table[winner[0]]                                           # (S, H)
    top_unit = jnp.argmax(hi[0], axis=-1)[:, None]
    oplus = jnp.take_along_axis(branch, top_unit, axis=-1)[:, 0]
    one_hot = branch[..., None] == jnp.arange(len(ATTENTION_BRANCHES))
    return oplus, jnp.take_along_axis(hi[0], top_unit, axis=-1)[:, 0], jnp.where(one_hot, hi[0][..., None], 0).sum(1)


def branch_max_path(node, layer_path):
    """Per token of a layer input and attention branch (S, 4): the exact (neuron-granular) max
    over every path that leaves the token's units through that branch, over its units; -inf
    where no path leaves through it. Its max over branches is the token's top path value. Needs
    a max_path backprop that kept the consumers' values."""
    best = {}
    for consumer, (hi, _, hi_consumer, *_) in bf.consumer_flows(node, "max_path"):
        name = branch_of(consumer, layer_path)
        if name in ATTENTION_BRANCHES:  # a unit the consumer links to no path reads 0 there: not a path of value 0
            unit_best = jnp.where(hi_consumer[0] == bf.MaxPath.NO_PATH, -jnp.inf, hi[0]).max(-1)
            best[name] = jnp.maximum(best[name], unit_best) if name in best else unit_best
    absent = jnp.full(node.shape[1], -jnp.inf, node.dtype)
    return jnp.stack([best.get(b, absent) for b in ATTENTION_BRANCHES], axis=-1)


# (architecture, quantity, has_contrast, values) → Program. A program traces the first model of
# an architecture (only its structure: its weights are swapped for the arguments), so that
# model is kept alive here for the process.
_PROGRAMS = {}


class Output(NamedTuple):
    """A program's result, batch axis first: the Readout, and the exact top path from the
    token unit whose top path is largest, as `brunoflow.ad.paths.top_path` walks it
    (positions -1 where the path does not cross a node); (B, 0) when max_path did not run."""

    readout: Readout
    path_positions: jax.Array
    path_values: jax.Array


# a program's result leaves an exported (disk-cached) program as this tree
for _result in (Readout, Output):
    jax.export.register_namedtuple_serialization(_result, serialized_name=f"bf_bert.{_result.__name__}")


class Program:
    """One explanation step (forward, one all-semiring backprop, read-out, top path) for an
    architecture: the semirings other than max_path as one `jax.jit` of a `jax.vmap` over
    sentences (the step itself for one sentence; the layers scanned where `layer_scan.scannable`),
    which XLA compiles once per (batch size, padded length) and the persistent compilation cache
    keeps across processes; then, when max_path is asked for, the exact top
    path as its own stage (`top_path_stage`), the batch swept at once with each op's cached kernel.

    Call: (params, ids, mask, token_types, positions, target_ids, contrast_ids) → Output, with
    params = [p.val for p in model.parameters()], ids/mask/token_types (B, L) int32 and
    positions/target_ids/contrast_ids (B,) int32 (contrast ignored without one).
    `layouts[L]` describes the path arrays of padded length L once a call has walked one.
    """

    def __init__(self, model, quantity, has_contrast, values):
        self.quantity, self.values = quantity, values
        self.layouts = {}
        self._model, self._has_contrast = model, has_contrast
        self._with_max_path = "max_path" in values
        others = tuple(v for v in values if v != "max_path")
        if self._with_max_path:  # the same jitted program as without the top path: compiled once for both
            self._jitted = compiled_program(model, quantity, has_contrast, others)._jitted
        else:
            from .layer_scan import StackedWeights, scannable, scanned_step  # layer_scan imports this module
            if scannable(model):
                step, arrange = scanned_step(model, quantity, has_contrast, others), StackedWeights(model)
            else:
                step, arrange = self._step(model, quantity, has_contrast, others), None
            self._jitted = _Jitted(jax.jit(_over_sentences(step)),
                                   disk_key=(architecture(model), quantity, has_contrast, others), arrange=arrange)

    def __call__(self, params, ids, mask, token_types, positions, target_ids, contrast_ids):
        args = (self._jitted.arrange(params), ids, mask, token_types, positions, target_ids, contrast_ids)
        if not self._with_max_path:
            return self._jitted.executable(args, run_once=False).result()(*args)
        # For a new shape, the stage's forward starts compiling in a thread while this one traces
        # the program (Python: one core), then the program compiles in a thread while the stage's
        # kernels compile here: the compiles overlap. Then the program runs beside the stage: XLA
        # on CPU runs what one thread dispatches in order, so the stage's kernels, dispatched
        # here, would wait for a program dispatched here too; from a thread of its own it does not
        if not self._jitted.has(args):
            top_path_stage.prepare(self._model, self.quantity, self._has_contrast, params,
                                   *(np.asarray(a) for a in args[1:]))
        program = self._jitted.executable(args, run_once=True)
        running = _RUNNER.submit(_run, program, args)
        top_path, positions, values, self.layouts[ids.shape[1]] = top_path_stage.run(
            self._model, self.quantity, self._has_contrast, params, *(np.asarray(a) for a in args[1:]))
        output = running.result()
        return Output(output.readout._replace(top_path=jnp.asarray(top_path)), jnp.asarray(positions),
                      jnp.asarray(values))

    def compiled_shapes(self):
        """How many (batch size, padded length, dtype) variants XLA has compiled so far."""
        return len(self._jitted.executables)

    def _step(self, model, quantity, has_contrast, values):
        from ..explain import run  # explain imports this module: resolved at build time

        def step(params, ids, mask, token_types, position, target_id, contrast_id):
            with model.using_parameters(params):
                value, embeddings, hidden_states = run(model, ids[None], mask[None], token_types[None], position,
                                                       target_id, contrast_id if has_contrast else None, quantity,
                                                       values)
                readout = read_out(model, value, embeddings, hidden_states)
                return Output(readout, jnp.zeros((0,), jnp.int32), jnp.zeros((0,), embeddings.dtype))

        step.__name__ = step.__qualname__ = f"explain_{quantity}"
        return step


def _over_sentences(step):
    """step over a batch axis: jax.vmap, or for one sentence (explain) the step itself, which traces
    in 0.85 s where its vmap takes 1.2 s, on the path of a first explanation (MiniLM, 128 tokens)."""
    batched = jax.vmap(step, in_axes=(None, 0, 0, 0, 0, 0, 0))

    def over_sentences(params, *per_sentence):
        if per_sentence[0].shape[0] == 1:
            return jax.tree.map(lambda a: a[None], step(params, *(a[0] for a in per_sentence)))
        return batched(params, *per_sentence)

    over_sentences.__name__ = over_sentences.__qualname__ = step.__name__
    return over_sentences


class _Jitted:
    """A jitted program's executables per argument signature, each compiled in a background
    thread: a caller traces and lowers (Python, on this thread), gets a Future of the
    executable, and may run other work while XLA compiles (it releases the GIL). With the
    persistent cache on, the lowered program is kept there too (`compile_cache.exported_program`),
    under `disk_key` (what the trace depends on beyond the arguments and the code)."""

    _compiler = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bf-compile")

    def __init__(self, jitted, disk_key, arrange=None):
        self.jitted, self.disk_key, self.executables = jitted, disk_key, {}
        self._arrange = arrange

    def arrange(self, params):
        """The program's first argument from `parameters()` values (e.g. the layers' weights stacked)."""
        return params if self._arrange is None else self._arrange(params)

    def has(self, args):
        """Whether an executable for `args` (under this thread's JAX settings) is compiled or compiling."""
        return _signature_of(args) in self.executables

    def executable(self, args, run_once):
        """A Future of the executable for `args`; `run_once`: also run it once on them in the thread
        (for a caller with other work to do meanwhile, see `_compile`)."""
        key = _signature_of(args)
        if key not in self.executables:
            exported = exported_program(self.jitted, args, (self.disk_key, key))
            lowered = self.jitted.lower(*args) if exported is None else jax.jit(exported.call).lower(*args)
            self.executables[key] = self._compiler.submit(_compile, lowered, args if run_once else None,
                                                          jax_settings.current())
        pending = self.executables[key]
        if pending.done() and pending.exception() is not None:  # a later call may try again
            del self.executables[key]
        return pending


# the explanation program's runs beside the top-path stage (see Program.__call__)
_RUNNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bf-program")


def _run(program, args):
    """The output of a program (a Future of its executable) on `args`, once computed."""
    return jax.block_until_ready(program.result()(*args))


def _signature_of(args):
    return jax.tree.structure(args), signature(jax.tree.leaves(args)), jax_settings.current()


def _compile(lowered, args, settings):
    """The executable, under the caller's JAX settings (which may hold for its thread only),
    and run once on `args` unless None: XLA finishes loading an executable on its first run
    (~0.9 s for MiniLM's program read from the disk cache, against ~0.1 s later ones), which
    then happens off the caller's thread, while it runs the top-path stage."""
    with jax_settings.applied(settings):
        executable = lowered.compile(compiler_options=fast_compile())
        first = None if args is None else (args, jax.block_until_ready(executable(*args)))
    return _Loaded(executable, first)


class _Loaded:
    """An executable, and the output of the run that finished loading it: the caller that asked
    for that run gets it on its first call with those very arguments (0.2 s less of a first
    explanation at 128 tokens than running the program again)."""

    def __init__(self, executable, first):
        self.executable, self._first = executable, first

    def __call__(self, *args):
        first, self._first = self._first, None
        if first is not None and len(args) == len(first[0]) and all(a is b for a, b in zip(args, first[0])):
            return first[1]
        return self.executable(*args)


def architecture(model):
    """What a compiled program depends on: the class, the config (less names and paths), every
    parameter's shape and dtype. Two loads of one checkpoint, or two checkpoints of one
    architecture, give the same key."""
    shapes = tuple((tuple(p.shape), str(p.dtype)) for p in model.parameters())
    return (*model.compile_key(), shapes, model.training)  # a training model's dropout is in its trace


def compiled_program(model, quantity, has_contrast, values):
    """The Program for `model`'s architecture: built once, reused by every later call."""
    key = (architecture(model), quantity, has_contrast, tuple(values))
    if key not in _PROGRAMS:
        _PROGRAMS[key] = Program(model, quantity, has_contrast, tuple(values))
    return _PROGRAMS[key]


def parameters_of(model):
    return [p.val for p in model.parameters()]
