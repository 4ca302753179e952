"""A new user's first explanation: `explain` in a fresh process, without and with the disk cache (CPU).

Each measurement is its own Python process (nothing compiled in memory), on the embedded default
model in float32, with explain.py's agreement sentence of `seq` tokens (q = logit("are") - logit("is")):

  no disk cache        the process compiles everything it runs (the JAX persistent cache is off)
  disk cache, filling  JAX's persistent compilation cache on, in an empty temporary folder: the
                       first process, which compiles and writes every program
  disk cache, second   a second process on the folder the first filled: what a user's second run
                       of the CLI or a notebook restart costs

Per process: the wall time of the first `explain` call (model and tokenizer already loaded; loading
is reported apart), the time of a second `explain` of another text of the same bucket (no compile),
then of a text of the next bucket (`seq` + 16 tokens: a new length in a process that has explained
one already, whose program and encoder kernels compile while the head's kernels are reused),
brunoflow's kernel-cache misses of the first call (kernels new to the process: compiled, or loaded
from the disk cache), how many backward kernels the disk cache holds when the process ends (both
lengths'), and the process's peak RSS.

  .venv/bin/python benchmarks/explain_cold.py             # seq 16 and 128 (~4 min on 2 cores)
  .venv/bin/python benchmarks/explain_cold.py --seqs 16   # one length
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from harness import CONTRAST, TARGET, load_before_timing, peak_rss_mb, sentence, write_json

SEQS = (16, 128)
MODES = ("no disk cache", "disk cache, filling", "disk cache, second")


def child(seq, cache_dir):
    """One fresh process: load, explain twice, print a JSON line."""
    started = time.perf_counter()
    import jax
    import transformers
    from transformers import AutoTokenizer, BFBertForMaskedLM

    import brunoflow as bf
    from bf_bert.default_model import default_model_path
    from bf_bert.explain import explain

    if cache_dir:
        from bf_bert.compile_cache import enable_compilation_cache

        os.environ["JAX_COMPILATION_CACHE_DIR"] = cache_dir
        enable_compilation_cache()
    transformers.logging.set_verbosity_error()
    path = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = BFBertForMaskedLM.from_pretrained(path)
    text, _ = sentence(tokenizer, seq)
    loaded = time.perf_counter() - started

    bf.kernel_stats.reset()
    start = time.perf_counter()
    first = explain(model, tokenizer, text, target=TARGET, contrast=CONTRAST)
    first_s = time.perf_counter() - start
    misses = bf.kernel_stats.misses
    other = text.replace("the keys", "the key", 1)  # same length, another sentence
    start = time.perf_counter()
    explain(model, tokenizer, other, target=CONTRAST, contrast=TARGET)
    second_s = time.perf_counter() - start
    longer, _ = sentence(tokenizer, seq + 16)
    start = time.perf_counter()
    explain(model, tokenizer, longer, target=TARGET, contrast=CONTRAST)
    next_length_s = time.perf_counter() - start
    print(json.dumps({"load_s": loaded, "first_explain_s": first_s, "second_explain_s": second_s,
                      "next_length_s": next_length_s,
                      "kernel_misses": misses, "q": first.value, "top_path_hops": len(first.top_path),
                      "peak_rss_mb": peak_rss_mb(),
                      "jax": jax.__version__}))


def measure(seq, cache_dir):
    command = [sys.executable, os.path.abspath(__file__), "--child", str(seq)] + (["--cache", cache_dir] if cache_dir else [])
    env = dict(os.environ, JAX_ENABLE_COMPILATION_CACHE="true" if cache_dir else "false")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"seq {seq} child failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    kept = os.path.join(cache_dir, "bf_kernels") if cache_dir else None
    row["kernels_on_disk"] = len(os.listdir(kept)) if kept and os.path.isdir(kept) else 0
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seqs", default=",".join(map(str, SEQS)))
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "explain_cold.json"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.cache)

    load_before = load_before_timing()
    results = {}
    for seq in (int(s) for s in args.seqs.split(",")):
        with tempfile.TemporaryDirectory(prefix="bf-jax-cache-") as cache:
            rows = {MODES[0]: measure(seq, None), MODES[1]: measure(seq, cache), MODES[2]: measure(seq, cache)}
        results[str(seq)] = rows
        for mode, row in rows.items():
            print(f"seq {seq:4d} | {mode:20s} | first explain {row['first_explain_s']:7.2f} s | second (same bucket) "
                  f"{row['second_explain_s']:6.2f} s | next length {row['next_length_s']:6.2f} s | "
                  f"{row['kernel_misses']:4d} kernels new to the process, "
                  f"{row['kernels_on_disk']:3d} kept on disk | load "
                  f"{row['load_s']:5.1f} s | peak RSS {row['peak_rss_mb']:6.0f} MB", flush=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    write_json(args.out, {"machine": machine, "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
