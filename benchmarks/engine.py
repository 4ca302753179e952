"""Speed benchmark of brunoflow's engine against jitted jax.grad and torch autograd (CPU).

Two workloads, each written ONCE against a tiny op namespace (`model(F, params, x)`) so
brunoflow, pure jnp and torch run the same math on the same float32 weights:
  mlp          8 tanh layers, 256 wide, input 64×256, scalar = sum of the last layer
  transformer  one post-LayerNorm BERT encoder block: hidden 384, seq 128, batch 1,
               12 heads, intermediate 1536 (erf gelu), scalar = sum of the output

bf grad is checked against jax.grad (rtol 1e-4) before any timing. Prints a table, writes
benchmarks/results/engine.json.  PYTHONPATH=src .venv/bin/python benchmarks/engine.py [--profile]
"""

import argparse
import datetime
import math
import os
import platform
import resource
import statistics
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import torch

import brunoflow as bf
from brunoflow.ad.node import SEMIRING_FIELDS
from brunoflow.ad.primitive import clear_caches
from brunoflow.ad.profile import kernel_timings

from harness import load_before_timing, one_thread, timed, write_json

EVERY = ("grad", "max_grad", "abs_val_grad", "entropy")  # backprop's default values_to_compute


# -- one op namespace per framework ---------------------------------------------------------

def _jnp_layer_norm(x, w, b, eps=1e-5):
    mean = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean((x - mean) ** 2, -1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps) * w + b


BF = SimpleNamespace(tanh=bf.func.tanh, gelu=bf.func.gelu, softmax=bf.func.softmax,
                     layer_norm=bf.func.layer_norm, reshape=bf.func.reshape,
                     transpose=bf.func.transpose, sum=bf.func.reduce_sum)
JNP = SimpleNamespace(tanh=jnp.tanh, gelu=lambda x: jax.nn.gelu(x, approximate=False),
                      softmax=jax.nn.softmax, layer_norm=_jnp_layer_norm, reshape=jnp.reshape,
                      transpose=jnp.transpose, sum=jnp.sum)
TORCH = SimpleNamespace(tanh=torch.tanh, gelu=torch.nn.functional.gelu,
                        softmax=lambda x: torch.softmax(x, -1),
                        layer_norm=lambda x, w, b: torch.nn.functional.layer_norm(x, w.shape, w, b),
                        reshape=torch.reshape, transpose=torch.permute, sum=torch.sum)


# -- the two workloads --------------------------------------------------------------------

def mlp(F, p, x):
    for layer in range(8):
        x = F.tanh(x @ p[f"w{layer}"] + p[f"b{layer}"])
    return F.sum(x)


def mlp_weights(rng):
    p = {}
    for layer in range(8):
        p[f"w{layer}"], p[f"b{layer}"] = rng.normal(0, 1 / 16, (256, 256)), rng.normal(0, 0.1, (256,))
    return p, rng.normal(0, 1, (64, 256))


S, H, HEADS, D, FF = 128, 384, 12, 32, 1536


def transformer(F, p, x):
    def heads(t):  # (1, S, H) -> (1, HEADS, S, D)
        return F.transpose(F.reshape(t, (1, S, HEADS, D)), (0, 2, 1, 3))

    q, k, v = (heads(x @ p[f"w{n}"] + p[f"b{n}"]) for n in "qkv")
    scores = (q @ F.transpose(k, (0, 1, 3, 2))) * (1 / math.sqrt(D))
    context = F.reshape(F.transpose(F.softmax(scores) @ v, (0, 2, 1, 3)), (1, S, H))
    h = F.layer_norm(context @ p["wo"] + p["bo"] + x, p["ln1_w"], p["ln1_b"])
    f = F.gelu(h @ p["wi"] + p["bi"]) @ p["wf"] + p["bf"]
    return F.sum(F.layer_norm(f + h, p["ln2_w"], p["ln2_b"]))


def transformer_weights(rng):
    p = {}
    for name, (fan_in, fan_out) in {"q": (H, H), "k": (H, H), "v": (H, H), "o": (H, H),
                                    "i": (H, FF), "f": (FF, H)}.items():
        p[f"w{name}"], p[f"b{name}"] = rng.normal(0, 0.04, (fan_in, fan_out)), rng.normal(0, 0.02, (fan_out,))
    for ln in ("ln1", "ln2"):  # non-unit gains, else sum(LayerNorm(.)) has a ~0 gradient
        p[f"{ln}_w"], p[f"{ln}_b"] = 1 + rng.normal(0, 0.1, (H,)), rng.normal(0, 0.02, (H,))
    return p, rng.normal(0, 1, (1, S, H))


WORKLOADS = {"mlp": (mlp, mlp_weights), "transformer": (transformer, transformer_weights)}


# -- the steps being timed. bf leaves are fresh Nodes each call (as a user analysing a new
# input would build them): reusing leaves would ⊕-accumulate into them across calls. ------

def bf_run(model, params, x, values_to_compute=None, fields=("grad",)):
    """Forward (and backprop); returns {field: [value per leaf]} (or the output), unblocked."""
    p, xn = {n: bf.Node(a, name=n) for n, a in params.items()}, bf.Node(x, name="x")
    out = model(BF, p, xn)
    if values_to_compute is None:
        return out.val
    out.backprop(values_to_compute=values_to_compute)
    return {f: [getattr(n, f) for n in list(p.values()) + [xn]] for f in fields}


def make_steps(model, params, x):
    """name -> zero-argument callable that blocks on its results, in table order."""
    def bf_step(*how):
        return lambda: jax.block_until_ready(bf_run(model, params, x, *how))

    jitted_all = jax.jit(lambda params, x: bf_run(model, params, x, EVERY, SEMIRING_FIELDS))
    jax_fwd = jax.jit(lambda params, x: model(JNP, params, x))
    jax_grad = jax.jit(jax.value_and_grad(lambda params, x: model(JNP, params, x), argnums=(0, 1)))
    tp = {n: torch.tensor(np.asarray(a), requires_grad=True) for n, a in params.items()}
    tx = torch.tensor(np.asarray(x), requires_grad=True)
    leaves = list(tp.values()) + [tx]

    def torch_bwd():  # autograd.grad: no .grad accumulation across calls
        out = model(TORCH, tp, tx)
        return out, torch.autograd.grad(out, leaves)

    return {
        "bf forward": bf_step(),
        "bf fwd+backprop grad": bf_step(("grad",)),
        "bf fwd+backprop all semirings": bf_step(EVERY, SEMIRING_FIELDS),
        "bf all semirings, whole step in jax.jit": lambda: jax.block_until_ready(jitted_all(params, x)),
        "jax forward (jitted)": lambda: jax.block_until_ready(jax_fwd(params, x)),
        "jax.grad (jitted)": lambda: jax.block_until_ready(jax_grad(params, x)),
        "torch forward": lambda: model(TORCH, tp, tx),
        "torch fwd+bwd": torch_bwd,
        "torch fwd+bwd, 1 thread": one_thread(torch_bwd, torch.get_num_threads()),
    }, torch_bwd


def check(name, model, params, x, torch_bwd):
    """bf grad == jax.grad (not jitted here, so the timed row's first call compiles) to rtol
    1e-4, atol 1e-6·max|grad| for entries that cancel to ~0 (the key bias's true grad is 0)."""
    gp, gx = jax.grad(lambda p, x: model(JNP, p, x), argnums=(0, 1))(params, x)
    ref = dict(gp, x=gx)
    atol = 1e-6 * max(float(jnp.abs(r).max()) for r in ref.values())
    got = bf_run(model, params, x, ("grad",))["grad"]
    _, tgrads = torch_bwd()
    for n, g, tg in zip(list(params) + ["x"], got, tgrads):  # bf and torch: params order, then x
        r = np.asarray(ref[n])
        np.testing.assert_allclose(np.asarray(g), r, rtol=1e-4, atol=atol, err_msg=f"{name}: bf {n}")
        np.testing.assert_allclose(tg.numpy(), r, rtol=1e-3, atol=10 * atol, err_msg=f"{name}: torch {n}")


def warm_up(fn, eager_bf):
    """First call (bf: from cold kernel caches, so it compiles) and second call, timed."""
    if eager_bf:
        clear_caches()
    row = {"first_call_ms": 1e3 * timed(fn)}
    bf.kernel_stats.reset()
    row["second_call_ms"] = 1e3 * timed(fn)
    if eager_bf:  # every kernel the second call needs must come from the cache
        row.update(second_call_hit_rate=bf.kernel_stats.hit_rate,
                   kernel_calls_per_step=bf.kernel_stats.hits + bf.kernel_stats.misses)
    return row


def measure(steps, seconds, rounds=5):
    """Warm every step, then time them round-robin (`rounds` rounds, ~`seconds` per step in
    all, ≥ 5 calls), so drifts in machine load hit every row alike. Per row: the median, and
    the process's CPU time and minor page faults per call (getrusage)."""
    rows = {label: warm_up(fn, label.startswith("bf") and "jit" not in label) for label, fn in steps.items()}
    for fn in steps.values():
        fn()  # re-warm what a later clear_caches() dropped
    times = {label: [] for label in steps}
    usage = {label: np.zeros(3) for label in steps}
    for _ in range(rounds):
        for label, fn in steps.items():
            reps = max(1, min(200, int(seconds / rounds / max(rows[label]["second_call_ms"] / 1e3, 1e-6))))
            before = resource.getrusage(resource.RUSAGE_SELF)
            times[label] += [timed(fn) for _ in range(reps)]
            after = resource.getrusage(resource.RUSAGE_SELF)
            usage[label] += [after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime,
                             after.ru_minflt - before.ru_minflt]
    for label, row in rows.items():
        t, n = times[label], len(times[label])
        row.update(ms=1e3 * statistics.median(t), repeats=n, min_ms=1e3 * min(t), max_ms=1e3 * max(t),
                   cpu_user_ms=1e3 * usage[label][0] / n, cpu_sys_ms=1e3 * usage[label][1] / n,
                   minor_faults=usage[label][2] / n)
    return rows


def profile_all_semirings(model, params, x, repeats=5):
    """Where one warm all-semiring bf step spends its wall time: `kernel_timings()` blocks before
    and after each backward kernel (device work, allocation included); the rest of the step is
    Python graph walking + dispatch + the forward."""
    step = make_steps(model, params, x)[0]["bf fwd+backprop all semirings"]
    step(), step()
    with kernel_timings() as timings:
        wall = statistics.mean(timed(step) for _ in range(repeats))
    per_op = {op: seconds / repeats for op, seconds in timings.by_op.items()}
    in_kernels = sum(per_op.values())
    print(f"\nprofile: transformer, all semirings, one step {1e3 * wall:.1f} ms (each kernel blocked): "
          f"backward kernels {1e3 * in_kernels:.1f} ms, everything else {1e3 * (wall - in_kernels):.1f} ms")
    print("  " + ", ".join(f"{op} {1e3 * t:.1f}" for op, t in sorted(per_op.items(), key=lambda kv: -kv[1])))
    return {"step_ms": 1e3 * wall, "backward_kernels_ms": 1e3 * in_kernels,
            "backward_kernels_ms_by_op": {op: 1e3 * t for op, t in per_op.items()}}


def print_tables(results):
    header = f"| {'workload':11s} | {'measurement':42s} | {'ms':>9s} | {'÷ jax.grad':>10s} | {'÷ torch f+b':>11s} |"
    print("\n" + header + "\n|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for name, rows in results.items():
        for label, row in rows.items():
            print(f"| {name:11s} | {label:42s} | {row['ms']:9.2f} | {row['vs_jax_grad']:9.2f}x "
                  f"| {row['vs_torch_fwd_bwd']:10.2f}x |")
    print("\nfirst call (bf: cold kernel caches); second call's kernel cache; per call: process CPU time "
          "(2 cores) and minor page faults")
    for name, rows in results.items():
        for label, row in rows.items():
            cache = (f"{row['kernel_calls_per_step']:3d} kernels, {row['second_call_hit_rate']:4.0%} hits"
                     if "second_call_hit_rate" in row else " " * 22)
            print(f"{name:11s} {label:42s} first {row['first_call_ms']:7.0f} ms  {cache}  user "
                  f"{row['cpu_user_ms']:6.1f} ms  sys {row['cpu_sys_ms']:5.1f} ms  faults {row['minor_faults']:6.0f}")


def float32_inputs(weights):
    params, x = weights(np.random.default_rng(0))
    return {n: jnp.asarray(a, jnp.float32) for n, a in params.items()}, jnp.asarray(x, jnp.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per measurement")
    parser.add_argument("--profile", action="store_true", help="split one all-semiring transformer step")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "engine.json"))
    args = parser.parse_args()

    load_before = load_before_timing()  # torch's OpenMP threads suffer most from a busy core
    results = {}
    for name, (model, weights) in WORKLOADS.items():
        params, x = float32_inputs(weights)
        steps, torch_bwd = make_steps(model, params, x)
        check(name, model, params, x, torch_bwd)
        print(f"timing {name} ...", flush=True)
        rows = measure(steps, args.seconds)
        for row in rows.values():
            row["vs_jax_grad"] = row["ms"] / rows["jax.grad (jitted)"]["ms"]
            row["vs_torch_fwd_bwd"] = row["ms"] / rows["torch fwd+bwd"]["ms"]
        results[name] = rows

    print_tables(results)
    profile = profile_all_semirings(transformer, *float32_inputs(transformer_weights)) if args.profile else None

    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
               "python": platform.python_version(), "jax": jax.__version__, "jax_backend": jax.default_backend(),
               "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
               "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    write_json(args.out, {"machine": machine, "seconds_per_measurement": args.seconds, "results": results,
                          "profile": profile})
    print(f"\nwrote {args.out} (load average before {load_before}, after {machine['loadavg_after']})")


if __name__ == "__main__":
    main()
