"""The compiled step every explanation runs: forward, one all-semiring backprop, read-out.

`explain`, `explain_batch` and the dataset analysis call the same program. It is one
`jax.jit` of a `jax.vmap` over sentences, built once per (architecture, quantity, contrast or
not, semirings) and kept for the process; XLA compiles it once per (batch size, padded length).
The weights are arguments, not constants, so a second checkpoint of the same architecture (or
the same one loaded again) reuses the compiled program, and the persistent compilation cache
(`bf_bert.compile_cache`) serves them across processes.
Per-row target/contrast ids and mask positions are traced, so one program serves any words.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

import brunoflow as bf
from brunoflow.ad.backprop import ancestors

from ..explanation import ATTENTION_BRANCHES, MLP_BRANCHES

# consumer module path, relative to its layer → the branch it is
_BRANCH_OF = {"attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
              "attention.output": "skip", "intermediate.dense": "mlp", "output": "skip"}


class Readout(NamedTuple):
    """Everything one explanation reads from the backprop, as arrays (S tokens, L layers).

    value: () the quantity q. Per token (S,), from its input embedding row: grad_norm ‖∂q/∂e‖,
    grad_x_input ∂q/∂e·e, abs_grad (Σ units of abs_val_grad), entropy (of the token's paths),
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
    abs_grad: jax.Array
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
    a, h, grad = embeddings.abs_val_grad[0], embeddings.entropy_wrt_output[0], embeddings.grad[0]
    max_path = embeddings.max_path_of_output_wrt_node
    last = _last_node_per_module(value)
    per_layer = []
    for layer in range(model.config.num_hidden_layers):
        layer_path = f"{model.base_model_prefix}.encoder.layer.{layer}"
        attention_output = last[f"{layer_path}.attention.output.LayerNorm"]
        a_attention, h_attention = _flows_by_branch(hidden_states[layer], layer_path, ATTENTION_BRANCHES)
        a_mlp, h_mlp = _flows_by_branch(attention_output, layer_path, MLP_BRANCHES)
        per_layer.append((*_share_and_entropy(a_attention.sum(-1), h_attention.sum(-1)),
                          *_share_and_entropy(a_mlp.sum(-1), h_mlp.sum(-1)),
                          *_share_and_entropy(a_attention, h_attention), *_credit(hidden_states[layer], layer_path)))
    stacked = [jnp.stack(column) for column in zip(*per_layer)]
    return Readout(
        value=value.val, grad_norm=jnp.linalg.norm(grad, axis=-1), grad_x_input=(grad * embeddings.val[0]).sum(-1),
        abs_grad=a.sum(-1), entropy=entropy_of(a.sum(-1), h.sum(-1)),
        max_grad=embeddings.max_grad_of_output_wrt_node[0][0].max(-1),
        top_path=jnp.full(a.shape[:1], jnp.nan, a.dtype) if max_path is None else max_path[0][0].max(-1),
        attention_share=stacked[0], attention_entropy=stacked[1], mlp_share=stacked[2], mlp_entropy=stacked[3],
        token_share=jnp.swapaxes(stacked[4], 1, 2), token_entropy=jnp.swapaxes(stacked[5], 1, 2),
        oplus=stacked[6], oplus_value=stacked[7], buckets=stacked[8])


def entropy_of(a, h):
    """Entropy of pooled paths from the summed entropy-semiring pair (a, h): h/a + log a."""
    safe = jnp.where(a > 0, a, 1.0)
    return jnp.where(a > 0, h / safe + jnp.log(safe), 0.0)


def _share_and_entropy(a, h):
    """Branches on axis 0: each one's share of the mass, and the entropy of its own paths."""
    total = a.sum(0)
    return a / jnp.where(total > 0, total, 1.0), entropy_of(a, h)


def _last_node_per_module(root):
    """module path → the last node made there (a module's output), over the whole graph."""
    last = {}
    for node in sorted(ancestors(root), key=lambda n: n._order):
        last[node.module_path] = node
    return last


def branch_of(consumer, layer_path):
    relative = consumer.module_path[len(layer_path) + 1:] if consumer.module_path.startswith(layer_path) else ""
    return _BRANCH_OF.get(relative, "other")


def _flows_by_branch(node, layer_path, branches):
    """(a, h) of the entropy semiring that each branch's consumers sent back to `node`, summed
    over units: two arrays (len(branches), S)."""
    a_by = {b: 0.0 for b in branches}
    h_by = {b: 0.0 for b in branches}
    for consumer, (a, h) in bf.consumer_flows(node, "entropy"):
        name = branch_of(consumer, layer_path)
        if name in a_by:
            a_by[name] = a_by[name] + a[0].sum(-1)
            h_by[name] = h_by[name] + h[0].sum(-1)
    tokens = node.shape[1]
    as_array = lambda v: jnp.broadcast_to(jnp.asarray(v, node.dtype), (tokens,))  # noqa: E731 (a branch may be absent)
    return jnp.stack([as_array(a_by[b]) for b in branches]), jnp.stack([as_array(h_by[b]) for b in branches])


def _credit(node, layer_path):
    """Per token of a layer input: the oplus branch code and its top unit's value (S,), and the
    bucket_sum buckets (S, 4)."""
    codes = [ATTENTION_BRANCHES.index(b) if b in ATTENTION_BRANCHES else len(ATTENTION_BRANCHES)
             for b in (branch_of(c, layer_path) for c in node.get_parents())]
    table = jnp.asarray(codes + [len(ATTENTION_BRANCHES)], jnp.int32)  # index -1: nothing flowed
    hi, winner = node.max_grad_of_output_wrt_node
    branch = table[winner[0]]                                           # (S, H)
    top_unit = jnp.argmax(hi[0], axis=-1)[:, None]
    oplus = jnp.take_along_axis(branch, top_unit, axis=-1)[:, 0]
    one_hot = branch[..., None] == jnp.arange(len(ATTENTION_BRANCHES))
    return oplus, jnp.take_along_axis(hi[0], top_unit, axis=-1)[:, 0], jnp.where(one_hot, hi[0][..., None], 0).sum(1)


# (architecture, quantity, has_contrast, values) → jitted program. The program traces the first
# model of an architecture (only its structure: its weights are swapped for the arguments), so
# that model is kept alive here for the process.
_PROGRAMS = {}


def architecture(model):
    """What a compiled program depends on: the class, the config (less names and paths), every
    parameter's shape and dtype. Two loads of one checkpoint, or two checkpoints of one
    architecture, give the same key."""
    shapes = tuple((tuple(p.shape), str(p.dtype)) for p in model.parameters())
    return (*model.compile_key(), shapes)


def compiled_program(model, quantity, has_contrast, values):
    """The jitted, batched step for `model`'s architecture: built once, reused by every later call.

    Signature: (params, ids, mask, token_types, positions, target_ids, contrast_ids) → Readout
    with a leading batch axis; params = [p.val for p in model.parameters()], ids/mask/token_types
    (B, L) int32, positions/target_ids/contrast_ids (B,) int32 (contrast ignored without one).
    """
    key = (architecture(model), quantity, has_contrast, tuple(values))
    if key not in _PROGRAMS:
        batched = jax.vmap(_one_sentence(model, quantity, has_contrast, tuple(values)), in_axes=(None, 0, 0, 0, 0, 0, 0))
        # With max_path, XLA takes ~9 minutes to compile the whole program (hundreds of max-times
        # scans in one module) against ~1 minute for its kernels one by one, which vmap alone
        # gives (each op's cached kernel, batched): the run time per sentence is the same.
        _PROGRAMS[key] = batched if "max_path" in values else jax.jit(batched)
    return _PROGRAMS[key]


def _one_sentence(model, quantity, has_contrast, values):
    from ..explain import run  # explain imports this module: resolved at build time

    def step(params, ids, mask, token_types, position, target_id, contrast_id):
        with model.using_parameters(params):
            value, embeddings, hidden_states = run(model, ids[None], mask[None], token_types[None], position,
                                                   target_id, contrast_id if has_contrast else None, quantity,
                                                   values)
            return read_out(model, value, embeddings, hidden_states)

    step.__name__ = step.__qualname__ = f"explain_{quantity}"
    return step


def parameters_of(model):
    return [p.val for p in model.parameters()]
