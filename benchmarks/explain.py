"""What `bf_bert.explain` costs: torch and jitted JAX gradients against BF's semiring backprops (CPU).

The embedded default model (all-MiniLM-L6-v2 encoder + the fitted MLM head, `default_model_path()`)
in float32, explain's default (`--dtype float64`: BF `from_pretrained(path, dtype="float64")` under
`jax.enable_x64(True)`, torch `dtype=torch.float64`, JAX float64 arrays), batch 1, sentences of
exactly 16 and 128 tokens ([CLS] and [SEP] included) with one [MASK]: an agreement sentence whose
prepositional phrases repeat to the length. The quantity is explain's

    q = logit("are") - logit("is")  at the mask,

and every framework does explain's work: the encoder from the input embeddings, the MLM head at
the mask position only and its decoder for q's two words only (the other logits never reach q),
the gradient of q with respect to the input embeddings only (no parameter gradients).

Rows, per length:
  torch fwd+bwd                  encoder + head at the mask, `torch.autograd.grad(q, inputs_embeds)`
                                 (the reference, threads = cores as bert.py), and a 1-thread variant
  jax value_and_grad (jit)       harness.py's functional encoder from the embeddings, its MLM head on the
                                 mask row only (`jax_q` below), `jax.jit(jax.value_and_grad)`
  jax floor: fwd + 6 VJPs (jit)  the same forward and six VJPs of q (distinct cotangents) in one jit:
                                 the least work the semirings need (grad 1, |grad| and entropy 3,
                                 max_grad 2), the reference the BF rows are divided by ("÷ floor")
  bf program: 4 semirings (jit)  `analysis.program`'s compiled step (what `explain_batch` and the
                                 dataset analysis run) with VALUES minus "max_path": forward, one
                                 backprop, the whole read-out, one XLA program
  bf run: 4 semirings            `bf_bert.explain.run` with VALUES minus "max_path" (grad,
                                 abs_val_grad, entropy, max_grad): forward + one backprop restricted
                                 to the embeddings, blocked on the embeddings' fields
  bf run: all VALUES             the same with explain's full VALUES (+ the neuron-granular max_path)
  bf explain (warm)              `explain(model, tokenizer, text, target="are", contrast="is")`: the
                                 program with max_path (op by op under vmap) and its top-path trace
  bf explain, first call (cold)  the same, the first call in a fresh process: every kernel compiles
                                 (no persistent compilation cache); measured once

Both run rows call explain's own `run`, with `values=` the semirings of the row.

As bert.py: one worker process per framework and length, checks before timing (BF's q equals
torch's within 1e-9 in float64 / 1e-4 in float32, its gradient w.r.t. the embeddings within 1e-7 /
1e-4 relative; JAX's too), then the
rows timed round-robin across the workers, medians reported. Peak RSS is per row: the worker
resets its high-water mark (`/proc/self/clear_refs`) before a row's calls and reads VmHWM after.

  .venv/bin/python benchmarks/explain.py             # seq 16 and 128 (~7 min on 2 cores), writes results/explain.json
  .venv/bin/python benchmarks/explain.py --dtype float64   # the same in float64
  .venv/bin/python benchmarks/explain.py --quick     # seq 16 only, few repeats (JSON to a temp file)
  .venv/bin/python benchmarks/explain.py --profile   # also split the two BF run rows by op at the longest length
  .venv/bin/python benchmarks/explain.py --model bert-base-random --seqs 128 --out benchmarks/results/explain_bert_base.json
                                                     # BERT-base shapes (random weights: none are offline here)
"""

import argparse
import contextlib
import functools
import json
import math
import os
import statistics
import tempfile
import time
import traceback

import numpy as np

from harness import (CONTRAST, TARGET, Worker, jax_encoder, jax_mlm_transform, kernel_stats, load_before_timing,
                     machine_info, one_thread, profile_step, reset_peak, round_robin, rss_mb, sentence, write_json)

SEQS = (16, 128)

ROWS = {
    "torch": ("torch fwd+bwd", "torch fwd+bwd, 1 thread"),
    "jax": ("jax value_and_grad (jit)", "jax floor: fwd + 6 VJPs (jit)"),
    "bf": ("bf run: 4 semirings (no max_path)", "bf run: all VALUES (+ max_path)", "bf program: 4 semirings (jit)",
           "bf explain (warm)"),
}
COLD = "bf explain, first call (cold)"
TORCH_REF, TORCH_REF_1, JAX_REF, FLOOR = ROWS["torch"][0], ROWS["torch"][1], ROWS["jax"][0], ROWS["jax"][1]
TOLERANCES = {"float64": (1e-9, 1e-7), "float32": (1e-4, 1e-4)}  # |Δq| and gradient relative to torch


# -- the pure-JAX BERT from input embeddings, head at the mask only -------------------------------

def jax_q(p, embeddings, token_type_ids, attention_mask, *, pos, target, contrast, layers, heads, eps):
    """q = logit(target) - logit(contrast) at `pos`: harness.py's encoder from the input embeddings,
    then the MLM head on that one row (decoder tied to the word embeddings), as
    `bf_bert.explain.run` does."""
    import jax.numpy as jnp

    x = jax_encoder(p, embeddings, token_type_ids, attention_mask, layers=layers, heads=heads, eps=eps)
    t = jax_mlm_transform(p, x[0, pos], eps)
    words = jnp.array([target, contrast])  # as explain's run: only q's two words are decoded
    scores = p["bert.embeddings.word_embeddings.weight"][words] @ t + p["cls.predictions.bias"][words]
    return scores[0] - scores[1]


# -- workers -----------------------------------------------------------------------------------------

def torch_worker(spec):
    import torch
    import transformers
    from transformers import BertForMaskedLM

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(spec["threads"])
    model = BertForMaskedLM.from_pretrained(spec["path"], attn_implementation="eager",
                                            dtype=getattr(torch, spec["dtype"])).eval()
    ids, am, tt = (torch.from_numpy(spec["inputs"][k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    pos, target, contrast = spec["pos"], spec["target_id"], spec["contrast_id"]
    with torch.no_grad():
        table_rows = model.bert.embeddings.word_embeddings(ids)

    def fwd_bwd():
        embeddings = table_rows.clone().requires_grad_()
        hidden = model.bert(inputs_embeds=embeddings, attention_mask=am, token_type_ids=tt).last_hidden_state
        # as explain's run: the head at the mask only, decoding only q's two words
        head = model.cls.predictions
        words = torch.tensor([target, contrast])
        scores = head.transform(hidden[0, pos]) @ head.decoder.weight[words].T + head.decoder.bias[words]
        q = scores[0] - scores[1]
        (grad,) = torch.autograd.grad(q, embeddings)
        return q.detach(), grad

    def check():
        q, grad = fwd_bwd()
        return {"q": float(q), "grad": grad[0].numpy()}

    return dict(zip(ROWS["torch"], (fwd_bwd, one_thread(fwd_bwd, spec["threads"])))), check, {"torch_threads": torch.get_num_threads()}


def jax_worker(spec):
    import jax
    import jax.numpy as jnp
    from safetensors.numpy import load_file

    params = {k: jnp.asarray(v, spec["dtype"]) for k, v in load_file(os.path.join(spec["path"], "model.safetensors")).items()}
    c = spec["config"]
    ids, am, tt = (spec["inputs"][k] for k in ("input_ids", "attention_mask", "token_type_ids"))
    embeddings = params["bert.embeddings.word_embeddings.weight"][jnp.asarray(ids)]
    q_fn = functools.partial(jax_q, pos=spec["pos"], target=spec["target_id"], contrast=spec["contrast_id"],
                             layers=c["num_hidden_layers"], heads=c["num_attention_heads"], eps=c["layer_norm_eps"])
    value_and_grad = jax.jit(jax.value_and_grad(lambda e, p, *a: q_fn(p, e, *a)))
    args = (params, jnp.asarray(tt, jnp.int32), jnp.asarray(am, jnp.int32))

    def step():
        return jax.block_until_ready(value_and_grad(embeddings, *args))

    @jax.jit
    def six_vjps(e, p, *a):
        q, pull = jax.vjp(lambda e: q_fn(p, e, *a), e)
        return q, [pull(jnp.asarray(1.0 + k, q.dtype))[0] for k in range(6)]  # distinct: nothing to share

    def floor():
        return jax.block_until_ready(six_vjps(embeddings, *args))

    def check():
        q, grad = step()
        return {"q": float(q), "grad": np.asarray(grad[0])}

    return ({JAX_REF: step, FLOOR: floor}, check,
            {"jax_devices": str(jax.devices()), "x64": bool(jax.config.jax_enable_x64)})


def bf_worker(spec):
    import jax
    import jax.numpy as jnp
    from transformers import AutoTokenizer, BFBertForMaskedLM

    import brunoflow as bf
    from bf_bert import explain as E
    from brunoflow.ad.node import SEMIRING_FIELDS

    from bf_bert.analysis.program import compiled_program, parameters_of

    model = BFBertForMaskedLM.from_pretrained(spec["path"], dtype=spec["dtype"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(spec["path"])
    inputs = spec["inputs"]
    full = tuple(E.VALUES)
    no_max_path = tuple(v for v in full if v != "max_path")
    assert "max_path" in full and len(no_max_path) == len(full) - 1, full

    def run(chosen):
        value, embeddings, hidden = E.run(model, inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"],
                                          spec["pos"], spec["target_id"], spec["contrast_id"], "logit", values=chosen)
        fields = [getattr(embeddings, f) for f in SEMIRING_FIELDS]
        jax.block_until_ready([value.val] + [f for f in fields if f is not None])
        return value, embeddings, hidden

    retained = {}  # the last all-VALUES run's graph, for the walk right after it

    def run_4():
        run(no_max_path)  # nothing kept: its graph is freed inside the call, as torch's

    def run_all():
        retained.clear()  # the previous call's graph is freed here, inside the call
        retained["run"] = run(full)

    def prepare_walk():  # outside the timer: the start element, or a run if none is retained
        if "run" not in retained:
            run_all()
        hi = retained["run"][1].max_path_of_output_wrt_node[0]
        retained["start"] = np.unravel_index(int(jnp.argmax(hi)), hi.shape)

    def walk():
        return bf.top_path(retained["run"][1], retained["start"])

    def explain():
        return E.explain(model, tokenizer, spec["text"], target=TARGET, contrast=CONTRAST)

    program = compiled_program(model, "logit", True, no_max_path)
    ids = np.asarray(inputs["input_ids"], np.int32)
    program_args = (parameters_of(model), ids, np.asarray(inputs["attention_mask"], np.int32), np.zeros_like(ids),
                    *(np.asarray([spec[k]], np.int32) for k in ("pos", "target_id", "contrast_id")))

    def run_program():
        return jax.block_until_ready(program(*program_args))

    explain.warm = False  # its kernels are the cold explain's
    run_all.release = retained.clear
    steps = dict(zip(ROWS["bf"], (run_4, run_all, run_program, explain)))

    def check():
        out = {}
        for name, step in (("4 semirings", run_4), ("all VALUES", run_all)):
            retained.clear()
            value, embeddings, _ = run(no_max_path if step is run_4 else full)
            out[name] = {"q": float(value.val), "grad": np.asarray(embeddings.grad[0])}
            retained["run"] = (value, embeddings, _)
        out["program"] = {"q": float(np.asarray(run_program().readout.value)[0])}  # it reads out no gradient
        prepare_walk()
        hops = walk()
        embeddings = retained["run"][1]
        out["top_path"] = {"hops": len(hops), "first_value": hops[0].value, "last_value": hops[-1].value,
                           "max_path_at_start": float(embeddings.max_path_of_output_wrt_node[0][retained["start"]])}
        retained.clear()
        return out

    def cold():
        """explain's first call in this fresh process: every kernel compiles."""
        bf.kernel_stats.reset()
        reset_peak()
        start = time.perf_counter()
        explanation = explain()
        took = time.perf_counter() - start
        return {"ms": 1e3 * took, "first_call_ms": 1e3 * took, "peak_rss_mb": rss_mb("VmHWM"),
                "hits": bf.kernel_stats.hits, "misses": bf.kernel_stats.misses,
                "explanation": {"q": explanation.value, "top_path_hops": len(explanation.top_path),
                                "top_path_value": explanation.top_path[-1].value}}

    # the 4-semiring row compiles its own kernels (a kernel is per op, shapes and semiring set);
    # the others reuse the cold explain's
    return steps, check, {"values": full, "cold": cold}


WORKERS = {"torch": torch_worker, "jax": jax_worker, "bf": bf_worker}


def worker_main(conn, kind, spec):
    """Serve the parent's commands until "exit"; errors go back as their traceback. In float64,
    jax and bf workers run everything inside `jax.enable_x64(True)`."""
    try:
        if kind == "torch" or spec["dtype"] == "float32":
            scope = contextlib.nullcontext()
        else:
            import jax
            scope = jax.enable_x64(True)
        with scope:
            start = time.perf_counter()
            steps, check, info = WORKERS[kind](spec)
            cold = info.pop("cold", None)
            info.update(load_s=time.perf_counter() - start, loaded_rss_mb=rss_mb())
            conn.send(("ok", info))
            while True:
                command, *args = conn.recv()
                if command == "exit":
                    return
                if command == "cold":
                    conn.send(("ok", cold()))
                elif command == "warm":  # first calls (compiles); rows whose kernels the cold explain made: none
                    rows = {}
                    for label, step in steps.items():
                        if getattr(step, "warm", True):
                            took, rest = time_calls(step, 1, first=True)
                            rows[label] = dict(rest, first_call_ms=1e3 * took)
                        else:
                            rows[label] = {"first_call_ms": None}
                    conn.send(("ok", rows))
                elif command == "check":
                    conn.send(("ok", check()))
                elif command == "time":
                    conn.send(("ok", time_calls(steps[args[0]], args[1])))
                elif command == "profile":
                    conn.send(("ok", {label: profile_step(steps[label], args[0]) for label in ROWS["bf"][:2]}))
    except Exception:
        conn.send(("error", traceback.format_exc()))


def time_calls(step, reps, first=False):
    """reps timed calls of a step (after its `prepare`, if any, outside the timer); the peak RSS over
    them and brunoflow's kernel-cache counters. first=True: one call, returned as (seconds, extras)."""
    stats = kernel_stats()
    prepare = getattr(step, "prepare", None)
    if prepare is not None:
        prepare()
    if stats is not None:
        stats.reset()
    reset_peak()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    out = {"peak_rss_mb": rss_mb("VmHWM")}
    if stats is not None:
        out.update(hits=stats.hits, misses=stats.misses)
    release = getattr(step, "release", None)
    if release is not None:
        release()
    if first:
        return times[0], out
    return dict(out, times=times)


# -- parent --------------------------------------------------------------------------------------------

def verify(checks, dtype):
    """BF's (both runs, the program and explain) and JAX's q against torch's within Q_ATOL, and their
    gradients w.r.t. the embeddings within GRAD_RTOL of torch's (max |Δ| / max |torch grad|).
    Raises on a mismatch; returns the errors."""
    Q_ATOL, GRAD_RTOL = TOLERANCES[dtype]
    ref = checks["torch"]
    scale = float(np.abs(ref["grad"]).max())
    report = {"torch q": ref["q"], "torch grad max |g|": scale}
    candidates = {"jax": checks["jax"], **{f"bf {k}": v for k, v in checks["bf"].items() if "grad" in v}}
    for name, got in candidates.items():
        dq = abs(got["q"] - ref["q"])
        rel = float(np.abs(got["grad"] - ref["grad"]).max()) / scale
        report[f"{name}: |Δq|"], report[f"{name}: grad max |Δ| / max |g|"] = dq, rel
        assert got["grad"].shape == ref["grad"].shape, (name, got["grad"].shape, ref["grad"].shape)
        assert dq <= Q_ATOL, f"{name}: q = {got['q']!r} differs from torch's {ref['q']!r} by {dq:.2e} > {Q_ATOL}"
        assert rel <= GRAD_RTOL, f"{name}: gradient w.r.t. the embeddings differs from torch's by {rel:.2e} > {GRAD_RTOL}"
    for name in ("explain", "program"):
        dq = abs(checks["bf"][name]["q"] - ref["q"])
        report[f"bf {name}: |Δq|"] = dq
        assert dq <= Q_ATOL, f"{name}'s value differs from torch's q by {dq:.2e}"
    walk = checks["bf"]["top_path"]
    report.update({f"top path {k}": v for k, v in walk.items()})
    assert walk["hops"] > 1 and math.isclose(walk["first_value"], walk["max_path_at_start"], rel_tol=1e-12), walk
    explained = checks["bf"]["explain"]
    report["bf explain: top path hops"] = explained["top_path_hops"]
    assert math.isclose(explained["top_path_value"], walk["first_value"], rel_tol=100 * GRAD_RTOL), (explained, walk)
    return report


def run_length(seq, path, config, tokenizer, args):
    text, encoded = sentence(tokenizer, seq)
    from bf_bert.explain import mask_position, word_id
    spec = {"path": path, "config": config, "text": text, "inputs": encoded, "threads": os.cpu_count(), "dtype": args.dtype,
            "pos": mask_position(tokenizer, encoded["input_ids"], text),
            "target_id": word_id(tokenizer, TARGET), "contrast_id": word_id(tokenizer, CONTRAST, "contrast")}
    workers = {kind: Worker(kind, spec, serve=worker_main) for kind in ROWS}
    try:
        info = {kind: w.receive() for kind, w in workers.items()}  # they import and load side by side
        # the cold explain first, in its fresh process, while the other workers sit idle
        rows = {COLD: workers["bf"].ask("cold")}
        for w in workers.values():  # one at a time: first calls compile
            rows.update(w.ask("warm"))
        checks = {kind: w.ask("check") for kind, w in workers.items()}
        checks["bf"]["explain"] = rows[COLD].pop("explanation")
        checks = verify(checks, args.dtype)
        answers = round_robin(list(workers.values()), ROWS, args.rounds, args.seconds)
        profile = workers["bf"].ask("profile", 2) if args.profile and seq == max(args.seqs) else None
    finally:
        for w in workers.values():
            w.close()
    for label, got in answers.items():
        t = [x for answer in got for x in answer["times"]]
        hits, misses = (sum(answer.get(k, 0) for answer in got) for k in ("hits", "misses"))
        row = rows[label]
        row.update(ms=1e3 * statistics.median(t), repeats=len(t), min_ms=1e3 * min(t), max_ms=1e3 * max(t),
                   peak_rss_mb=max([row.get("peak_rss_mb", 0.0)] + [answer["peak_rss_mb"] for answer in got]))
        if label in ROWS["bf"]:  # brunoflow kernel cache: hit rate over the timed calls
            if "hits" in row:
                row.update(first_call_hits=row.pop("hits"), first_call_misses=row.pop("misses"))
            total = hits + misses
            row.update(timed_hits=hits, timed_misses=misses,
                       timed_hit_rate=hits / total if total else None, kernel_calls_per_call=total / len(t))
    for kind in ROWS:  # clear_refs resets ru_maxrss too: the process peak is the rows' largest
        info[kind]["peak_rss_mb_over_rows"] = max(rows[label]["peak_rss_mb"] for label in ROWS[kind] + ((COLD,) if kind == "bf" else ()))
    cold = rows[COLD]
    cold.update(repeats=1, timed_hit_rate=cold["hits"] / (cold["hits"] + cold["misses"]),
                kernels_compiled=cold["misses"], kernel_calls=cold["hits"] + cold["misses"])
    best_torch = min(rows[TORCH_REF]["ms"], rows[TORCH_REF_1]["ms"])
    for row in rows.values():
        row.update(vs_torch_fwd_bwd=row["ms"] / rows[TORCH_REF]["ms"], vs_best_torch=row["ms"] / best_torch,
                   vs_jax=row["ms"] / rows[JAX_REF]["ms"], vs_floor=row["ms"] / rows[FLOOR]["ms"])
    order = [*ROWS["torch"], *ROWS["jax"], *ROWS["bf"], COLD]
    return {"seq": seq, "text": text, "mask_position": spec["pos"], "rows": {k: rows[k] for k in order},
            "workers": info, "checks": checks, "profile": profile}


def print_table(results):
    header = (f"| {'seq':>3s} | {'row':36s} | {'ms':>9s} | {'÷ floor':>7s} | {'÷ torch f+b':>11s} | {'÷ best torch':>12s} | {'÷ jax v&g':>9s} | "
              f"{'peak RSS':>8s} | {'first call':>10s} | {'hits':>4s} |")
    print("\n" + header + "\n|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for res in results.values():
        for label, row in res["rows"].items():
            rate = row.get("timed_hit_rate")
            hits = f"{rate:4.0%}" if rate is not None else ("–" if label in ROWS["bf"] else "")
            first = f"{row['first_call_ms'] / 1e3:8.1f} s" if row["first_call_ms"] is not None else "(cold row)"
            print(f"| {res['seq']:3d} | {label:36s} | {row['ms']:9.1f} | {row['vs_floor']:6.2f}x | {row['vs_torch_fwd_bwd']:10.2f}x | "
                  f"{row['vs_best_torch']:11.2f}x | {row['vs_jax']:8.2f}x | {row['peak_rss_mb']:5.0f} MB | {first:>10s} | {hits:>4s} |")


def print_profile(seq, profile):
    nomp, full = (profile[label] for label in ROWS["bf"][:2])
    print(f"\nprofile, seq {seq} (each backward kernel blocked; ms per step): "
          f"4 semirings {nomp['step_ms']:.0f} (kernels {nomp['backward_kernels_ms']:.0f}), "
          f"all VALUES {full['step_ms']:.0f} (kernels {full['backward_kernels_ms']:.0f})")
    ops = sorted(full["backward_kernels_ms_by_op"], key=lambda k: -full["backward_kernels_ms_by_op"][k])
    print(f"  {'op':14s} {'4 semirings':>11s} {'all VALUES':>11s} {'max_path adds':>13s}")
    for op in ops[:12]:
        a, b = nomp["backward_kernels_ms_by_op"].get(op, 0.0), full["backward_kernels_ms_by_op"][op]
        print(f"  {op:14s} {a:11.1f} {b:11.1f} {b - a:13.1f}")
    print("  top kernels (op, input shapes), all VALUES ms (4 semirings ms, where in its top 12):")
    for k, v in list(full["top_kernels_by_op_and_input_shapes_ms"].items())[:8]:
        a = nomp["top_kernels_by_op_and_input_shapes_ms"].get(k)
        print(f"  {v:9.1f}  ({'-' if a is None else f'{a:.1f}'})  {k}")


def bert_base_random(tokenizer_folder):
    """A BertForMaskedLM with bert-base-uncased's shapes (12 layers, hidden 768, vocabulary 30522) and
    seeded random weights, in a temporary folder: what BERT-base costs does not depend on its weights,
    and no real BERT-base checkpoint is offline here. The MiniLM tokenizer is the same uncased vocabulary."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    folder = os.path.join(tempfile.gettempdir(), "bf-bench-bert-base-random")
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        torch.manual_seed(0)
        BertForMaskedLM(BertConfig()).save_pretrained(folder)
        AutoTokenizer.from_pretrained(tokenizer_folder).save_pretrained(folder)
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seq 16 only, few repeats (a smoke run)")
    parser.add_argument("--seqs", default=None, help="comma-separated lengths (default 16,128; quick 16)")
    parser.add_argument("--seconds", type=float, default=None, help="time budget per row (default 2, quick 0.5)")
    parser.add_argument("--rounds", type=int, default=None, help="round-robin rounds (default 3, quick 2)")
    parser.add_argument("--profile", action="store_true", help="split the BF run rows by op at the longest length")
    parser.add_argument("--dtype", choices=tuple(TOLERANCES), default="float32", help="default float32")
    parser.add_argument("--model", default=None,
                        help="a BertForMaskedLM folder, or 'bert-base-random' (BERT-base shapes, seeded random weights, "
                             "the uncased vocabulary); default: the embedded default model")
    parser.add_argument("--out", default=None,
                        help="JSON path (default benchmarks/results/explain.json; with --quick, a temp file)")
    args = parser.parse_args()
    args.seqs = [int(s) for s in args.seqs.split(",")] if args.seqs else ([16] if args.quick else list(SEQS))
    args.seconds = args.seconds or (0.5 if args.quick else 2.0)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.out = args.out or (os.path.join(tempfile.gettempdir(), "explain_quick.json") if args.quick else
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "explain.json"))

    import transformers
    from transformers import AutoTokenizer

    from bf_bert.default_model import NOTE, default_model_path

    transformers.logging.set_verbosity_error()
    path = (bert_base_random(default_model_path()) if args.model == "bert-base-random" else
            args.model or default_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)

    load_before = load_before_timing()
    started = time.perf_counter()
    results = {}
    for seq in args.seqs:
        print(f"seq {seq} ... ({time.perf_counter() - started:.0f} s so far)", flush=True)
        results[str(seq)] = run_length(seq, path, config, tokenizer, args)
    elapsed = time.perf_counter() - started

    print_table(results)
    for res in results.values():
        cold = res["rows"][COLD]
        print(f"seq {res['seq']}: cold explain compiled {cold['kernels_compiled']} of {cold['kernel_calls']} kernels; "
              f"top path {res['checks']['top path hops']} hops; checks: q |Δ| ≤ "
              f"{max(v for k, v in res['checks'].items() if k.endswith('|Δq|')):.1e}, grad rel ≤ "
              f"{max(v for k, v in res['checks'].items() if k.endswith('/ max |g|')):.1e}")
        if res["profile"]:
            print_profile(res["seq"], res["profile"])

    machine = dict(machine_info(), loadavg_before=load_before, loadavg_after=os.getloadavg(), wall_s=elapsed)
    write_json(args.out, {"machine": machine,
                          "settings": {"seconds_per_row": args.seconds, "rounds": args.rounds, "seqs": args.seqs,
                                       "batch": 1, "dtype": args.dtype,
                                       "quantity": f"logit({TARGET!r}) - logit({CONTRAST!r})",
                                       "model": args.model or NOTE, "model_path": path},
                          "results": results})
    print(f"\nwrote {args.out} in {elapsed:.0f} s (load average before {load_before}, after {machine['loadavg_after']})")


if __name__ == "__main__":
    main()
