"""Local files, saved folders and in-memory datasets as HF `datasets.Dataset`s — never the network.

File kinds by suffix (after any .gz/.bz2/.xz): .tsv/.tab/.txt tab-separated, .csv comma-separated,
.jsonl/.json JSON, .parquet Parquet; a folder is one written by `Dataset.save_to_disk`.
Delimited files are read with every column as a string and no NA guessing, so a word such as
"NA" or "null" or an id "007" arrives as written, and a row with too many fields comes back as a
row whose first value starts with `BAD_ROW` (then the reason) instead of failing the whole read.
"""

import bz2
import contextlib
import csv
import functools
import gzip
import lzma
import os
from pathlib import Path

COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
DELIMITERS = {".tsv": "\t", ".tab": "\t", ".txt": "\t", ".csv": ","}
JSON_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)
BAD_ROW = "\x00bad row: "
KINDS = "a .tsv/.tab/.txt/.csv/.jsonl/.json/.parquet file (optionally .gz/.bz2/.xz) or a save_to_disk folder"


def datasets_module():
    """`datasets`, imported on first use (it takes a second) and told it is offline."""
    # the env var only counts before the first import; the data are always local files anyway
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets
    return datasets


def resolve(source):
    """A `datasets.Dataset` as is (the only split of a `DatasetDict`), else an existing `Path`."""
    datasets = datasets_module()
    if isinstance(source, datasets.DatasetDict):
        if len(source) != 1:
            raise ValueError(f"the DatasetDict has splits {sorted(source)}; pass one of them, e.g. dataset['test']")
        (source,) = source.values()
    if isinstance(source, datasets.Dataset):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path or a datasets.Dataset, not {type(source).__name__}")
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return path


def suffix(path: Path) -> str:
    """The suffix that says the file's kind, past a compression suffix ("x.tsv.gz" -> ".tsv")."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def delimiter(source) -> str | None:
    """The field delimiter when `source` is a delimited file, else None."""
    if not isinstance(source, Path) or source.is_dir():
        return None
    kind = suffix(source)
    if kind in DELIMITERS:
        return DELIMITERS[kind]
    if kind in JSON_SUFFIXES + PARQUET_SUFFIXES:
        return None
    raise ValueError(f"{source}: cannot tell what kind of file this is from its name; use {KINDS}")


def first_fields(path: Path) -> list[str]:
    """The first line of a delimited file, split into fields as the csv module does."""
    opener = COMPRESSED.get(path.suffix.lower(), open)
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        line = f.readline()
    return next(csv.reader([line], delimiter=delimiter(path)), []) if line.strip() else []


def load(source, names=None, quoting=csv.QUOTE_MINIMAL):
    """`source` (a `resolve` result) as a `datasets.Dataset`.

    For a delimited file, `names` are its columns when it has no header line (else the header
    gives them) and `quoting` is the csv module's (QUOTE_NONE when quotes are plain text).
    """
    datasets = datasets_module()
    if isinstance(source, datasets.Dataset):
        return source
    with _quiet(datasets):
        return _load(datasets, source, names, quoting)


def load_with_columns(source, required, format_name, needs):
    """`load(resolve(source))`, or a ValueError naming the columns a format needs that it lacks."""
    dataset = load(resolve(source))
    missing = [c for c in required if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{source}: no column(s) {missing} (it has {dataset.column_names}); "
                         f"the {format_name} format needs {needs}")
    return dataset


@contextlib.contextmanager
def _quiet(datasets):
    # a "Generating train split" bar per small local file is noise next to the runner's own bar
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _load(datasets, source, names, quoting):
    if source.is_dir():
        try:
            loaded = datasets.load_from_disk(str(source))
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{source}: not a folder written by Dataset.save_to_disk ({e})") from None
        return resolve(loaded)
    files = str(source.resolve())
    sep = delimiter(source)
    if sep is None:
        builder = "parquet" if suffix(source) in PARQUET_SUFFIXES else "json"
        try:
            return datasets.load_dataset(builder, data_files=files, split="train")
        except Exception as e:  # datasets wraps the reader's error in a generation error without the path
            cause = e.__cause__ or e
            raise ValueError(f"{source}: cannot read it as {builder.capitalize()} "
                             f"({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}); "
                             f"is the file truncated or of another kind? Use {KINDS}") from e
    header = first_fields(source)
    if not header:
        raise ValueError(f"{source}: empty, or its first line is blank; it needs "
                         + ("rows" if names is not None else "a header line naming the columns"))
    columns = list(names) if names is not None else header
    # the python engine is what lets a callable see over-long rows (the C engine can only drop them)
    return datasets.load_dataset(
        "csv", data_files=files, split="train", delimiter=sep, quoting=quoting,
        header=None if names is not None else 0, column_names=list(names) if names is not None else None,
        features=datasets.Features({name: datasets.Value("string") for name in columns}),
        keep_default_na=False, na_filter=False, engine="python",
        on_bad_lines=functools.partial(_bad_line, len(columns), "tab" if sep == "\t" else repr(sep)))


def _bad_line(expected: int, sep: str, fields: list) -> list:
    return [f"{BAD_ROW}expected {expected} {sep}-separated fields, got {len(fields)}"]


def rows(dataset):
    """The dataset's rows as dicts, read in batches (row-by-row access is much slower)."""
    # with_format(None): a dataset formatted for numpy or torch would hand out arrays
    for batch in dataset.with_format(None).iter(batch_size=1000):
        yield from (dict(zip(batch, values)) for values in zip(*batch.values()))
