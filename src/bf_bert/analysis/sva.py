"""The subject–verb agreement study as one call: read a dataset, explain every row, write tables.

    analyze_sva("lgd_dataset.tsv", "runs/lgd", model="path/to/bert-base-uncased", shard="0/4", resume=True)

is what `bf-bert analyze sva` runs. Reading, sharding, the compiled explanation program and the
Parquet store are each their own module; this one wires them and records the run's config, so
a resumed or merged run can refuse to mix results of different settings.
"""

import os

from .items import Skipped
from .runner import analyze
from .shards import resolve_shard, select
from .store import TableWriter

DEFAULT_MODEL_LABEL = "all-MiniLM-L6-v2 + top layers, MLM head trained here (embedded default; not BERT-base)"


def load_model(model=None, dtype="float32"):
    """(model, tokenizer, label) from a folder, a cached hub id, or the embedded default (None)."""
    from ..fill_mask import load_masked_lm, load_tokenizer

    if model is None:
        from ..default_model import default_model_path
        folder, label = default_model_path(), DEFAULT_MODEL_LABEL
    else:
        folder, label = model, str(model)
    # a hub id is read from the local cache only: transformers would otherwise ask the network first
    options = {} if os.path.isdir(folder) else {"local_files_only": True}
    return (load_masked_lm(folder, dtype=dtype, **options), load_tokenizer(folder, **options),
            label)


def analyze_sva(data, out_dir, *, model=None, format=None, limit=None, shard=None, resume=False, batch_size=8,
                bucket=16, top_path=False, dtype="float32", columns=None, progress=True):
    """Explain logit(correct verb) − logit(wrong verb) at the mask of every row of `data`.

    `data`: a local file (TSV/CSV/JSONL/Parquet), a saved HF dataset folder, or a
    `datasets.Dataset`; `format`: lgd | gulordava | grammar | columns (detected when None);
    `columns`: the generic reader's column names. `shard`: "i/n" (0-based), else the SLURM
    array variables, else the whole dataset. Returns the runner's Summary; tables are in
    `out_dir` (`bf_bert.analysis.store.read_table`, or `merge` after sharded runs).
    """
    import jax

    # x64 for this call only, when float64 is asked for: a caller's process keeps its own setting
    with jax.enable_x64(dtype == "float64"):
        return _analyze_sva(data, out_dir, model, format, limit, shard, resume, batch_size, bucket, top_path,
                            dtype, columns, progress)


def _analyze_sva(data, out_dir, model, format, limit, shard, resume, batch_size, bucket, top_path, dtype, columns,
                 progress):
    from . import read_items

    model_obj, tokenizer, label = load_model(model, dtype)
    shard = resolve_shard(shard)
    read = read_items(data, format=format, limit=limit, **(columns or {}))
    config = {"task": "sva", "model": label,
              "data": os.fspath(data) if isinstance(data, (str, os.PathLike)) else repr(data),
              "format": read.format, "limit": limit, "columns": columns or {}, "top_path": bool(top_path),
              "dtype": dtype, "bucket": bucket, "quantity": "logit"}
    writer = TableWriter(os.fspath(out_dir), shard=shard, config=config, resume=resume)
    done = writer.done_ids()
    unread = [s for s in select(read.skipped, shard, key=lambda s: s.id) if s.id not in done]
    if unread:
        writer.write({"skipped": [{"sentence_id": s.id, "reason": s.reason} for s in unread]})
    items = list(select(read.items, shard))
    summary = analyze(model_obj, tokenizer, items, writer=writer, batch_size=batch_size, bucket=bucket,
                      top_path=top_path, progress=progress, done=done)
    summary.skipped[:0] = [Skipped(s.id, s.reason) for s in unread]
    summary.model_label = label
    return summary
