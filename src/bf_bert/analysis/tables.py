"""Long tables from one batch of read-outs: one row per observation, one column per variable.

    sentences  sentence_id · text · tokens · n_tokens · mask_position · target · contrast · q ·
               correct · n_attractors · subject_position · attractor_positions · meta (JSON)
    tokens     sentence_id · token_index · token · saliency · grad_x_input · log10_abs_grad ·
               entropy · max_grad · top_path
    branches   sentence_id · token_index · layer · branch (query/key/value/skip) · oplus (1 if the
               token's top unit credits this branch) · oplus_value (that unit's max_grad value
               where oplus is 1, else 0: the paper averages it) · bucket_sum · abs_share · entropy

`q` is logit(target) − logit(contrast) (or the target's alone); `correct` is q > 0 with a
contrast. Figures and aggregates read these tables only.
"""

import json

import numpy as np
import pandas as pd

from ..explanation import ATTENTION_BRANCHES
from .items import Skipped


def batch_tables(tokenizer, batch, readout, n_layers):
    """(tables, skipped): the rows of `batch` (Encoded) from `readout` (arrays with a batch axis,
    padded rows beyond len(batch) ignored); rows whose path sums are NaN are skipped."""
    sentences, tokens, branches, skipped = [], [], [], []
    for b, row in enumerate(batch):
        n = len(row.ids)
        if np.isnan(readout.log_abs_grad[b, :n]).any():  # a NaN in the forward (log 0 is -inf, not NaN)
            skipped.append(Skipped(row.item.id, "abs-grad path sums are NaN: the forward has a NaN"))
            continue
        sentences.append(_sentence_row(tokenizer, row, float(readout.value[b])))
        tokens.append(_token_rows(tokenizer, row, readout, b))
        branches.append(_branch_rows(row, readout, b, n_layers))
    tables = {}
    if sentences:
        tables = {"sentences": pd.DataFrame(sentences), "tokens": pd.concat(tokens, ignore_index=True),
                  "branches": pd.concat(branches, ignore_index=True)}
    if skipped:
        tables["skipped"] = pd.DataFrame({"sentence_id": [s.id for s in skipped],
                                          "reason": [s.reason for s in skipped]})
    return tables, skipped


def _sentence_row(tokenizer, row, q):
    item = row.item
    meta = {k: v for k, v in item.meta.items() if k not in ("subject_word", "attractor_words")}
    return {"sentence_id": item.id, "text": item.text, "tokens": tokenizer.convert_ids_to_tokens(row.ids.tolist()),
            "n_tokens": len(row.ids), "mask_position": row.mask_position, "target": item.target,
            "contrast": item.contrast, "q": q, "correct": (q > 0) if item.contrast is not None else None,
            "n_attractors": int(item.meta["n_attractors"]) if "n_attractors" in item.meta else -1,
            "subject_position": row.subject_position, "attractor_positions": list(row.attractor_positions),
            "meta": json.dumps(meta, sort_keys=True, default=str)}


def _token_rows(tokenizer, row, readout, b):
    n = len(row.ids)
    log_abs = readout.log_abs_grad[b, :n] / np.log(10)
    return pd.DataFrame({
        "sentence_id": row.item.id, "token_index": np.arange(n),
        "token": tokenizer.convert_ids_to_tokens(row.ids.tolist()),
        "saliency": readout.grad_norm[b, :n], "grad_x_input": readout.grad_x_input[b, :n],
        "log10_abs_grad": log_abs, "entropy": readout.entropy[b, :n], "max_grad": readout.max_grad[b, :n],
        "top_path": readout.top_path[b, :n]})


def _branch_rows(row, readout, b, n_layers):
    n, k = len(row.ids), len(ATTENTION_BRANCHES)
    layer, token, branch = np.meshgrid(np.arange(n_layers), np.arange(n), np.arange(k), indexing="ij")
    credited = readout.oplus[b, :, :n, None] == np.arange(k)
    return pd.DataFrame({
        "sentence_id": row.item.id, "token_index": token.ravel(), "layer": layer.ravel(),
        "branch": np.asarray(ATTENTION_BRANCHES)[branch.ravel()], "oplus": credited.astype(np.int8).ravel(),
        "oplus_value": np.where(credited, readout.oplus_value[b, :, :n, None], 0.0).ravel(),
        "bucket_sum": readout.buckets[b, :, :n].ravel(), "abs_share": readout.token_share[b, :, :n].ravel(),
        "entropy": readout.token_entropy[b, :, :n].ravel()})
