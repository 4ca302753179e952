"""What the benchmark scripts share: the machine they ran on, memory and time measurements, worker
processes timed round-robin, the JSON they write, the pure-JAX reference BERT and the agreement
sentence the explanation benchmarks explain.

Each script runs as `python benchmarks/<script>.py`, which puts this folder first on sys.path, so
`from harness import ...` finds this module in the script and in the processes it starts. Libraries
(numpy, jax, torch) are imported where they are used: a parent that only drives workers never loads
them, each worker's memory is its own framework's, and a fresh process's load time stays its own.
"""

import ctypes
import datetime
import json
import math
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time

# -- the machine -------------------------------------------------------------------------------------------

def machine_info(memory=True):
    """Platform, cores, Python and the versions a number depends on, the local date (and the RAM)."""
    from importlib.metadata import version
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            **{pkg: version(pkg) for pkg in ("jax", "jaxlib", "torch", "transformers", "numpy")},
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    if memory:
        info["memory_total_gb"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return info


def load_before_timing():
    """The load average now, with a warning when other work on the machine will make timings noisy."""
    load = os.getloadavg()
    if load[0] > 0.5:
        print(f"warning: load average {load[0]:.1f} on {os.cpu_count()} cores: timings will be noisy")
    return load


def write_json(path, result, indent=2):
    """`result` as JSON at `path` (folders made); numpy arrays as lists, anything else unknown as its str."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=indent, default=_as_json)


def _as_json(value):
    import numpy as np

    return value.tolist() if isinstance(value, np.ndarray) else str(value)


# -- memory ------------------------------------------------------------------------------------------------

def rss_mb(field="VmRSS"):
    """This process's resident memory (or another /proc/self/status field, e.g. VmHWM, its peak) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_peak():
    """Hand freed heap back to the kernel (glibc keeps it otherwise, and earlier rows' garbage
    would count), then reset the RSS high-water mark (VmHWM): the next read is this row's peak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


# -- time --------------------------------------------------------------------------------------------------

def timed(step):
    """Seconds one call of `step` takes, after its `setup` (if it has one) outside the timer."""
    setup = getattr(step, "setup", None)
    if setup is not None:
        setup()
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def one_thread(step, threads):
    """step on one torch thread, then back to `threads`: on a busy 2-core box torch's OpenMP
    threads stall each other (engine.py), so the benchmarks time both."""
    import torch

    def call():
        torch.set_num_threads(1)
        try:
            return step()
        finally:
            torch.set_num_threads(threads)
    return call


def kernel_stats():
    """brunoflow's kernel-cache counters in a process that imported it, else None."""
    bf = sys.modules.get("brunoflow")
    return None if bf is None else bf.kernel_stats


def profile_step(step, repeats):
    """Where one warm brunoflow step spends its wall time (ms per step): `kernel_timings()` blocks
    before and after every backward kernel; the rest is forward + graph walking + dispatch."""
    from brunoflow.ad.profile import kernel_timings

    timed(step)
    with kernel_timings() as timings:
        wall = statistics.mean(timed(step) for _ in range(repeats))
    by_op_and_shapes = {}
    for (op, shapes), seconds in timings.by_op_and_shapes.items():
        key = f"{op} ({' '.join('x'.join(map(str, shape)) for shape in shapes)})"
        by_op_and_shapes[key] = by_op_and_shapes.get(key, 0.0) + seconds
    top = sorted(by_op_and_shapes.items(), key=lambda kv: -kv[1])[:12]
    return {"step_ms": 1e3 * wall, "backward_kernels_ms": 1e3 * sum(timings.by_op.values()) / repeats,
            "backward_kernels_ms_by_op": {k: 1e3 * v / repeats
                                          for k, v in sorted(timings.by_op.items(), key=lambda kv: -kv[1])},
            "top_kernels_by_op_and_input_shapes_ms": {k: 1e3 * v / repeats for k, v in top}}


# -- workers: one process per framework, driven by the parent over a pipe ----------------------------------

class Worker:
    """One framework in its own process (spawned: nothing of the parent's imports or memory)."""

    def __init__(self, kind, *args, serve):
        """`serve(conn, kind, *args)` runs in the child: it answers the parent's commands."""
        ctx = multiprocessing.get_context("spawn")
        self.kind = kind
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=serve, args=(child, kind, *args), daemon=True)
        self.process.start()
        child.close()
        self.info = None

    def receive(self):
        try:
            status, payload = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"the {self.kind} worker died (exit code {self.process.join(5) or self.process.exitcode}"
                               "; -9 means the kernel killed it, most likely out of memory)") from None
        if status == "error":
            raise RuntimeError(f"the {self.kind} worker failed:\n{payload}")
        return payload

    def ask(self, *command):
        self.conn.send(command)
        return self.receive()

    def close(self):
        if self.process.is_alive():
            self.conn.send(("exit",))
        self.process.join(30)


def round_robin(workers, rows, rounds, seconds):
    """Each worker's rows (`rows[worker.kind]`) timed in `rounds` rounds, worker after worker, so a
    change in the machine's load hits every row alike. The first round is one call per row and
    sizes the later ones: about `seconds` per row in all, 1 to 100 calls per row and round. A worker
    answers ("time", label, calls) with a dict holding the calls' "times"; returns {label: [answers]}."""
    answers = {label: [] for w in workers for label in rows[w.kind]}
    for r in range(rounds):
        for w in workers:
            for label in rows[w.kind]:
                so_far = [t for answer in answers[label] for t in answer["times"]]
                calls = 1 if r == 0 else max(1, min(100, int(seconds / rounds / statistics.median(so_far))))
                answers[label].append(w.ask("time", label, calls))
    return answers


# -- the pure-JAX BERT: a params dict of checkpoint names -> arrays, one function -------------------------

def jax_bert_logits(p, input_ids, token_type_ids, attention_mask, *, layers, heads, eps):
    """Logits at every position: the encoder on the looked-up word vectors, then the MLM head
    (decoder tied to the word embeddings)."""
    table = p["bert.embeddings.word_embeddings.weight"]
    x = jax_encoder(p, table[input_ids], token_type_ids, attention_mask, layers=layers, heads=heads, eps=eps)
    return jax_mlm_transform(p, x, eps) @ table.T + p["cls.predictions.bias"]


def jax_encoder(p, word_vectors, token_type_ids, attention_mask, *, layers, heads, eps):
    """BertModel's last hidden state from the word vectors (`table[ids]` or inputs_embeds):
    embeddings + LayerNorm, eager-style attention with the additive mask, post-LayerNorm blocks."""
    import jax
    import jax.numpy as jnp

    emb = "bert.embeddings."
    batch, seq, hidden = word_vectors.shape
    x = word_vectors + p[emb + "position_embeddings.weight"][:seq] + p[emb + "token_type_embeddings.weight"][token_type_ids]
    x = _layer_norm(p, x, emb + "LayerNorm", eps)
    d = hidden // heads
    mask_bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0, jnp.finfo(x.dtype).min).astype(x.dtype)

    def split_heads(t):  # (B, S, H) -> (B, heads, S, d)
        return t.reshape(batch, seq, heads, d).transpose(0, 2, 1, 3)

    for i in range(layers):
        at = f"bert.encoder.layer.{i}.attention."
        q, k, v = (split_heads(_linear(p, x, at + "self." + n)) for n in ("query", "key", "value"))
        probs = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + mask_bias, axis=-1)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        x = _layer_norm(p, _linear(p, context, at + "output.dense") + x, at + "output.LayerNorm", eps)
        ff = f"bert.encoder.layer.{i}."
        h = _gelu(_linear(p, x, ff + "intermediate.dense"))
        x = _layer_norm(p, _linear(p, h, ff + "output.dense") + x, ff + "output.LayerNorm", eps)
    return x


def jax_mlm_transform(p, x, eps):
    """The MLM head before its decoder: dense, GELU, LayerNorm."""
    head = "cls.predictions.transform."
    return _layer_norm(p, _gelu(_linear(p, x, head + "dense")), head + "LayerNorm", eps)


def _layer_norm(p, x, name, eps):
    import jax
    import jax.numpy as jnp

    mean = jnp.mean(x, -1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), -1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * p[name + ".weight"] + p[name + ".bias"]


def _linear(p, x, name):  # torch layout: weight is (out, in)
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def _gelu(x):  # exact (erf) GELU, BERT's "gelu"
    import jax

    return 0.5 * x * (1 + jax.lax.erf(x / math.sqrt(2)))


# -- what the explanation benchmarks explain ---------------------------------------------------------------

TARGET, CONTRAST = "are", "is"
# the agreement sentence: subject, a prepositional phrase repeated to the length, the masked verb
HEAD, PHRASE, TAIL = "the keys", "to the old cabinet near the doors of the house by the river", "[MASK] on the table ."


def sentence(tokenizer, seq):
    """An agreement sentence of exactly `seq` tokens ([CLS] and [SEP] included), one [MASK]."""
    import numpy as np

    fill = PHRASE.split()
    n = seq - 2 - len(HEAD.split()) - len(TAIL.split())
    text = " ".join(HEAD.split() + [fill[k % len(fill)] for k in range(n)] + TAIL.split())
    encoded = {k: np.asarray(v) for k, v in tokenizer(text, return_tensors="np").items()}
    assert encoded["input_ids"].shape == (1, seq), (seq, encoded["input_ids"].shape, text)
    return text, encoded
