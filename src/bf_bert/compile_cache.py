"""A persistent XLA compilation cache for the command line and the demo, with the explanation
programs (exported, so a new process skips their trace) and brunoflow's backward kernels
(executables, `brunoflow.ad.kernel_store`) kept next to it.

An explanation of a new length compiles its program and one small kernel per (op, shapes,
semirings) of the top-path stage; that is most of a first run (the demo: 17.5 s on 2 cores).
JAX keeps what XLA compiled on disk, and the programs and kernels are kept beside it: the demo's
second run takes 7.3 s (both measured 2026-12-05).
Only entry points turn it on; importing the library never changes a user's JAX settings.
"""

import functools
import hashlib
import os
import warnings

from brunoflow.ad import kernel_store


def enable_compilation_cache():
    """Use $JAX_COMPILATION_CACHE_DIR if set, else $BF_BERT_CACHE/jax or ~/.cache/bf_bert/jax."""
    import jax

    path = jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if not path:
        root = os.environ.get("BF_BERT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "bf_bert")
        path = os.path.join(root, "jax")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    # the kernels are small and quick to compile one by one; together they are the cost, so
    # every one is kept, wherever the cache folder came from
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # ...and a new process loads the top-path stage's kernels without tracing them
    kernel_store.keep_kernels(True)
    return path


# -- explanation programs, exported -------------------------------------------------------------
# XLA's cache keeps what a compile made, but a new process still traces and lowers a program
# to find its key: for the explanation program that is ~2 s of Python (the whole BF graph and
# backprop). The lowered program itself (StableHLO, via jax.export) is kept next to it, so a
# second process only loads it.

def exported_program(jitted, args, key):
    """`jitted` lowered for `args` as a `jax.export.Exported`: loaded from the cache folder when a
    process wrote it for the same key (which names the arguments' structure, shapes and dtypes),
    code and JAX, else traced and written there. None when the persistent cache is off (nothing
    is written outside it)."""
    import jax

    folder = _programs_folder()
    if folder is None:
        return None
    name = hashlib.sha256(repr((key, jax.__version__, jax.default_backend(), _code_version())).encode()).hexdigest()
    path = os.path.join(folder, name + ".exported")
    try:
        with open(path, "rb") as f:
            return jax.export.deserialize(bytearray(f.read()))
    except FileNotFoundError:
        pass
    except Exception as err:  # a corrupt or foreign file: trace again and replace it
        warnings.warn(f"ignoring the unreadable cached program {path}: {err}")
    exported = jax.export.export(jitted)(*args)
    try:
        os.makedirs(folder, exist_ok=True)
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "wb") as f:
            f.write(exported.serialize())
        os.replace(partial, path)  # readers see a whole file or none
    except OSError as err:
        warnings.warn(f"could not keep the compiled program in {folder}: {err}")
    return exported


def _programs_folder():
    import jax

    folder = jax.config.jax_compilation_cache_dir
    if not folder or not jax.config.jax_enable_compilation_cache:
        return None
    return os.path.join(folder, "bf_programs")


@functools.cache
def _code_version():
    """A digest of the source a program is traced from: brunoflow, bf_bert, the transformers
    overlay's files, and transformers' version."""
    import transformers

    import brunoflow

    overlay = os.path.dirname(transformers.__file__)
    files = [(overlay, os.path.join(root, name)) for root, _, names in os.walk(overlay) for name in names
             if name.endswith(".py") and (name.startswith("modeling_bf_") or name.startswith("bf_"))]
    sources = kernel_store.source_digest([os.path.dirname(brunoflow.__file__), os.path.dirname(__file__)], files)
    return hashlib.sha256((transformers.__version__ + sources).encode()).hexdigest()
