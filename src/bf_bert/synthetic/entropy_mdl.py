"""`bf-bert reproduce entropy-vs-mdl`: the paper's §5.3 as one resumable run over tasks × seeds.

Per task and seed (out/runs/<task>/seed<k>/):

    blocks.json     the online code, block by block (a block's bits are kept once computed)
    model/          the model trained on the whole training set (save_pretrained), training.json
    tokens.parquet  validation example × token: the token's gradient-graph entropy
    run.json        the run's summary row; its presence says the run is complete

and over all runs: runs.parquet, blocks.parquet, examples.parquet, summary.json,
entropy_vs_mdl.png and report.md (entropy_mdl_report). A killed run continues where it stopped;
settings that would change a kept result are refused, not mixed.

Model: the paper's §5.3 setting (2 layers, hidden 64, 4 heads; 36 outputs for every task, so that
all tasks share one gradient graph), trained with bf.opt (mdl.BlockTrainer).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..analysis.store import _write_json, _write_parquet
from . import ENTROPY_MDL_DEFAULTS as DEFAULTS
from . import mdl, path_entropy, train
from .reproduce import RunError, _arrow, _diff
from .tasks import difficulty_task

# Du et al. 2023, §5.3 (their experiment code): 2 layers, hidden 64, 4 heads, no dropout; the
# intermediate width is not given: 4 × hidden, as BERT's ratio.
MODEL = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=256,
             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
SPLIT_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_006}   # independent seeded streams


def config_for(vocab_size, seq_len, **overrides):
    """One BertConfig for every task: positions for exactly seq_len, and seq_len outputs (the most
    classes a §5.3 task has), so the graph does not change with the task."""
    task = difficulty_task("Contains1", vocab_size=vocab_size, seq_len=seq_len)
    config = train.bert_config(task, **{**MODEL, **overrides})
    config.num_labels = seq_len
    return config


def run_all(out_dir, *, tasks=DEFAULTS["tasks"], seeds=DEFAULTS["seeds"], vocab_size=DEFAULTS["vocab_size"],
            seq_len=DEFAULTS["seq_len"], train_size=DEFAULTS["train_size"], val_size=DEFAULTS["val_size"],
            test_size=DEFAULTS["test_size"], epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"],
            learning_rate=DEFAULTS["learning_rate"], fractions=mdl.FRACTIONS, model_overrides=None, command=None,
            log=None, progress_bar=False):
    """Every (task, seed) run, then the tables, figure and report; returns {"runs": DataFrame,
    "correlation": dict, "report": path, "figure": path}."""
    from . import entropy_mdl_report as report
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    task_objs = [difficulty_task(t, vocab_size=vocab_size, seq_len=seq_len) for t in tasks]  # bad names fail first
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = config_for(vocab_size, seq_len, **(model_overrides or {}))
    settings = {"vocab_size": vocab_size, "seq_len": seq_len, "train_size": train_size, "val_size": val_size,
                "test_size": test_size, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                "fractions": list(fractions),
                "model": {k: getattr(config, k) for k in (*MODEL, "num_labels", "vocab_size")}}
    trainer = None
    bar = _bar(len(task_objs) * len(seeds), progress_bar)
    started = time.perf_counter()
    try:
        for seed in seeds:           # seed-major: a partial run holds whole seeds
            for task in task_objs:
                folder = out / "runs" / task.name / f"seed{seed}"
                bar.set_postfix_str(f"{task.name} seed {seed}")
                if not _finished(folder, settings, log):
                    trainer = trainer or mdl.BlockTrainer(config, learning_rate, batch_size)
                    _run_one(folder, task, seed, settings, trainer, lambda m: _log(bar, log, m))
                bar.update()
    finally:
        bar.close()
    log(f"all {len(task_objs) * len(seeds)} runs done in {time.perf_counter() - started:.0f} s (this call)")
    tables = _collect(out, [t.name for t in task_objs], seeds)
    for name, frame in tables.items():
        _write_parquet(_arrow(frame), out / f"{name}.parquet")
    correlation = report.correlations(tables["runs"])
    _write_json(out / "summary.json", {"settings": settings, "correlation": correlation,
                                       "runs": tables["runs"].to_dict(orient="records")})
    figure = report.figure(tables["runs"], correlation, out / "entropy_vs_mdl.png")
    command = command or f"bf-bert reproduce entropy-vs-mdl --out {out_dir}"
    path = report.write_report(out / "report.md", tables["runs"], correlation, settings, figure, command)
    log(f"wrote {path}")
    return {"runs": tables["runs"], "correlation": correlation, "report": path, "figure": figure}


def splits(task, seed, settings):
    return {name: task.generate(settings[f"{name}_size"], seed + offset) for name, offset in SPLIT_OFFSETS.items()}


def _finished(folder, settings, log):
    record = folder / "run.json"
    if not record.is_file():
        return False
    kept = json.loads(record.read_text())
    _same_settings(folder, kept["settings"], settings)
    log(f"[{kept['task']} seed {kept['seed']}] kept from an earlier run")
    return True


def _same_settings(folder, kept, settings):
    if kept != json.loads(json.dumps(settings)):
        raise RunError(f"{folder} holds a run with other settings ({_diff(kept, settings)}); "
                       "pass the same settings, or a new --out")


def _run_one(folder, task, seed, settings, trainer, log):
    tag = f"[{task.name} seed {seed}]"
    folder.mkdir(parents=True, exist_ok=True)
    data = splits(task, seed, settings)
    train_ids, train_labels = data["train"].ids, data["train"].labels
    epochs, classes = settings["epochs"], task.num_labels

    # 1. the online code, block by block; a finished block is kept
    blocks_path = folder / "blocks.json"
    kept = (json.loads(blocks_path.read_text()) if blocks_path.is_file()
            else {"settings": settings, "bits": {}, "seconds": {}})
    _same_settings(folder, kept["settings"], settings)

    def score(start, stop):
        if str(start) not in kept["bits"]:
            began = time.perf_counter()
            values, _ = trainer.fit(train_ids[:start], train_labels[:start], epochs, _fit_seed(seed, start))
            logits = trainer.logits(values, train_ids[start:stop])
            kept["bits"][str(start)] = float(mdl.codelength_bits(logits, train_labels[start:stop], classes).sum())
            kept["seconds"][str(start)] = time.perf_counter() - began
            _write_json(blocks_path, kept)
            log(f"{tag} block {start}..{stop}: {kept['bits'][str(start)]:.1f} bits (model trained on {start})")
        return kept["bits"][str(start)]

    rows = mdl.online_codelength(len(train_labels), classes, score, settings["fractions"])
    mdl_seconds = float(sum(kept["seconds"].values()))

    # 2. the model trained on all the training data: the one whose graph is measured
    record = folder / "model" / "training.json"
    if record.is_file():
        fit = json.loads(record.read_text())
        _same_settings(folder, fit["settings"], settings)
        from transformers import BFBertForSequenceClassification
        values = [p.val for p in BFBertForSequenceClassification.from_pretrained(folder / "model").parameters()]
    else:
        began = time.perf_counter()
        values, losses = trainer.fit(train_ids, train_labels, epochs, _fit_seed(seed, len(train_labels)))
        trainer.load(values).save_pretrained(folder / "model")
        fit = {"settings": settings, "losses": losses, "train_seconds": time.perf_counter() - began}
        _write_json(record, fit)
        log(f"{tag} final model trained in {fit['train_seconds']:.1f} s, last epoch loss {losses[-1]:.4f}")

    # 3. the gradient graph's entropy on the validation set, and accuracies
    began = time.perf_counter()
    val = data["val"]
    arrays = path_entropy.example_entropies(trainer.model, values, val.ids, val.labels)
    entropy_seconds = time.perf_counter() - began
    val_pred = arrays["logits"][:, :classes].argmax(-1)
    test_pred = trainer.logits(values, data["test"].ids)[:, :classes].argmax(-1)
    tokens = _token_rows(task, val, arrays["token_entropy"])
    _write_parquet(_arrow(tokens), folder / "tokens.parquet")
    per_example = arrays["token_entropy"].sum(1)
    summary = {
        "task": task.name, "family": task.name.split("-")[0], "classes": classes, "seed": seed,
        **mdl.summary(rows, classes),
        "val_accuracy": float((val_pred == val.labels).mean()),
        "test_accuracy": float((test_pred == data["test"].labels).mean()),
        "entropy": float(per_example.mean()), "entropy_sd": float(per_example.std()),
        "token_entropy": float(arrays["token_entropy"].mean()),
        "val_loss": float(arrays["loss"].mean()),
        "mdl_seconds": mdl_seconds, "train_seconds": fit["train_seconds"], "entropy_seconds": entropy_seconds,
    }
    _write_json(folder / "blocks.json", {**kept, "rows": rows})
    _write_json(folder / "run.json", {**summary, "settings": settings, "val_prediction": val_pred.tolist()})
    log(f"{tag} MDL {summary['mdl_bits']:.0f} bits (uniform {summary['uniform_bits']:.0f}), validation accuracy "
        f"{summary['val_accuracy']:.3f}, entropy {summary['entropy']:.1f} nats per example")


def _fit_seed(seed, prefix):
    """Initial weights and batch order of the model trained on the first `prefix` examples: its
    own stream per prefix (the full-data model's is prefix = train_size)."""
    return seed * 1_000_003 + prefix


def _token_rows(task, split, entropy):
    n, s = entropy.shape
    grid = np.indices((n, s))
    types = np.asarray(task.token_types)[task.token_type_of(split.ids)]
    return {"example_id": grid[0].ravel(), "token_index": grid[1].ravel(), "token": split.ids.ravel(),
            "token_type": types.ravel(), "label": split.labels[grid[0]].ravel(), "entropy": entropy.ravel()}


def _collect(out, task_names, seeds):
    """runs (one row per task × seed), blocks and examples, read back from the run folders."""
    import pandas as pd
    runs, blocks, examples = [], [], []
    for seed in seeds:
        for name in task_names:
            folder = out / "runs" / name / f"seed{seed}"
            record = json.loads((folder / "run.json").read_text())
            prediction = record.pop("val_prediction")
            record.pop("settings")
            runs.append(record)
            for row in json.loads((folder / "blocks.json").read_text())["rows"]:
                blocks.append({"task": name, "seed": seed, **row})
            tokens = pd.read_parquet(folder / "tokens.parquet")
            per = tokens.groupby("example_id", sort=True).agg(label=("label", "first"), entropy=("entropy", "sum"))
            examples.append(per.reset_index().assign(task=name, seed=seed, prediction=prediction,
                                                     correct=lambda f: f["prediction"] == f["label"]))
    return {"runs": pd.DataFrame(runs), "blocks": pd.DataFrame(blocks),
            "examples": pd.concat(examples, ignore_index=True)}


def _bar(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, desc="entropy-vs-mdl", unit="run", disable=not enabled, file=sys.stderr)


def _log(bar, log, message):
    if bar.disable:
        log(message)
    else:
        bar.write(message, file=sys.stderr)
