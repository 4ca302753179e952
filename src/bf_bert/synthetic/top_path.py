"""Where the top gradient paths of a sequence classifier go: per token and layer, which
attention branch (query / key / value / skip) carries them.

Quantity: the logit of the correct class. One backprop from it, restricted to the paths from
the input embeddings, gives per layer input (hidden_states[layer]):

* oplus, bucket_sum: the operation-granular max_grad credit of the existing analysis
  (`analysis.program.branch_credit`): the token's top unit credits its winning branch with its
  value (oplus), or every unit adds its value to its winning branch's bucket (bucket_sum);
* max_path: the exact neuron-granular top path (`analysis.program.branch_max_path`): the
  best single path from the token through each branch; the best branch is credited with it,
  as oplus credits (`max_path_through` keeps every branch's best).

The step is vmapped over examples and jitted, with the weights as arguments.
"""

import jax
import jax.numpy as jnp
import numpy as np

import brunoflow as bf

from ..analysis.program import architecture, branch_credit, branch_max_path
from ..explanation import ATTENTION_BRANCHES

MEASURES = ("oplus", "bucket_sum", "max_path")


def _step(model, with_max_path):
    values = ("max_grad", "max_path") if with_max_path else ("max_grad",)
    layers = model.config.num_hidden_layers

    def step(params, ids, label):
        training = model.training
        model.eval()  # at every trace: a later batch size retraces this model, whatever mode it is in then
        try:
            return traced(params, ids, label)
        finally:
            model.train(training)

    def traced(params, ids, label):
        with model.using_parameters(params):
            table = model.get_input_embeddings().weight.val
            embeddings = bf.Node(jnp.take(table, ids[None], axis=0), name="inputs_embeds")
            out = model(inputs_embeds=embeddings, attention_mask=jnp.ones_like(ids)[None], output_hidden_states=True)
            logit = out.logits[jnp.zeros((1,), jnp.int32), label[None]][0]
            logit.backprop(values_to_compute=values, inputs=[embeddings])
            columns = {"oplus_branch": [], "oplus": [], "bucket_sum": [], "max_path_through": []}
            for layer in range(layers):
                layer_path = f"{model.base_model_prefix}.encoder.layer.{layer}"
                node = out.hidden_states[layer]
                code, value, buckets = branch_credit(node, layer_path)
                columns["oplus_branch"].append(code)
                columns["oplus"].append(value)
                columns["bucket_sum"].append(buckets)
                columns["max_path_through"].append(
                    branch_max_path(node, layer_path) if with_max_path
                    else jnp.full(buckets.shape, jnp.nan, buckets.dtype))
            result = {k: jnp.stack(v) for k, v in columns.items()}   # (L, S) or (L, S, 4)
            result["logits"] = out.logits.val[0]
            return result

    return step


# (architecture, with max_path) → the jitted step. It traces the first model of an architecture
# (its structure only: the weights are arguments), so every later model and batch reuses the compile.
_PROGRAMS = {}


def _program(model, with_max_path):
    key = (architecture(model), with_max_path)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = jax.jit(jax.vmap(_step(model, with_max_path), in_axes=(None, 0, 0)))
    return _PROGRAMS[key]


def analyze(model, ids, labels, with_max_path=True, batch_size=100, progress=None):
    """Arrays over examples (N first): logits (N, 2), oplus_branch / oplus (N, L, S),
    bucket_sum / max_path_through (N, L, S, 4). The model runs in eval mode (no dropout)."""
    run = _program(model, with_max_path)
    params = [p.val for p in model.parameters()]
    parts = []
    for start in range(0, len(ids), batch_size):
        stop = min(start + batch_size, len(ids))
        parts.append(jax.device_get(run(params, jnp.asarray(ids[start:stop], jnp.int32),
                                        jnp.asarray(labels[start:stop], jnp.int32))))
        if progress:
            progress(stop, len(ids))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def long_rows(arrays, ids, labels, token_types, type_names, example_ids=None):
    """One row per example × token × layer × branch: the three credited values, each branch's
    own best exact path, the token type and whether the model got the example right."""
    n, layers, seq = arrays["oplus"].shape
    example_ids = np.arange(n) if example_ids is None else np.asarray(example_ids)
    branch_index = np.arange(len(ATTENTION_BRANCHES))
    oplus = np.where(arrays["oplus_branch"][..., None] == branch_index, arrays["oplus"][..., None], 0.0)
    through = arrays["max_path_through"]   # -inf: no path leaves through that branch
    winner = np.argmax(np.where(np.isnan(through), -np.inf, through), axis=-1)
    max_path = np.where((winner[..., None] == branch_index) & (through > -np.inf), through, 0.0)
    max_path = np.where(np.isnan(through), np.nan, max_path)
    correct = arrays["logits"].argmax(-1) == labels
    shape = (n, layers, seq, len(ATTENTION_BRANCHES))
    grid = np.indices(shape)
    columns = {
        "example_id": example_ids[grid[0]], "layer": grid[1], "token_index": grid[2],
        "branch": np.asarray(ATTENTION_BRANCHES)[grid[3]],
        "token": np.asarray(ids)[grid[0], grid[2]],
        "token_type": np.asarray(type_names)[np.asarray(token_types)[grid[0], grid[2]]],
        "label": np.asarray(labels)[grid[0]], "correct": correct[grid[0]],
        "oplus": oplus, "bucket_sum": arrays["bucket_sum"], "max_path": max_path, "max_path_through": through,
    }
    return {k: np.asarray(v).reshape(-1) for k, v in columns.items()}


def summarize(table, type_names):
    """Mean of each measure per (layer, token type or "all", branch), as a DataFrame; the
    paper's numbers are such means over every token of the held-out set. A credit is 0 where a
    branch got none; max_path_through averages the tokens that have a path through the branch."""
    import pandas as pd
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    if "max_path_through" in frame.columns:
        frame = frame.assign(max_path_through=frame["max_path_through"].replace(-np.inf, np.nan))
    measures = [m for m in (*MEASURES, "max_path_through") if m in frame.columns]
    every = frame.assign(token_type="all")
    both = pd.concat([frame, every], ignore_index=True)
    out = both.groupby(["layer", "token_type", "branch"], sort=False)[measures].mean().reset_index()
    order = {name: k for k, name in enumerate((*type_names, "all"))}
    out["_t"], out["_b"] = out["token_type"].map(order), out["branch"].map(ATTENTION_BRANCHES.index)
    return out.sort_values(["layer", "_t", "_b"]).drop(columns=["_t", "_b"]).reset_index(drop=True)
