"""What a dataset-scale analysis costs: `bf-bert analyze sva` on 1,000 agreement sentences (CPU).

The data: 1,000 sentences of the project's agreement grammar with 1–4 attractors
(`write_grammar_dataset(path, 1000, seed=0, max_attractors=4)`), 10–26 tokens. The model: the
embedded default (all-MiniLM-L6-v2, top 2 layers and MLM head trained here) in float32, the analysis default. The
quantity: logit(correct verb) − logit(wrong verb) at the mask, per row.

Rows:
  analyze sva, cold            the CLI in a fresh process with an empty compilation cache: model
                               load, reading, every compile, 1,000 explanations, tables, figures
  analyze sva, warm disk cache the same command again in a new process: compiled programs come
                               from the on-disk cache
  analyze sva --top-path       the same with the exact top path (max_path), warm disk cache for the
                               other programs (its own compile is cold)
  explain per sentence         `explain()` called once per sentence in one process (warm: after
                               the first call of each length), timed on a sample, times 1,000
  torch gradient per sentence  transformers' BertForMaskedLM (float32), autograd of the same q with
                               respect to the input embeddings, timed on a sample, times 1,000

    .venv/bin/python benchmarks/analyze.py            # about 10 minutes on 2 cores; writes results/analyze.json
    .venv/bin/python benchmarks/analyze.py --n 200    # a smaller dataset (a smoke run, JSON to a temp file)
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from harness import machine_info, write_json

HERE = os.path.dirname(os.path.abspath(__file__))


def run_cli(data, out, cache, *extra):
    env = dict(os.environ, BF_BERT_CACHE=cache, JAX_COMPILATION_CACHE_DIR=os.path.join(cache, "jax"))
    started = time.perf_counter()
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "bf-bert"), "analyze", "sva", "--data", data,
                           "--out", out, *extra], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"bf-bert analyze failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout.strip().splitlines()[0]


def per_sentence_explain(items, sample):
    from bf_bert.analysis.items import MASK
    from bf_bert.analysis.sva import load_model
    from bf_bert.explain import explain
    model, tokenizer, _ = load_model(None, "float32")
    chosen = items[:sample]
    for item in chosen:  # the first call of each length compiles; these are not timed
        explain(model, tokenizer, item.text.replace(MASK, tokenizer.mask_token), item.target, item.contrast)
    started = time.perf_counter()
    for item in chosen:
        explain(model, tokenizer, item.text.replace(MASK, tokenizer.mask_token), item.target, item.contrast)
    return (time.perf_counter() - started) / len(chosen)


def per_sentence_torch(items, sample):
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    from bf_bert.analysis.items import MASK
    from bf_bert.default_model import default_model_path
    folder = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = BertForMaskedLM.from_pretrained(folder).eval()

    def gradient(item):
        encoded = tokenizer(item.text.replace(MASK, tokenizer.mask_token), return_tensors="pt")
        embeds = model.bert.embeddings.word_embeddings(encoded["input_ids"]).detach().requires_grad_(True)
        logits = model(inputs_embeds=embeds, attention_mask=encoded["attention_mask"]).logits[0]
        at = int((encoded["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0])
        ids = tokenizer.convert_tokens_to_ids([item.target, item.contrast])
        q = logits[at, ids[0]] - logits[at, ids[1]]
        return torch.autograd.grad(q, embeds)[0]

    chosen = items[:sample]
    gradient(chosen[0])
    started = time.perf_counter()
    for item in chosen:
        gradient(item)
    return (time.perf_counter() - started) / len(chosen)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="sentences (default 1000)")
    parser.add_argument("--sample", type=int, default=50, help="sentences timed for the per-sentence rows")
    parser.add_argument("--out", default=None, help="JSON path (default results/analyze.json; temp for --n < 1000)")
    args = parser.parse_args()
    out_json = args.out or (os.path.join(HERE, "results", "analyze.json") if args.n >= 1000
                            else os.path.join(tempfile.gettempdir(), "analyze_quick.json"))
    from bf_bert.analysis import read_items, write_grammar_dataset
    work = tempfile.mkdtemp(prefix="bf-analyze-bench-")
    data = str(write_grammar_dataset(os.path.join(work, "grammar.jsonl"), args.n, 0, max_attractors=4))
    items = read_items(data).items
    load_before = os.getloadavg()
    cache = os.path.join(work, "cache")
    rows = {}
    for name, extra in (("analyze sva, cold", ()), ("analyze sva, warm disk cache", ()),
                        ("analyze sva --top-path", ("--top-path",))):
        seconds, line = run_cli(data, os.path.join(work, name.replace(" ", "_")), cache, *extra)
        rows[name] = {"seconds": seconds, "sentences_per_second": args.n / seconds, "cli_summary": line}
        print(f"{name:32s} {seconds:8.1f} s   {args.n / seconds:6.2f} sentences/s   ({line})", flush=True)
    for name, fn in (("explain per sentence (x n)", per_sentence_explain),
                     ("torch gradient per sentence (x n)", per_sentence_torch)):
        each = fn(items, args.sample)
        rows[name] = {"seconds": each * args.n, "seconds_per_sentence": each, "sample": args.sample,
                      "sentences_per_second": 1 / each}
        print(f"{name:32s} {each * args.n:8.1f} s   {1 / each:6.2f} sentences/s   (sample of {args.sample}, "
              f"{1e3 * each:.0f} ms each)", flush=True)
    result = {"n": args.n, "rows": rows, "machine": machine_info(), "load_before": load_before,
              "load_after": os.getloadavg()}
    write_json(out_json, result)
    print(f"load average before {load_before[0]:.2f}, after {result['load_after'][0]:.2f}; wrote {out_json}")


if __name__ == "__main__":
    main()
