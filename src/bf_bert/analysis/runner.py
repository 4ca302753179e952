"""analyze(): explain every item of a dataset, in padded-length buckets and fixed-size batches.

Items become encoded rows (mask found, words checked, positions mapped to tokens), rows are
grouped by padded length, and each batch of `batch_size` rows goes through the one compiled
program (`program.py`): one XLA compile per (padded length, batch size), reused across
batches and calls. Each finished batch is handed to a writer as long tables (`tables.py`),
so a killed run loses at most one batch. A row that cannot be explained is reported as
Skipped with its reason, never dropped silently and never fatal to the run.
"""

import math
import time
from dataclasses import dataclass, field

import jax
import numpy as np

from ..explain import VALUES, check_model
from .items import MASK, Item, Skipped
from .program import compiled_program, parameters_of
from .tables import batch_tables


@dataclass(frozen=True)
class Encoded:
    """One item as the program takes it."""

    item: Item
    ids: np.ndarray               # (n,) token ids, one mask among them
    mask_position: int
    target_id: int
    contrast_id: int | None
    subject_position: int         # token of the subject's first piece, -1 unknown
    attractor_positions: tuple    # tokens of the attractors' first pieces


@dataclass
class Summary:
    explained: int = 0
    skipped: list = field(default_factory=list)   # Skipped
    seconds: float = 0.0
    compiles: int = 0                             # (padded length, batch size) programs run cold
    model_label: str = ""

    @property
    def sentences_per_second(self):
        return self.explained / self.seconds if self.seconds else 0.0


def analyze(model, tokenizer, items, *, writer=None, batch_size=8, bucket=16, top_path=False, quantity="logit",
            progress=True, done=()):
    """Explain target vs contrast at the mask of every item; returns a Summary.

    `writer.write(tables)` receives each finished batch (a dict of DataFrames); `done` holds ids
    to skip (a resumed run's finished rows). `top_path=True` adds the exact max-path semiring
    (the `top_path` column), at about twice the cost.
    """
    check_model(model, quantity)
    if batch_size < 1 or bucket < 1:
        raise ValueError(f"batch_size and bucket must be >= 1 (got {batch_size}, {bucket})")
    summary = Summary()
    started = time.perf_counter()
    done = set(done)
    rows = []
    for item in items:
        if item.id in done:
            continue
        encoded = encode(tokenizer, item, model.config.max_position_embeddings)
        (summary.skipped if isinstance(encoded, Skipped) else rows).append(encoded)
    if writer is not None and summary.skipped:
        writer.write({"skipped": _skipped_frame(summary.skipped)})
    values = VALUES if top_path else tuple(v for v in VALUES if v != "max_path")
    programs = {has: compiled_program(model, quantity, has, values) for has in (False, True)}
    params = parameters_of(model)
    seen_shapes = set()
    bar = _progress(len(rows), progress)
    for length, batch in _batches(rows, bucket, batch_size, model.config.max_position_embeddings):
        has_contrast = batch[0].contrast_id is not None
        arrays = _stack(batch, length, batch_size, tokenizer.pad_token_id or 0)
        key = (length, batch_size, has_contrast)
        summary.compiles += key not in seen_shapes
        seen_shapes.add(key)
        readout = jax.tree_util.tree_map(np.asarray, programs[has_contrast](params, *arrays).readout)
        tables, overflowed = batch_tables(tokenizer, batch, readout, model.config.num_hidden_layers)
        summary.skipped.extend(overflowed)
        if writer is not None:
            writer.write(tables)
        summary.explained += len(batch) - len(overflowed)
        bar.update(len(batch))
    bar.close()
    summary.seconds = time.perf_counter() - started
    return summary


def encode(tokenizer, item, max_length):
    """An Encoded row, or Skipped with the reason (no/two masks, word pieces, too long)."""
    text = item.text.replace(MASK, tokenizer.mask_token)
    enc = tokenizer(text, return_offsets_mapping=True)
    ids = np.asarray(enc["input_ids"], np.int32)
    masks = np.flatnonzero(ids == tokenizer.mask_token_id)
    if len(masks) != 1:
        return Skipped(item.id, f"needs exactly one mask, found {len(masks)}")
    if len(ids) > max_length:
        return Skipped(item.id, f"{len(ids)} tokens, more than the model's {max_length} positions")
    words = []
    for role, word in (("target", item.target), ("contrast", item.contrast)):
        if word is None:
            words.append(None)
            continue
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1 or pieces[0] == tokenizer.unk_token_id:
            return Skipped(item.id, f"{role} {word!r} is not one token of the vocabulary")
        words.append(int(pieces[0]))
    starts = _word_starts(item.text, text)
    token_at = _token_of_char(enc["offset_mapping"])
    subject = item.meta.get("subject_word")
    attractors = item.meta.get("attractor_words") or ()
    return Encoded(item, ids, int(masks[0]), words[0], words[1],
                   token_at(starts[subject]) if subject is not None and subject < len(starts) else -1,
                   tuple(token_at(starts[w]) for w in attractors if w < len(starts)))


def _word_starts(original, text):
    """Character offsets in `text` of the words of `original.split(" ")` (the mask swap may
    change one word's length, so offsets are recomputed on the text the tokenizer saw)."""
    starts, position = [], 0
    for word in text.split(" "):
        starts.append(position)
        position += len(word) + 1
    return starts


def _token_of_char(offsets):
    def token_at(char):
        for k, (start, end) in enumerate(offsets):
            if start <= char < end and end > start:
                return k
        return -1
    return token_at


def _batches(rows, bucket, batch_size, limit):
    """(padded length, rows) in order of length; rows with and without a contrast apart."""
    groups = {}
    for row in rows:
        length = min(limit, bucket * math.ceil(len(row.ids) / bucket))
        groups.setdefault((length, row.contrast_id is not None), []).append(row)
    for (length, _), group in sorted(groups.items()):
        for start in range(0, len(group), batch_size):
            yield length, group[start:start + batch_size]


def _stack(batch, length, batch_size, pad_id):
    """Program arguments for a batch, padded to `batch_size` rows by repeating the first (their
    results are dropped): every batch of a bucket has one shape, so one compile."""
    rows = list(batch) + [batch[0]] * (batch_size - len(batch))
    ids = np.full((batch_size, length), pad_id, np.int32)
    mask = np.zeros((batch_size, length), np.int32)
    for b, row in enumerate(rows):
        ids[b, :len(row.ids)] = row.ids
        mask[b, :len(row.ids)] = 1
    ints = lambda values: np.asarray(values, np.int32)  # noqa: E731
    return (ids, mask, np.zeros_like(mask), ints([r.mask_position for r in rows]),
            ints([r.target_id for r in rows]), ints([r.contrast_id or 0 for r in rows]))


def _skipped_frame(skipped):
    import pandas as pd
    return pd.DataFrame({"sentence_id": [s.id for s in skipped], "reason": [s.reason for s in skipped]})


def _progress(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, desc="analyze", unit="sentence", disable=not enabled, smoothing=0.1)
