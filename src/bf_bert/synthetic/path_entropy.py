"""Entropy of a classifier's gradient graph, per example and token (Du et al. 2023, §5.3).

Root: the example's own training loss (cross-entropy of its true label over the model's logits),
as the paper's code backpropagates. One entropy-semiring backprop from it, restricted to the
paths from the input embeddings (the word-embedding rows the example looks up), gives for every
embedding unit the sum a of its path products' magnitudes and h = Σ −|w| log |w| over those
paths. A token's entropy treats its H units as one source with unit-weight edges to each (the
paper's reading): H_token = (Σ h)/(Σ a) + log Σ a, in nats. The example's entropy is the sum
over its tokens.

The step is vmapped over examples and jitted with the weights as arguments, one compile per
architecture and batch size.
"""

import jax
import jax.numpy as jnp
import numpy as np

import brunoflow as bf
from brunoflow.ad import scaled

from ..analysis.program import architecture


def token_entropy(embeddings):
    """(batch, S) entropy of each token's paths from an embeddings Node (batch, S, H) after an
    entropy backprop; 0 for a token with no path."""
    a = embeddings.scaled_abs_val_grad.sum(-1)
    h = embeddings.scaled_entropy_wrt_output.sum(-1)
    return scaled.entropy(a, h)


def _step(model):
    def step(values, ids, label):
        training = model.training
        model.eval()  # at trace time: a later batch size retraces, whatever mode the model is in then
        try:
            with model.using_parameters(values):
                table = model.get_input_embeddings().weight.val
                embeddings = bf.Node(jnp.take(table, ids[None], axis=0), name="inputs_embeds")
                out = model(inputs_embeds=embeddings, attention_mask=jnp.ones_like(ids)[None], labels=label[None])
                out.loss.backprop(values_to_compute=("entropy",), inputs=[embeddings])
                return {"token_entropy": token_entropy(embeddings)[0], "logits": out.logits.val[0],
                        "loss": out.loss.val}
        finally:
            model.train(training)

    return step


_PROGRAMS = {}


def _program(model):
    key = architecture(model)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = jax.jit(jax.vmap(_step(model), in_axes=(None, 0, 0)))
    return _PROGRAMS[key]


def example_entropies(model, values, ids, labels, batch_size=120, progress=None):
    """Arrays over examples: token_entropy (N, S) in nats, logits (N, num_labels), loss (N,), for
    the weights `values` (in `model.parameters()` order) on the model's architecture."""
    run = _program(model)
    parts = []
    for start in range(0, len(ids), batch_size):
        rows = slice(start, min(start + batch_size, len(ids)))
        n = rows.stop - rows.start
        # a short last batch is padded, so that one compiled batch size serves every run
        batch_ids = np.concatenate([ids[rows], np.repeat(ids[rows][-1:], batch_size - n, axis=0)])
        batch_labels = np.concatenate([labels[rows], np.repeat(labels[rows][-1:], batch_size - n)])
        out = jax.device_get(run(values, jnp.asarray(batch_ids, jnp.int32), jnp.asarray(batch_labels, jnp.int32)))
        parts.append({k: v[:n] for k, v in out.items()})
        if progress:
            progress(rows.stop, len(ids))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
