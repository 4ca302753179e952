"""Plain forwards over 400 sentences of varied length: torch against BF eager and BF compiled (CPU).

The loop a user runs: `model(**tokenizer(text, return_tensors=...))` once per sentence, the logits
read to the host. Model: the embedded default model (`bf_bert.default_model.default_model_path()`,
all-MiniLM-L6-v2's encoder with the fitted MLM head), float32; torch's `BertForMaskedLM` (eval,
eager attention) loads the same folder.

Sentences: 400 passages of grammar text (`bf_bert.agreement_grammar.generate_attractors`, seed 0),
deterministic: a target length is drawn uniformly in [10, 80] tokens (`random.Random(0)`), and each
passage takes words from the stream of grammar sentences until it holds that many tokens with
[CLS] and [SEP] (every grammar word is one WordPiece token; the tokenizer confirms each length).
Encodings are made before timing (torch: return_tensors="pt", BF: "np").

Rows, each in a fresh worker process with no persistent compilation cache, two passes over the
sentences (pass 1: cold, every compile included; pass 2: warm):
  torch                          BertForMaskedLM under torch.no_grad()
  bf eager                       BFBertForMaskedLM with model.compiled_forward = False (one kernel per op)
  bf compiled, buckets of 16     the default: one program per multiple of 16 tokens
  bf compiled, powers of two     the same with the bucket rounded up to a power of two
Before timing, each worker's logits on the first sentences are compared with torch's.

  .venv/bin/python benchmarks/forward_lengths.py            # ~5 min on 2 cores, writes results/forward_lengths.json
  .venv/bin/python benchmarks/forward_lengths.py --rows torch,bf16 --sentences 100   # a quick subset
"""

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

import numpy as np

ROWS = {"torch": "torch", "eager": "bf eager", "bf16": "bf compiled, buckets of 16",
        "pow2": "bf compiled, powers of two"}
CHECKED = 5  # sentences whose logits are compared with torch's


def sentences(n, tokenizer, seed=0):
    """n grammar passages with lengths drawn uniformly in [10, 80] tokens ([CLS] and [SEP] included)."""
    from bf_bert.agreement_grammar import generate_attractors

    rng = random.Random(seed)
    stream = iter([w for s in generate_attractors(40 * n, seed=seed) for w in s.words])
    texts = []
    for _ in range(n):
        target = rng.randint(10, 80)
        words = [next(stream) for _ in range(target - 2)]
        text = " ".join(words)
        length = len(tokenizer(text)["input_ids"])
        if length != target:
            raise AssertionError(f"{text!r} has {length} tokens, not {target}: a grammar word is not one token")
        texts.append(text)
    return texts


def run_worker(row, n, out):
    """Two timed passes of one row; writes seconds, logits of the first sentences, load and stats."""
    import jax
    from transformers import AutoTokenizer, BertForMaskedLM, BFBertForMaskedLM, logging

    from bf_bert.default_model import default_model_path

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    folder = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = sentences(n, tokenizer)
    record = {"row": ROWS[row], "load_before": os.getloadavg()}
    if row == "torch":
        import torch

        model = BertForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()
        encodings = [tokenizer(t, return_tensors="pt") for t in texts]

        def forward(encoding):
            with torch.no_grad():
                return model(**encoding).logits.numpy()
        record["threads"] = torch.get_num_threads()
    else:
        from brunoflow.net import compiled
        from transformers import modeling_bf_buckets

        model = BFBertForMaskedLM.from_pretrained(folder)
        model.compiled_forward = row != "eager"
        if row == "pow2":
            modeling_bf_buckets.bucket_length = lambda length, limit: max(length, min(1 << (length - 1).bit_length(),
                                                                                     limit))
        encodings = [dict(tokenizer(t, return_tensors="np")) for t in texts]

        def forward(encoding):
            return np.asarray(model(**encoding).logits.val)
        if row != "eager":
            record["padded_tokens"] = sum(modeling_bf_buckets.bucket_length(e["input_ids"].shape[1], 512)
                                          for e in encodings)
    record["tokens"] = sum(int(e["input_ids"].shape[1]) for e in encodings)
    record["distinct_lengths"] = len({int(e["input_ids"].shape[1]) for e in encodings})
    passes, checked = [], []
    for _ in range(2):
        start = time.perf_counter()
        for i, encoding in enumerate(encodings):
            logits = forward(encoding)
            if not passes and i < CHECKED:
                checked.append(logits.tolist())
        passes.append(time.perf_counter() - start)
    record.update(cold_s=passes[0], warm_s=passes[1], load_after=os.getloadavg(), logits=checked)
    if row in ("bf16", "pow2"):
        record["compiled_stats"] = {k: getattr(compiled.stats, k) for k in ("templates", "programs", "calls",
                                                                            "padded", "eager")}
    record["jax_cache_dir"] = jax.config.jax_compilation_cache_dir
    with open(out, "w") as f:
        json.dump(record, f)


def machine_info():
    from importlib.metadata import version
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            **{pkg: version(pkg) for pkg in ("jax", "jaxlib", "torch", "transformers", "numpy")},
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "forward_lengths.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(args.worker, args.sentences, args.worker_out)
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}  # cold means cold
    result = {"machine": {**machine_info(), "load_before": os.getloadavg()}, "sentences": args.sentences, "rows": {}}
    for row in args.rows.split(","):
        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            subprocess.run([sys.executable, __file__, "--worker", row, "--sentences", str(args.sentences),
                            "--worker-out", tmp.name], check=True, env=env)
            with open(tmp.name) as f:
                result["rows"][row] = json.load(f)
    result["machine"]["load_after"] = os.getloadavg()
    report(result)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")


def report(result):
    rows = result["rows"]
    reference = rows.get("torch")
    if reference is not None:
        for row in rows.values():
            diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(row["logits"],
                                                                                       reference["logits"])]
            row["max_abs_logit_diff_vs_torch"] = max(diffs)
    print(f"{result['sentences']} sentences, {next(iter(rows.values()))['distinct_lengths']} distinct lengths; "
          f"{result['machine']['cpu_count']} cores")
    print(f"{'row':30} {'pass 1 (cold) s':>16} {'pass 2 (warm) s':>16} {'warm/torch':>11} {'ms/sentence':>12} "
          f"{'load before/after':>18}")
    for row in rows.values():
        ratio = row["warm_s"] / reference["warm_s"] if reference else float("nan")
        load = f"{row['load_before'][0]:.2f}/{row['load_after'][0]:.2f}"
        print(f"{row['row']:30} {row['cold_s']:16.1f} {row['warm_s']:16.1f} {ratio:11.2f} "
              f"{1000 * row['warm_s'] / result['sentences']:12.1f} {load:>18}")
        row.pop("logits")
        for key in ("warm_s", "cold_s"):
            row[f"{key[:-2]}_vs_torch"] = row[key] / reference[key] if reference else None
    for key, row in rows.items():
        if "compiled_stats" in row:
            print(f"{row['row']}: {row['compiled_stats']}, padded tokens / tokens = "
                  f"{row['padded_tokens'] / row['tokens']:.2f}")
    print("max |logit - torch's| on the first sentences: "
          + ", ".join(f"{r['row']} {r.get('max_abs_logit_diff_vs_torch', float('nan')):.1e}" for r in rows.values()))
    if max(result["machine"]["load_before"][0], *(r["load_after"][0] for r in rows.values())) > 1.5:
        print("NOTE: load average above 1.5 during the run: the machine was shared, times are inflated")


if __name__ == "__main__":
    main()
