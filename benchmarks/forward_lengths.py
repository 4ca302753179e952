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

Rows, each in its own worker process with no persistent compilation cache: pass 1 over the
sentences is cold (every compile included; the rows take turns, one at a time), then --rounds warm
passes run round-robin across the rows, so a change in the machine's load hits every row alike;
the warm time is their median:
  torch                          BertForMaskedLM under torch.no_grad(), default threads (the reference)
  torch, 1 thread                the same with torch.set_num_threads(1): on a shared machine torch's
                                 spinning OpenMP threads suffer most from a busy core
  bf eager                       BFBertForMaskedLM with model.compiled_forward = False (one kernel per op)
  bf compiled, buckets of 16     the default: one program per multiple of 16 tokens
  bf compiled, powers of two     the same with the bucket rounded up to a power of two
Before timing, each worker's logits on the first sentences are compared with torch's.

  .venv/bin/python benchmarks/forward_lengths.py            # ~10 min on 2 cores, writes results/forward_lengths.json
  .venv/bin/python benchmarks/forward_lengths.py --rows torch,bf16 --sentences 100 --out /tmp/f.json   # a subset
"""

import argparse
import os
import random
import statistics
import time

import numpy as np

from harness import Worker, machine_info, write_json

ROWS = {"torch": "torch", "torch1": "torch, 1 thread", "eager": "bf eager", "bf16": "bf compiled, buckets of 16",
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


def serve(conn, row, n):
    """A worker: loads its row's model and sentences, then runs one timed pass per "pass" command."""
    try:
        forward, encodings, info, stats = _setup(row, n)
        conn.send(("ok", info))
        passes = 0
        while True:
            command = conn.recv()
            if command[0] == "exit":
                return
            checked = []
            start = time.perf_counter()
            for i, encoding in enumerate(encodings):
                logits = forward(encoding)
                if passes == 0 and i < CHECKED:
                    checked.append(logits.tolist())
            seconds = time.perf_counter() - start
            passes += 1
            conn.send(("ok", {"seconds": seconds, "logits": checked, **stats()}))
    except Exception:  # noqa: BLE001 (reported to the parent)
        import traceback
        conn.send(("error", traceback.format_exc()))


def _setup(row, n):
    from transformers import AutoTokenizer, BertForMaskedLM, BFBertForMaskedLM, logging

    from bf_bert.default_model import default_model_path

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    folder = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = sentences(n, tokenizer)
    info = {"row": ROWS[row]}
    stats = dict
    if row in ("torch", "torch1"):
        import torch

        if row == "torch1":
            torch.set_num_threads(1)
        model = BertForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()
        encodings = [tokenizer(t, return_tensors="pt") for t in texts]

        def forward(encoding):
            with torch.no_grad():
                return model(**encoding).logits.numpy()
        info["threads"] = torch.get_num_threads()
    else:
        import jax

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
            info["padded_tokens"] = sum(modeling_bf_buckets.bucket_length(e["input_ids"].shape[1], 512)
                                        for e in encodings)

            def stats():
                return {"compiled_stats": {k: getattr(compiled.stats, k) for k in (
                    "templates", "programs", "calls", "padded", "eager")}}
        info["jax_cache_dir"] = jax.config.jax_compilation_cache_dir
    info["tokens"] = sum(int(e["input_ids"].shape[1]) for e in encodings)
    info["distinct_lengths"] = len({int(e["input_ids"].shape[1]) for e in encodings})
    return forward, encodings, info, stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3, help="warm passes per row, round-robin across rows")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "forward_lengths.json"))
    args = parser.parse_args()
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)  # cold means cold: the workers inherit this
    result = {"machine": {**machine_info(memory=False), "load_before": os.getloadavg()}, "sentences": args.sentences,
              "rounds": args.rounds, "rows": {}}
    workers = {row: Worker(row, args.sentences, serve=serve) for row in args.rows.split(",")}
    try:
        rows = result["rows"]
        for row, worker in workers.items():
            rows[row] = {**worker.receive(), "warm_s": [], "load": []}
        for row, worker in workers.items():  # one at a time: a cold pass is every compile of its row
            before = os.getloadavg()
            cold = worker.ask("pass")
            rows[row].update(cold_s=cold.pop("seconds"), logits=cold.pop("logits"))
            rows[row]["load"].append(("cold", before, os.getloadavg()))
        for _ in range(args.rounds):  # round-robin: a change in the machine's load hits every row alike
            for row, worker in workers.items():
                before = os.getloadavg()
                warm = worker.ask("pass")
                rows[row]["warm_s"].append(warm.pop("seconds"))
                warm.pop("logits")
                rows[row]["load"].append(("warm", before, os.getloadavg()))
                rows[row].update(warm)
    finally:
        for worker in workers.values():
            worker.close()
    result["machine"]["load_after"] = os.getloadavg()
    report(result)
    write_json(args.out, result, indent=1)
    print(f"wrote {args.out}")


def report(result):
    rows = result["rows"]
    reference = rows.get("torch")
    for row in rows.values():
        row["warm_median_s"] = statistics.median(row["warm_s"])
        row["max_load"] = max(max(before[0], after[0]) for _, before, after in row["load"])
        if reference is not None:
            row["max_abs_logit_diff_vs_torch"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                                                     for a, b in zip(row["logits"], reference["logits"]))
    print(f"{result['sentences']} sentences, {next(iter(rows.values()))['distinct_lengths']} distinct lengths; "
          f"{result['machine']['cpu_count']} cores; warm = median of {result['rounds']} round-robin passes")
    print(f"{'row':28} {'cold s':>8} {'warm s':>8} {'min warm':>9} {'cold/torch':>11} {'warm/torch':>11} "
          f"{'ms/sentence':>12} {'max load':>9}")
    for row in rows.values():
        row["cold_vs_torch"] = row["cold_s"] / reference["cold_s"] if reference else None
        row["warm_vs_torch"] = row["warm_median_s"] / reference["warm_median_s"] if reference else None
        print(f"{row['row']:28} {row['cold_s']:8.1f} {row['warm_median_s']:8.1f} {min(row['warm_s']):9.1f} "
              f"{row['cold_vs_torch'] or float('nan'):11.2f} {row['warm_vs_torch'] or float('nan'):11.2f} "
              f"{1000 * row['warm_median_s'] / result['sentences']:12.1f} {row['max_load']:9.2f}")
        row.pop("logits")
    for row in rows.values():
        if "compiled_stats" in row:
            print(f"{row['row']}: {row['compiled_stats']}, padded tokens / tokens = "
                  f"{row['padded_tokens'] / row['tokens']:.2f}")
    print("max |logit - torch's| on the first sentences: "
          + ", ".join(f"{r['row']} {r.get('max_abs_logit_diff_vs_torch', float('nan')):.1e}" for r in rows.values()))
    if max(r["max_load"] for r in rows.values()) > 1.5:
        print("NOTE: load average above 1.5 during the run: the machine was shared, times are inflated")


if __name__ == "__main__":
    main()
