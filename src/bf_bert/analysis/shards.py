"""Which items one shard of a dataset run analyses.

A shard is a 0-based pair (i, n), 0 <= i < n, written "i/n" on the command line: the three
shards of a 3-way split are 0/3, 1/3 and 2/3. Item `id` belongs to shard blake2b(id) mod n, so
the shards are disjoint and cover every id whatever order a reader yields rows in, and a shard
can run on any machine without knowing the others. Python's hash() would not do: it is salted
per process, so two machines would disagree on the split.

Under a SLURM job array the shard comes from the environment (see `shard_from_env`); an explicit
"i/n" wins over it.
"""

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping

Shard = tuple[int, int]

_USAGE = "expected 'i/n' with 0 <= i < n (0-based: the shards of a 3-way split are 0/3, 1/3, 2/3)"


def as_shard(value: "str | Shard") -> Shard:
    """(i, n) from "i/n" or from a pair, checked."""
    if isinstance(value, str):
        head, sep, tail = value.strip().partition("/")
        try:
            i, n = int(head), int(tail)
        except ValueError:
            raise ValueError(f"shard {value!r}: {_USAGE}") from None
        if not sep:
            raise ValueError(f"shard {value!r}: {_USAGE}")
    else:
        try:
            i, n = value
        except (TypeError, ValueError):
            raise ValueError(f"shard {value!r}: {_USAGE}") from None
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (i, n)):
            raise ValueError(f"shard {value!r}: {_USAGE}")
    if n < 1 or not 0 <= i < n:
        hint = f"; did you mean {i - 1}/{n}?" if n >= 1 and i == n else ""
        raise ValueError(f"shard {value!r}: {_USAGE}{hint}")
    return i, n


parse_shard = as_shard


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard of this SLURM array task, or None outside a job array.

    SLURM numbers tasks as the user wrote `--array` (1-10, 0-99:2, ...), so the shard index is
    (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP, out of
    SLURM_ARRAY_TASK_COUNT shards. A list like --array=0,3,7 has no such index: it is refused.
    """
    env = os.environ if env is None else env
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP")
    defaults = {"SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "1"}
    try:
        task, count, low, step = (int(env.get(k, defaults.get(k, ""))) for k in names)
    except ValueError:
        seen = ", ".join(f"{k}={env.get(k)!r}" for k in names)
        raise ValueError(f"SLURM array variables must be integers ({seen}); "
                         "or pass --shard i/n explicitly") from None
    offset, rest = divmod(task - low, max(step, 1))
    if rest or not 0 <= offset < count:
        raise ValueError(
            f"SLURM task {task} (array min {low}, step {step}, count {count}) is not one of {count} "
            "evenly spaced tasks; use a range such as --array=0-N (optionally :step), "
            "or pass --shard i/n explicitly")
    return offset, count


def resolve_shard(spec: "str | Shard | None" = None, env: Mapping[str, str] | None = None) -> Shard:
    """The shard to run: `spec` if given, else the SLURM array's, else the whole dataset (0, 1)."""
    if spec is not None:
        return as_shard(spec)
    return shard_from_env(env) or (0, 1)


def shard_of(item_id: str, n: int) -> int:
    """The shard (0..n-1) that owns `item_id`, the same on every machine and Python version."""
    digest = hashlib.blake2b(str(item_id).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def in_shard(item_id: str, shard: "str | Shard") -> bool:
    i, n = as_shard(shard)
    return n == 1 or shard_of(item_id, n) == i


def select(items: Iterable, shard: "str | Shard", key: Callable | None = None) -> Iterator:
    """The items of `shard`, lazily and in their order; `key` gives an item's id (default: `.id`,
    or the item itself when it has none, so plain id strings work)."""
    i, n = as_shard(shard)
    key = key or (lambda item: getattr(item, "id", item))
    return (item for item in items if n == 1 or shard_of(key(item), n) == i)


def shard_label(shard: "str | Shard") -> str:
    """How file names spell a shard: "shard-<i>-of-<n>"."""
    i, n = as_shard(shard)
    return f"shard-{i}-of-{n}"
