"""`bf-bert reproduce synthetic-top-path`: the paper's §5.1 validation as one resumable run.

    out/bf.opt/model/          the BF BERT trained with bf.opt (save_pretrained), training.json beside it
    out/bf.opt/parts/...       Parquet parts (analysis.store): `sentences` (one row per held-out
                               example) and `branches` (example × token × layer × branch)
    out/torch/...              the same for the model trained in torch and loaded with
                               BFBertForSequenceClassification.from_pretrained
    out/summary.parquet        means per variant × layer × token type × branch
    out/top_path_by_token_type.png, out/report.md

A finished stage is kept: a model with its training.json is not trained again, and analysed
examples are not analysed again (the store's resume), so a killed run continues where it
stopped. Settings that would change a kept result are refused, not mixed.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..analysis.store import TableWriter, _write_json, _write_parquet, read_table
from . import DEFAULTS, report, top_path, train
from .tasks import get_task

VARIANTS = ("bf.opt", "torch")


class RunError(ValueError):
    """A run folder that holds results of other settings."""


def reproduce(out_dir, *, task=DEFAULTS["task"], train_size=DEFAULTS["train_size"],
              heldout_size=DEFAULTS["heldout_size"], epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"],
              learning_rate=DEFAULTS["learning_rate"], seed=DEFAULTS["seed"], variants=VARIANTS, max_path=True,
              analysis_batch=100, model_overrides=None, command=None, log=None):
    """Train (per variant), analyse the held-out set, write summary, figure and report; returns
    {"facts": per variant, "summary": DataFrame, "report": path, "figure": path}."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    task_obj = get_task(task)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants must be among {VARIANTS}, got {list(variants)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_split, heldout = task_obj.splits(train_size, heldout_size, seed)
    config = train.bert_config(task_obj, **(model_overrides or {}))
    settings = {"task": task, "vocab_size": task_obj.vocab_size, "seq_len": task_obj.seq_len,
                "train_size": train_size, "heldout_size": heldout_size, "epochs": epochs, "batch_size": batch_size,
                "learning_rate": learning_rate, "seed": seed,
                "model": {k: getattr(config, k) for k in (*train.MODEL, "vocab_size", "max_position_embeddings")}}
    facts, summaries = {}, {}
    for variant in variants:
        folder = out / variant
        fact = _trained(variant, folder, config, train_split, heldout, settings, log)
        fact.update(_analysed(variant, folder, task_obj, heldout, settings, max_path, analysis_batch, log))
        facts[variant] = fact
        branches = read_table(folder, "branches")
        summaries[variant] = top_path.summarize(branches, task_obj.token_types)
    summary = _summary_table(summaries)
    _write_parquet(_arrow(summary), out / "summary.parquet")
    figure = report.figure(summaries, out / "top_path_by_token_type.png", task_obj.token_types)
    command = command or f"bf-bert reproduce synthetic-top-path --out {out_dir}"
    path = report.write_report(out / "report.md", summaries, facts, figure, task_obj.token_types, command)
    log(f"wrote {path}")
    return {"facts": facts, "summary": summary, "report": path, "figure": figure}


def _trained(variant, folder, config, split, heldout, settings, log):
    """Train `variant` into folder/model unless a finished training with these settings is there."""
    record = folder / "model" / "training.json"
    if record.is_file():
        kept = json.loads(record.read_text())
        if kept["settings"] != json.loads(json.dumps(settings)):
            raise RunError(f"{folder} holds a model trained with other settings ({_diff(kept['settings'], settings)}); "
                           "pass the same settings, or a new --out")
        log(f"[{variant}] trained model kept from an earlier run ({kept['train_seconds']:.1f} s of training)")
        return {k: kept[k] for k in ("train_seconds", "epochs", "trainer", "losses", "torch_correct") if k in kept}
    epochs, progress = settings["epochs"], _epoch_logger(variant, settings["epochs"], log)
    arguments = (split, epochs, settings["batch_size"], settings["learning_rate"], settings["seed"], progress)
    log(f"[{variant}] training on {len(split):,} examples, {epochs} epochs")
    extra = {}
    if variant == "bf.opt":
        from transformers import BFBertForSequenceClassification
        model = BFBertForSequenceClassification(config)
        history = train.train_bf(model, *arguments)
        trainer = "bf.opt.Adam, jitted step"
    else:
        model, history = train.train_torch(config, *arguments)
        extra["torch_correct"] = int((train.predict_torch(model, heldout.ids) == heldout.labels).sum())
        trainer = "torch.optim.Adam"
    model.save_pretrained(folder / "model")
    kept = {"settings": settings, "train_seconds": history.seconds, "epochs": epochs, "trainer": trainer,
            "losses": history.losses, **extra}
    _write_json(record, kept)  # last: its presence says the model beside it is complete
    log(f"[{variant}] trained in {history.seconds:.1f} s, final epoch loss {history.losses[-1]:.4f}")
    return {k: kept[k] for k in ("train_seconds", "epochs", "trainer", "losses", *extra)}


def _analysed(variant, folder, task, heldout, settings, max_path, batch, log):
    """Analyse every held-out example not yet in folder's tables, with the saved model loaded in BF."""
    from transformers import BFBertForSequenceClassification
    writer = TableWriter(folder, config={"variant": variant, **settings, "max_path": bool(max_path)}, resume=True)
    done = writer.done_ids()
    todo = [k for k in range(len(heldout)) if str(k) not in done]
    if todo:
        model = BFBertForSequenceClassification.from_pretrained(folder / "model")
        log(f"[{variant}] analysing {len(todo):,} held-out examples ({len(heldout) - len(todo):,} kept)")
        types = task.token_type_of(heldout.ids)
        for start in range(0, len(todo), batch):
            rows = np.asarray(todo[start:start + batch])
            began = time.perf_counter()
            arrays = top_path.analyze(model, heldout.ids[rows], heldout.labels[rows], with_max_path=max_path,
                                      batch_size=len(rows))
            seconds = time.perf_counter() - began
            long = top_path.long_rows(arrays, heldout.ids[rows], heldout.labels[rows], types[rows],
                                      task.token_types, example_ids=rows)
            long["sentence_id"] = long["example_id"].astype(str)
            predictions = arrays["logits"].argmax(-1)
            writer.write({"branches": _arrow(long), "sentences": _arrow({
                "sentence_id": rows.astype(str), "label": heldout.labels[rows], "prediction": predictions,
                "correct": predictions == heldout.labels[rows], "logit_0": arrays["logits"][:, 0],
                "logit_1": arrays["logits"][:, 1], "seconds": np.full(len(rows), seconds / len(rows))})})
            log(f"[{variant}] analysed {len(heldout) - len(todo) + start + len(rows):,}/{len(heldout):,}")
    sentences = read_table(folder, "sentences")
    return {"correct": int(sentences["correct"].sum()), "heldout": len(sentences),
            "analysis_seconds": float(sentences["seconds"].sum())}


def _epoch_logger(variant, epochs, log):
    def progress(epoch, loss):
        if epoch == 0 or (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            log(f"[{variant}] epoch {epoch + 1}/{epochs}: mean training loss {loss:.4f}")
    return progress


def _summary_table(summaries):
    import pandas as pd
    return pd.concat([s.assign(variant=name) for name, s in summaries.items()], ignore_index=True)


def _arrow(columns):
    import pyarrow as pa
    if hasattr(columns, "to_dict"):  # a DataFrame
        return pa.Table.from_pandas(columns, preserve_index=False)
    return pa.table({k: np.asarray(v) for k, v in columns.items()})


def _diff(old, new):
    new = json.loads(json.dumps(new))
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} here" for k in keys[:4])

