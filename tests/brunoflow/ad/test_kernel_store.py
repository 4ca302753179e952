"""Backward kernels kept on disk: a new process loads them by key, without tracing or compiling.

JAX checks once per process whether its persistent cache is on, so each case runs fresh
processes, as users do."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np

from brunoflow.ad import kernel_store

SWEEP = textwrap.dedent("""
    import json, os, sys, warnings
    import jax, numpy as np
    folder, keep, mode = sys.argv[1], sys.argv[2] == "keep", sys.argv[3]
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    import brunoflow as bf
    from brunoflow.ad import kernel_store
    kernel_store.keep_kernels(keep)
    if mode == "loads only":
        def refuse(*args):
            raise AssertionError("a kernel was compiled")
        kernel_store.StoredKernel._compile = refuse
    rng = np.random.default_rng(0)
    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    x, w1, w2 = (bf.Node(rng.normal(size=s).astype(dtype)) for s in ((3, 4), (4, 5), (5, 2)))
    root = (bf.func.tanh(bf.func.tanh(x @ w1) @ w2).sum(axis=0) * bf.Node(np.array([1.0, -2.0], dtype))).sum()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root.backprop(values_to_compute=("grad", "abs_val_grad", "entropy", "max_grad", "max_path"))
    hi, consumer, source = x.max_path_of_output_wrt_node
    print(json.dumps({"grad": np.asarray(x.grad).tolist(), "abs": np.asarray(x.abs_val_grad).tolist(),
                      "entropy": np.asarray(x.compute_entropy()).tolist(), "max_path": np.asarray(hi).tolist(),
                      "pointers": np.asarray(consumer).tolist() + np.asarray(source).tolist(),
                      "dtype": str(np.asarray(x.grad).dtype), "warnings": [str(w.message) for w in caught]}))
""")


def sweep(folder, keep=True, mode="", x64=False, precision=None):
    env = dict(os.environ, JAX_ENABLE_X64="1" if x64 else "0", JAX_PLATFORMS="cpu")
    env.pop("JAX_DEFAULT_MATMUL_PRECISION", None)
    if precision is not None:
        env["JAX_DEFAULT_MATMUL_PRECISION"] = precision
    done = subprocess.run([sys.executable, "-c", SWEEP, str(folder), "keep" if keep else "off", mode],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def kernels(folder):
    where = folder / "bf_kernels"
    return sorted(where.iterdir()) if where.exists() else []


def same_numbers(a, b):
    for field in ("grad", "abs", "entropy", "max_path", "pointers"):
        np.testing.assert_array_equal(np.asarray(a[field]), np.asarray(b[field]), err_msg=field)


def test_a_new_process_loads_every_kernel_and_computes_the_same_values(tmp_path):
    first = sweep(tmp_path)
    stored = kernels(tmp_path)
    assert len(stored) >= 5 and not first["warnings"]
    again = sweep(tmp_path, mode="loads only")  # compiling anything would raise
    same_numbers(first, again)
    assert kernels(tmp_path) == stored
    wide = sweep(tmp_path, x64=True)  # float64 kernels are others, kept beside
    assert wide["dtype"] == "float64" and len(kernels(tmp_path)) > len(stored)
    np.testing.assert_allclose(wide["grad"], first["grad"], rtol=1e-5)


def test_kernels_compiled_under_another_matmul_precision_are_others(tmp_path):
    """On a GPU the default precision runs float32 products at reduced precision: a process that
    asks for "highest" must not load the default's contraction kernels (on CPU the numbers agree)."""
    first = sweep(tmp_path)
    stored = kernels(tmp_path)
    precise = sweep(tmp_path, precision="highest")
    assert len(kernels(tmp_path)) > len(stored)  # the matmuls' kernels, kept beside the default's
    np.testing.assert_allclose(precise["grad"], first["grad"], rtol=1e-6)


def test_a_kernel_jax_served_from_its_own_cache_is_not_kept(tmp_path):
    """XLA cannot serialize an executable it loaded from JAX's cache again (a process loading
    that copy fails with "Function ... not found"): such kernels stay with JAX's cache."""
    plain = sweep(tmp_path, keep=False)  # fills JAX's cache only
    assert not kernels(tmp_path)
    served = sweep(tmp_path)
    assert not kernels(tmp_path)
    same_numbers(plain, served)
    same_numbers(plain, sweep(tmp_path))


def test_a_corrupt_kernel_is_compiled_again_and_replaced(tmp_path):
    first = sweep(tmp_path)
    broken = kernels(tmp_path)[0]
    broken.write_bytes(b"not a kernel")
    again = sweep(tmp_path)
    assert any("unreadable kernel" in w for w in again["warnings"])
    same_numbers(first, again)
    # removed (JAX's cache served the compile again, and such a copy is not kept) or replaced
    assert not broken.exists() or broken.read_bytes() != b"not a kernel"
    later = sweep(tmp_path)
    assert not later["warnings"]
    same_numbers(first, later)


def test_kernels_without_a_stable_description_or_a_folder_stay_plain_jit(monkeypatch, tmp_path):
    jitted = jax.jit(lambda x: x + 1)
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    try:
        monkeypatch.setattr(kernel_store, "_enabled", True)
        assert isinstance(kernel_store.stored(jitted, ("op", (3, np.dtype("float32")))), kernel_store.StoredKernel)
        assert kernel_store.stored(jitted, ("op", lambda x: x)) is jitted  # a function has no stable text
        monkeypatch.setattr(kernel_store, "_enabled", False)
        assert kernel_store.stored(jitted, ("op", (3,))) is jitted
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_stable_texts_name_values_not_objects():
    text = kernel_store._stable_text
    assert text((1, "a", None, slice(0, 2), np.dtype("float32"), float)) == text((1, "a", None, slice(0, 2),
                                                                                 np.dtype("float32"), float))
    assert text((1, 2)) != text([1, 2]) != text((1, (2,)))
    assert text(np.arange(3)) != text(np.arange(3) + 1)
    for unstable in (object(), lambda: 0, {"a": 1}):
        try:
            text(unstable)
        except TypeError:
            continue
        raise AssertionError(f"{unstable!r} got a stable text")


def test_a_folder_that_cannot_be_written_warns_once_per_folder(tmp_path):
    import warnings

    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for folder in ("one", "one", "one", "two"):
            kernel_store._write(str(blocker / folder / "k.kernel"), b"kernel")
    assert [str(w.message).split(" (")[0] for w in caught] == [
        f"could not keep compiled kernels in {blocker / 'one'}", f"could not keep compiled kernels in {blocker / 'two'}"]


def test_a_sweep_whose_kernel_folder_cannot_be_used_runs_as_without_one(tmp_path, monkeypatch):
    """Neither read (no file there) nor written: at most the one warning about writing (none when
    JAX's own cache served every compile, as it may inside a long test session)."""
    import warnings

    import brunoflow as bf
    from brunoflow.ad import primitive

    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(kernel_store, "folder", lambda: str(blocker / "bf_kernels"))
    monkeypatch.setattr(primitive, "_backward_cache", {})  # kernels made again, stored this time
    rng = np.random.default_rng(2)
    x, w = bf.Node(rng.normal(size=(2, 3)).astype(np.float32)), bf.Node(rng.normal(size=(3, 4)).astype(np.float32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = bf.func.tanh(x @ w).sum()
        root.backprop(values_to_compute=("grad", "max_path"))
    assert len(caught) <= 1 and all("could not keep compiled kernels" in str(m.message) for m in caught)
    assert any(isinstance(k, kernel_store.StoredKernel) for k in primitive._backward_cache.values())
    expected = (1 - np.tanh(np.asarray(x.val) @ np.asarray(w.val)) ** 2) @ np.asarray(w.val).T
    np.testing.assert_allclose(np.asarray(x.grad), expected, rtol=1e-5)
