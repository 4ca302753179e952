"""A persistent XLA compilation cache for the command line and the demo.

brunoflow compiles one small kernel per (op, shapes, semirings); the first all-semiring
backprop of a new input shape spends most of its time there (~50 s of the demo's first run on
2 cores). JAX can keep compiled programs on disk: the second run of the demo takes ~15 s.
Only entry points turn it on; importing the library never changes a user's JAX settings.
"""

import os


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
    return path
