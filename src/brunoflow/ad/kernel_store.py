"""Compiled backward kernels kept on disk, so that a new process loads them instead of tracing.

JAX's persistent compilation cache keeps what XLA compiled, but finding an entry needs the
kernel traced and lowered first (its key hashes the lowered program): for the ~50 backward
kernels of one BERT explanation that is ~2 s of Python, GIL-bound, in every new process. With
`keep_kernels(True)` and JAX's cache folder set, each backward kernel's executable is written
to `<cache folder>/bf_kernels` under a key made of what the kernel is (op, static parameters,
semirings, input layout, argument shapes and dtypes, `jax_settings`: float64 mode and matmul
precision) and of where it runs (JAX version, backend, device, brunoflow's source), and a later
process loads it by that key alone.
A kernel whose description has no stable text (a static parameter that is a function, say),
or one called while tracing, stays a plain `jax.jit`.
"""

import functools
import hashlib
import os
import pickle
import threading
import warnings

import jax
import numpy as np
from jax.experimental import serialize_executable

from . import jax_settings

_enabled = False
_listening = False
_unwritable = set()
# JAX's cache hits, per thread: an executable JAX loaded from its own cache serializes without
# its code (a process that loads it fails with "Function ... not found"), so only fresh
# compiles are kept
_hits = threading.local()


def keep_kernels(on=True):
    """Keep backward kernels in JAX's persistent cache folder (when one is set and enabled)."""
    global _enabled, _listening
    if on and not _listening:  # JAX keeps listeners for the process: one is enough
        jax.monitoring.register_event_listener(_count_hit)
        _listening = True
    _enabled = bool(on)


def _count_hit(event, **_):
    if event == "/jax/compilation_cache/cache_hits":
        _hits.count = getattr(_hits, "count", 0) + 1


def folder():
    """Where kernels are kept now, or None."""
    root = jax.config.jax_compilation_cache_dir
    if not _enabled or not root or not jax.config.jax_enable_compilation_cache:
        return None
    return os.path.join(root, "bf_kernels")


def stored(jitted, description):
    """`jitted`, or a StoredKernel of it when kernels are kept and `description` has a stable text."""
    if folder() is None:
        return jitted
    try:
        text = _stable_text(description)
    except TypeError:
        return jitted
    return StoredKernel(jitted, text)


class StoredKernel:
    """A jitted kernel whose executable comes from the kernel folder (or is compiled and put there)
    on its first call outside a trace, per `jax_settings`; later calls run that executable."""

    def __init__(self, jitted, text):
        self.jitted, self._text, self._compiled = jitted, text, {}
        self._lock = threading.Lock()

    def __call__(self, *args):
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(args)):
            return self.jitted(*args)
        settings = jax_settings.current()  # the trace depends on them
        compiled = self._compiled.get(settings) or self._acquire(args, settings)
        try:
            return compiled(*args)
        except TypeError:  # arguments typed unlike the first call's (a weak type, say): jit's own path
            return self.jitted(*args)

    def load(self):
        """Whether the executable is ready for these JAX settings, loading it from the folder if it
        is there: what a caller that would otherwise compile it ahead (by a first call) asks."""
        settings = jax_settings.current()
        with self._lock:
            if settings not in self._compiled:
                loaded = self._read(self._path(settings))
                if loaded is None:
                    return False
                self._compiled[settings] = loaded
        return True

    def _acquire(self, args, settings):
        with self._lock:
            if settings not in self._compiled:
                path = self._path(settings)
                self._compiled[settings] = self._read(path) or self._compile(args, path)
            return self._compiled[settings]

    def _path(self, settings):
        where = folder()
        x64, precision = settings
        text = f"{self._text} x64={x64} matmul precision={precision}"
        return None if where is None else os.path.join(where, _digest(text) + ".kernel")

    @staticmethod
    def _read(path):
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:  # not kept yet, or a folder that cannot be read: compiled as usual
            return None
        try:
            payload, in_tree, out_tree = pickle.loads(data)
            return serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
        except Exception as err:  # a corrupt or foreign file: removed, and the kernel compiled again
            warnings.warn(f"ignoring the unreadable kernel {path}: {err}")
            try:
                os.remove(path)
            except OSError:
                pass
            return None

    def _compile(self, args, path):
        hits = getattr(_hits, "count", 0)
        compiled = self.jitted.lower(*args).compile()
        if path is None or getattr(_hits, "count", 0) != hits:
            return compiled
        try:
            serialized = serialize_executable.serialize(compiled)
        except (ValueError, NotImplementedError):  # XLA cannot serialize this one: kept in memory only
            return compiled
        _write(path, pickle.dumps(serialized))
        return compiled


def _write(path, data):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(partial, "wb") as f:
            f.write(data)
        os.replace(partial, path)  # readers see a whole file or none
    except OSError as err:
        folder_of = os.path.dirname(path)
        if folder_of not in _unwritable:  # once per folder: a sweep writes ~50 kernels
            _unwritable.add(folder_of)
            warnings.warn(f"could not keep compiled kernels in {folder_of} (they stay in memory): {err}")


def _digest(text):
    return hashlib.sha256((text + _environment()).encode()).hexdigest()


@functools.cache
def _environment():
    device = jax.devices()[0]
    return repr((jax.__version__, jax.default_backend(), device.device_kind, device.client.platform_version,
                 source_digest([os.path.dirname(os.path.dirname(__file__))])))


def source_digest(roots, files=()):
    """A digest of every .py file under `roots` (and of `files`), named relative to their root's
    parent: two installs of one tree agree."""
    pairs = [(root, os.path.join(folder, name)) for root in roots
             for folder, _, names in os.walk(root) for name in names if name.endswith(".py")]
    pairs += list(files)
    digest = hashlib.sha256()
    for root, path in sorted(pairs, key=lambda pair: pair[1]):
        with open(path, "rb") as f:
            digest.update(os.path.relpath(path, os.path.dirname(root)).encode() + f.read())
    return digest.hexdigest()


def _stable_text(value):
    """A text that names `value` the same way in every process, or TypeError."""
    if value is None or isinstance(value, (bool, int, float, str)) or value is Ellipsis:
        return repr(value)
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__}({','.join(_stable_text(v) for v in value)})"
    if isinstance(value, slice):
        return f"slice({_stable_text(value.start)},{_stable_text(value.stop)},{_stable_text(value.step)})"
    if isinstance(value, np.dtype):
        return f"dtype({value.name})"
    if isinstance(value, type) and value.__module__ in ("builtins", "numpy", "jax.numpy"):
        return f"type({value.__module__}.{value.__qualname__})"
    if isinstance(value, np.ndarray):
        return f"array({value.dtype.name},{value.shape},{hashlib.sha256(value.tobytes()).hexdigest()})"
    raise TypeError(f"no stable text for {type(value).__name__}")
