"""The exact top path (max_path) of a batch of sentences: the stage `Program` runs after its
compiled four-semiring program when max_path is asked for.

One forward and one max_path-only backprop for the whole batch, op by op (`explain.run_batch`:
the ops dispatch once, not once per sentence), then a walk per sentence on the host. Sentences
share no path, so each one's states and walk are the ones it has alone; the path arrays index
one sentence's graph as `explain.run` builds it (the batch's row and stack nodes left out), so
a sentence's path does not depend on its batch.

As one XLA program MiniLM's max_path step compiles for ~50 s (the six layers' max-times code is
not shared) and runs ~0.6 s at 128 tokens; op by op, the layers share their kernels, which also
serve every later length's walk and are kept on disk.
"""

from typing import NamedTuple

import numpy as np

from brunoflow.ad.paths import path_nodes, top_path

# The stage keeps every node's states for the walks: it sweeps at most this many tokens at once
# (16 sentences of 16, 2 of 128, 1 of 512), where batching still saves dispatches (a sweep at 16
# tokens is mostly dispatch) and memory stays near one sentence's
STAGE_TOKENS = 256


class PathLayout(NamedTuple):
    """What the top-path arrays of one padded length index: per node that the path may cross
    (creation order), its module path, op name and shape; and per layer, which of those nodes
    is the layer's input (hidden_states[layer])."""

    nodes: list
    layer_inputs: list


def run(model, quantity, has_contrast, params, ids, mask, token_types, positions, target_ids, contrast_ids):
    """(top_path (B, L), path positions and values (B, N), the PathLayout of length L) for a batch
    given as `Program`'s arguments (host arrays), swept `STAGE_TOKENS` tokens at a time."""
    chunk = max(1, STAGE_TOKENS // ids.shape[1])
    arrays = (ids, mask, token_types, positions, target_ids, contrast_ids)
    parts = [_rows(model, quantity, has_contrast, params, *(a[start:start + chunk] for a in arrays))
             for start in range(0, len(ids), chunk)]
    top_paths, paths, values, layouts = zip(*parts)
    return np.concatenate(top_paths), np.concatenate(paths), np.concatenate(values), layouts[0]


def prepare(model, quantity, has_contrast, params, ids, mask, token_types, positions, target_ids, contrast_ids):
    """Start compiling the forward `run` runs first (`compiled.forward`'s prepare), for a caller
    that traces another program meanwhile."""
    from ..explain import run_batch  # explain imports the analysis package: resolved at call time
    chunk = max(1, STAGE_TOKENS // ids.shape[1])
    with model.using_parameters(params):
        run_batch(model, ids[:chunk], mask[:chunk], token_types[:chunk], positions[:chunk], target_ids[:chunk],
                  contrast_ids[:chunk] if has_contrast else None, quantity, prepare=True)


def _rows(model, quantity, has_contrast, params, ids, mask, token_types, positions, target_ids, contrast_ids):
    from ..explain import run_batch
    with model.using_parameters(params):
        _, embeddings, rows, quantities, hidden_states = run_batch(
            model, ids, mask, token_types, positions, target_ids, contrast_ids if has_contrast else None, quantity)
        best = np.asarray(embeddings.max_path_of_output_wrt_node[0])  # (B, L, H): small, read once
        nodes = path_nodes(embeddings)
        shared = [n for n in nodes if n._order < rows[0]._order]  # the batch's encoder, embeddings included
        heads = [[n for n in nodes if row._order < n._order <= q._order] for row, q in zip(rows, quantities)]
        layout = _layout(shared, heads, hidden_states, len(ids))
        in_layout = {id(n): k for k, n in enumerate(shared)}
        paths = np.full((len(ids), len(layout.nodes)), -1, np.int32)
        values = np.full(paths.shape, np.nan, best.dtype)
        for b, head in enumerate(heads):
            rows_of_sentence = {**in_layout, **{id(n): len(shared) + k for k, n in enumerate(head)}}
            start = np.unravel_index(np.argmax(np.where(mask[b][:, None] > 0, best[b], -np.inf)), best[b].shape)
            for hop in top_path(embeddings, (b, *start)):
                k = rows_of_sentence.get(id(hop.node))
                if k is None:
                    continue  # the batch's own nodes: this sentence's row, the stack of the qs
                shape = layout.nodes[k][2]  # a shared node's batch axis is 1 there: its own row's index
                index = (0, *hop.index[1:]) if k < len(shared) else hop.index
                paths[b, k] = np.ravel_multi_index(index, shape) if shape else 0
                values[b, k] = hop.value
    return best.max(-1), paths, values, layout


def _layout(shared, heads, hidden_states, batch):
    """One sentence's PathLayout from a batch's graph: its shared nodes with the batch axis as 1,
    then the first sentence's head (every sentence's has the same nodes)."""
    for n in shared:
        if n.shape[0] != batch:
            raise RuntimeError(f"{n!r} on the top path has no leading batch axis of {batch}: the batched top-path "
                               "stage needs every encoder node to keep the sentences apart on axis 0")
    if any(len(head) != len(heads[0]) for head in heads):
        raise RuntimeError("the sentences of a batch built heads of different sizes")
    nodes = [_entry(n, (1, *n.shape[1:])) for n in shared] + [_entry(n, tuple(n.shape)) for n in heads[0]]
    where = {id(n): k for k, n in enumerate(shared)}
    return PathLayout(nodes, [where[id(h)] for h in hidden_states[:-1]])


def _entry(node, shape):
    return node.module_path, node.op.name if node.op else "inputs_embeds", shape
