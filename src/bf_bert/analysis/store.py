"""Incremental Parquet store for dataset-scale analyses: long ("tidy") tables written a batch at a
time, so a killed run loses at most the batch in flight and shards run anywhere, then merge.

On disk, in one out_dir:

    run.json                       {"store": 1, "config": {...}}: what produced the rows. Resuming
                                   or merging refuses a different config (VOLATILE_KEYS aside).
    parts/<table>/shard-<i>-of-<n>-part-<k>.parquet
                                   one file per table per write() (k = 000000, 000001, ... per
                                   shard); written as .<name>.tmp-<pid> and renamed, so a visible
                                   .parquet is always complete.
    <table>.parquet                merge()'s output: every shard's finished parts, one file each.

A batch is finished once its parts/sentences/ file exists: write() puts it last, so a batch cut
short leaves other tables' parts with no sentences part beside them ("orphans"). Every reader
ignores orphans and a resuming writer deletes its own shard's, so no row is ever counted twice.
Shards may share one out_dir (on a shared filesystem) or write their own and be merged.
"""

import json
import os
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bf_bert.analysis.shards import as_shard, shard_label

COMMIT_TABLE = "sentences"
# Each sentence id is a row of exactly one of these, once over all shards: done_ids() reads them
# and merge() refuses duplicates. A skipped sentence is finished too; retrying it needs a new out_dir.
ID_TABLES = ("sentences", "skipped")
KEY_COLUMNS = ("sentence_id", "token_index", "layer", "branch")
# Config keys (at any depth) that change how a run goes but not any row it writes.
VOLATILE_KEYS = frozenset({"batch_size", "progress", "resume", "shard", "out_dir", "out", "limit",
                           "workers", "num_workers", "verbose", "quiet", "log_level"})
ROW_GROUP_ROWS = 256 * 1024  # merged files: batch-sized row groups would make reads slow
_PART = re.compile(r"^shard-(\d+)-of-(\d+)-part-(\d+)\.parquet$")
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class StoreError(RuntimeError):
    pass


def _parts(table_dir: Path) -> dict[tuple[int, int, int], Path]:
    """{(i, n, k): path} of the complete part files in one parts/<table>/ folder."""
    if not table_dir.is_dir():
        return {}
    found = ((_PART.match(p.name), p) for p in table_dir.iterdir())
    return {tuple(map(int, m.groups())): p for m, p in found if m}


def _finished(out_dir, table: str) -> list[Path]:
    parts = Path(out_dir) / "parts"
    done = _parts(parts / COMMIT_TABLE).keys()
    return [p for key, p in sorted(_parts(parts / table).items()) if key in done]


def _files(out_dir, table: str, *, prefer_merged: bool) -> list[Path]:
    merged = Path(out_dir) / f"{table}.parquet"
    parts = [] if prefer_merged and merged.is_file() else _finished(out_dir, table)
    return parts or ([merged] if merged.is_file() else [])


def tables(out_dir) -> list[str]:
    """Names of the tables with finished rows (or a merged file) in out_dir."""
    d = Path(out_dir)
    names = {p.name for p in (d / "parts").iterdir() if p.is_dir()} if (d / "parts").is_dir() else set()
    names |= {p.stem for p in d.glob("*.parquet")}
    return sorted(t for t in names if _files(d, t, prefer_merged=True))


def _write_atomic(path: Path, write) -> None:
    """write(tmp) then rename: a reader, or a run killed mid-write, never sees a partial file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_parquet(table: pa.Table, path: Path) -> None:
    _write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def _write_json(path: Path, obj) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def _to_arrow(value) -> pa.Table:
    table = (value if isinstance(value, pa.Table) else pa.Table.from_pylist(value) if isinstance(value, list)
             else pa.Table.from_pandas(value, preserve_index=False))
    # pandas metadata would make rows read back differently depending on how they were written.
    return table.replace_schema_metadata(None)


def _schema(files: list[Path]) -> pa.Schema:
    """One schema for parts written batch by batch: a batch whose lists are all empty or whose
    column is all null has a narrower type than the others, which permissive promotion widens."""
    schemas = sorted((pq.read_schema(f).remove_metadata() for f in files), key=lambda s: -len(s))
    return pa.unify_schemas(schemas, promote_options="permissive")


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names
            else pa.chunked_array([pa.nulls(len(table), f.type)], f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _ids(path: Path) -> list:
    if "sentence_id" not in pq.read_schema(path).names:
        return []
    return pq.read_table(path, columns=["sentence_id"]).column(0).to_pylist()


def done_ids(out_dir) -> set[str]:
    """Sentence ids finished in out_dir: rows of `sentences` or `skipped` in any shard's finished
    parts, or in the merged files."""
    found = set()
    for table in ID_TABLES:
        merged = Path(out_dir) / f"{table}.parquet"
        for f in _finished(out_dir, table) + ([merged] if merged.is_file() else []):
            found.update(_ids(f))
    return found


def _read_config(out_dir) -> dict:
    path = Path(out_dir) / "run.json"
    if not path.is_file():
        raise StoreError(f"{path} is missing: {out_dir} is not a TableWriter output folder")
    return json.loads(path.read_text())["config"]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(old: dict, new: dict, ignore=VOLATILE_KEYS) -> dict[str, tuple]:
    """{dotted key: (old value, new value)} for keys that differ, missing ones as "<absent>"."""
    a, b = _flatten(old), _flatten(new)
    return {k: (a.get(k, "<absent>"), b.get(k, "<absent>")) for k in sorted(a.keys() | b.keys())
            if not set(k.split(".")) & set(ignore) and a.get(k, "<absent>") != b.get(k, "<absent>")}


def _describe(diff: dict) -> str:
    return "; ".join(f"{k}: {o!r:.60} there, {n!r:.60} here" for k, (o, n) in diff.items())


class TableWriter:
    """Appends one part per table per batch under out_dir/parts/<table>/ for one shard (layout:
    module docstring). config must be JSON-able (Paths become strings); it goes to run.json."""

    def __init__(self, out_dir, *, shard=(0, 1), config: dict, resume: bool = False,
                 ignore=VOLATILE_KEYS):
        self.out_dir, self.shard = Path(out_dir), as_shard(shard)
        self.label = shard_label(self.shard)
        self.config = json.loads(json.dumps(config, sort_keys=True, default=str))
        parts = self.out_dir / "parts"
        mine = sorted(parts.glob(f"*/{self.label}-part-*")) + sorted(parts.glob(f"*/.{self.label}-part-*"))
        if mine and not resume:
            raise StoreError(f"{self.out_dir} already holds {len(mine)} part file(s) of {self.label}, "
                             "e.g. " + str(mine[0]) + ": pass --resume (resume=True) to continue "
                             "that run, or choose a new out_dir; parts are never overwritten")
        run_json = self.out_dir / "run.json"
        if run_json.is_file() and (any(parts.glob("*/*.parquet")) or any(self.out_dir.glob("*.parquet"))):
            diff = config_diff(_read_config(self.out_dir), self.config, ignore)
            if diff:
                raise StoreError(f"{run_json} was written by a run with a different config "
                                 f"({_describe(diff)}); resume with the same settings, or choose "
                                 "a new out_dir")
        else:  # nothing written yet: a run that died before its first batch binds nothing
            self.out_dir.mkdir(parents=True, exist_ok=True)
            _write_json(run_json, {"store": 1, "config": self.config})
        finished = {k for (i, n, k) in _parts(parts / COMMIT_TABLE) if (i, n) == self.shard}
        for path in mine:  # only resume gets here with files: drop this shard's orphans and temp files
            m = _PART.match(path.name)
            if not m or int(m.group(3)) not in finished:
                path.unlink(missing_ok=True)
        self._next = max(finished, default=-1) + 1
        self._done = done_ids(self.out_dir)

    def done_ids(self) -> set[str]:
        """Sentence ids finished in this out_dir (any shard), including this writer's batches."""
        return set(self._done)

    def write(self, tables: dict) -> None:
        """Write one batch: {table name: DataFrame | list of row dicts | pyarrow.Table}.

        The "sentences" part goes last and marks the batch finished; it is written (empty) even
        when the batch has none, so an all-skipped batch counts as done. An all-empty batch
        writes nothing."""
        arrow = {name: t for name, t in ((n, _to_arrow(v)) for n, v in tables.items()) if t.num_columns}
        for name, table in arrow.items():
            if not _TABLE_NAME.match(name):
                raise StoreError(f"table name {name!r}: use letters, digits and _ (it names a folder)")
            if name in ID_TABLES and table.num_rows and "sentence_id" not in table.column_names:
                raise StoreError(f"table {name!r} needs a sentence_id column: resume reads it")
        if not any(t.num_rows for t in arrow.values()):
            return
        merged = sorted(p.name for p in self.out_dir.glob("*.parquet"))
        if merged:
            raise StoreError(f"{self.out_dir} holds merged tables ({', '.join(merged)}) that new parts "
                             "would leave stale; delete them, finish the run, then merge again")
        marker = arrow.pop(COMMIT_TABLE, None)
        if marker is None or "sentence_id" not in marker.column_names:
            marker = pa.table({"sentence_id": pa.array([], pa.string())})
        id_tables = [t for t in (marker, *map(arrow.get, ID_TABLES[1:])) if t is not None]
        ids = [i for t in id_tables if "sentence_id" in t.column_names for i in t.column("sentence_id").to_pylist()]
        again = sorted({i for i, c in Counter(ids).items() if c > 1 or i in self._done})
        if again:
            raise StoreError(f"sentence id(s) {again[:5]} already finished in {self.out_dir} or repeated "
                             "in this batch; skip ids in done_ids() and give each sentence one row")
        name = f"{self.label}-part-{self._next:06d}.parquet"
        for table_name, table in sorted(arrow.items()):
            (self.out_dir / "parts" / table_name).mkdir(parents=True, exist_ok=True)
            _write_parquet(table, self.out_dir / "parts" / table_name / name)
        (self.out_dir / "parts" / COMMIT_TABLE).mkdir(parents=True, exist_ok=True)
        _write_parquet(marker, self.out_dir / "parts" / COMMIT_TABLE / name)
        self._next += 1
        self._done.update(ids)


def _sorted(table: pa.Table) -> pa.Table:
    keys = [(c, "ascending") for c in KEY_COLUMNS if c in table.column_names]
    return table.sort_by(keys) if keys else table


def _to_pandas(table: pa.Table):
    """DataFrame whose list cells are Python lists (to_pandas alone gives numpy arrays)."""
    lists = [f.name for f in table.schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)]
    df = table.drop_columns(lists).to_pandas()
    for name in lists:
        df[name] = table.column(name).to_pylist()
    return df[table.column_names]


def read_table(out_dir, table: str):
    """One table of out_dir as a DataFrame: the merged file if there is one, else every shard's
    finished parts; rows sorted by sentence_id, then token_index, layer, branch where present."""
    files = _files(out_dir, table, prefer_merged=True)
    if not files:
        there = ", ".join(tables(out_dir)) or "none"
        raise StoreError(f"no table {table!r} in {out_dir} (tables there: {there})")
    schema = _schema(files)
    return _to_pandas(_sorted(pa.concat_tables([_conform(pq.read_table(f), schema) for f in files])))


def merge(out_dir, *, sources=None, ignore=VOLATILE_KEYS) -> dict[str, Path]:
    """Concatenate the finished parts of every source (default: out_dir itself; a source without
    parts contributes its merged files) into out_dir/<table>.parquet. Checks first that all
    run.json configs agree and that no sentence id is finished twice, so a failed merge writes
    nothing. Streams one part at a time; rows keep part order (read_table sorts). Idempotent."""
    out = Path(out_dir)
    srcs = list(dict.fromkeys(Path(s).resolve() for s in (sources or [out])))
    base = _read_config(srcs[0])
    others = srcs[1:] + ([out] if (out / "run.json").is_file() and out.resolve() not in srcs else [])
    for s in others:
        diff = config_diff(base, _read_config(s), ignore)
        if diff:
            raise StoreError(f"{srcs[0]} and {s} were run with different configs ({_describe(diff)}); "
                             "merge only shards of one run")
    files = {t: [f for s in srcs for f in _files(s, t, prefer_merged=False)] for s in srcs for t in tables(s)}
    seen, dups = {}, []
    for t in ID_TABLES:
        for f in files.get(t, []):
            for i in _ids(f):
                dups += [(i, seen[i], f)] if i in seen else []
                seen.setdefault(i, f)
    if dups:
        i, a, b = dups[0]
        raise StoreError(f"{len(dups)} sentence id(s) finished twice, e.g. {i!r} in {a} and in {b}: "
                         "the same shard (or shards of different n) merged twice; drop one source")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.parquet.tmp-*"):  # left by a merge that was killed
        stale.unlink(missing_ok=True)
    if not (out / "run.json").is_file():
        _write_json(out / "run.json", {"store": 1, "config": base})
    merged = {}
    for table, fs in sorted(files.items()):
        schema = _schema(fs)

        def write(tmp, fs=fs, schema=schema):
            with pq.ParquetWriter(tmp, schema) as w:
                pending = []
                for f in fs:
                    pending.append(_conform(pq.read_table(f), schema))
                    if sum(map(len, pending)) >= ROW_GROUP_ROWS or f is fs[-1]:
                        w.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
                        pending = []
        _write_atomic(out / f"{table}.parquet", write)
        merged[table] = out / f"{table}.parquet"
    return merged
