"""explain_batch(): many sentences, one jitted program per padded length, one table out.

Each sentence is padded (attention-masked) to a multiple of `bucket` tokens, so sentences of
similar length share one compiled XLA program of the whole forward + backprop + analysis
(docs/architecture.md §2); the top path, a host-side walk, is left to `explain` for single sentences.
"""

import functools
import math

import jax
import numpy as np

from .analysis.program import read_out
from .explain import (VALUES, check_finite, check_model, layer_attribution, mask_position, run, token_attribution,
                      word_id)
from .explanation import Explanation, rows_to_dataframe


class ExplanationTable:
    """The explanations of a batch; `rows()` / `to_dataframe()` give sentence × token × layer × branch."""

    def __init__(self, explanations):
        self.explanations = explanations

    def __len__(self):
        return len(self.explanations)

    def rows(self):
        rows = []
        for sentence, explanation in enumerate(self.explanations):
            rows.extend({"sentence": sentence, **row} for row in explanation.rows())
        return rows

    def to_dataframe(self):
        return rows_to_dataframe(self.rows())


def explain_batch(model, tokenizer, texts, target, contrast=None, quantity="logit", bucket=16, progress=True,
                  top_path=False):
    """Explain `target` (vs `contrast`) at the one mask of every text; returns an ExplanationTable.

    The exact top path (max_path) is off by default: its max-times transposes cost more than
    the other semirings together and most of the compile time; without it the tokens'
    `top_path` column is NaN (not computed). Branch credit (oplus, bucket_sum) needs only
    the operation-granular max_grad and is always there.
    """
    check_model(model, quantity)
    if isinstance(texts, str) or not len(texts):
        raise ValueError("explain_batch needs a non-empty list of texts (use explain() for one)")
    target_id = word_id(tokenizer, target)
    contrast_id = word_id(tokenizer, contrast, "contrast") if contrast is not None else None
    limit = model.config.max_position_embeddings
    encoded = [tokenizer(text, return_tensors="np")["input_ids"][0] for text in texts]
    positions = [mask_position(tokenizer, ids[None], text) for ids, text in zip(encoded, texts)]
    values = VALUES if top_path else tuple(v for v in VALUES if v != "max_path")
    program = jax.jit(functools.partial(_program, model, quantity, contrast_id is not None, values))
    explanations = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda k: len(encoded[k]))  # bucket by bucket: each compiles once
    for k in _progress(order, progress):
        ids = encoded[k]
        length = min(limit, bucket * math.ceil(len(ids) / bucket))
        if len(ids) > length:
            raise ValueError(f"text {k} has {len(ids)} tokens, more than max_position_embeddings ({limit})")
        padded = np.full((1, length), tokenizer.pad_token_id, np.int32)
        padded[0, :len(ids)] = ids
        mask = (np.arange(length) < len(ids)).astype(np.int32)[None]
        arrays = {key: np.asarray(v) for key, v in program(padded, mask, np.zeros_like(mask), positions[k],
                                                           target_id, contrast_id or 0)._asdict().items()}
        check_finite(arrays, model.dtype)
        explanations[k] = Explanation(
            text=texts[k], tokens=tokenizer.convert_ids_to_tokens(ids.tolist()), mask_position=positions[k],
            target=target, contrast=contrast, quantity=quantity, value=float(arrays["value"]),
            tokens_attribution=token_attribution(arrays, len(ids)),
            layers=[layer_attribution(arrays, layer, f"{model.base_model_prefix}.encoder.layer.{layer}", len(ids))
                    for layer in range(model.config.num_hidden_layers)])
    return ExplanationTable(explanations)


def _program(model, quantity, has_contrast, values, ids, mask, token_types, position, target_id, contrast_id):
    value, embeddings, hidden_states = run(model, ids, mask, token_types, position, target_id,
                                           contrast_id if has_contrast else None, quantity, values)
    return read_out(model, value, embeddings, hidden_states)


def _progress(items, enabled):
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, desc="explain_batch", unit="sentence")
