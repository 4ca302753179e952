"""Dataset readers for the subject–verb agreement analysis: a file or dataset in, `Item`s out.

    read_items(source, format=None, limit=None, **columns) -> ReadResult(items, skipped, format)

`source` is a path (a .tsv/.tab/.txt/.csv/.jsonl/.json/.parquet file, or a folder written by
`Dataset.save_to_disk`) or an in-memory `datasets.Dataset`; everything is read through HF
`datasets`, offline. Formats, one module each (their docstrings give the column mapping):

    lgd        Goldberg (2019)'s LGD TSV (Linzen et al. 2016 sentences), as in Du et al. (2023)
    gulordava  Gulordava et al. (2018)'s generated.tab
    grammar    this project's agreement grammar, written by `write_grammar_dataset`
    columns    any table, its columns named by `text_column=`, `target_column=`, ...

With `format=None` the format is told from the header (for LGD, which has none, from the first
row). A row that cannot become an item is returned as `Skipped(id, reason)`, never raised.
"""

from ..items import ReadResult
from . import columns, grammar, gulordava, lgd, load
from .grammar import grammar_items, write_grammar_dataset

# detection tries them in this order: the more specific header first
READERS = {module.NAME: module for module in (gulordava, grammar, lgd, columns)}
FORMATS = tuple(READERS)


def detect_format(source) -> str:
    """The format of `source`, told from its header, its first row (LGD) or its column names.

    Raises ValueError naming the formats and the columns each needs when none fits.
    """
    source = load.resolve(source)
    if load.delimiter(source) is not None:
        fields, what = load.first_fields(source), "first line"
    else:
        fields, what = load.load(source).column_names, "columns"
    for name, module in READERS.items():
        if module.matches(fields):
            return name
    needs = "\n".join(f"  {name}: {module.NEEDS}" for name, module in READERS.items())
    shown = fields if len(fields) <= 20 else fields[:20] + ["..."]
    raise ValueError(f"{source}: cannot tell which format this is (its {what}: {shown}). "
                     f"Pass format= one of these, with what it needs:\n{needs}")


def read_items(source, format: str | None = None, limit: int | None = None, **columns) -> ReadResult:
    """Read `source` as `format` (detected when None) into a `ReadResult`, stopping after `limit` items.

    `**columns` are the "columns" format's options (text_column, target_column, contrast_column,
    group_column, id_column, meta_columns, mask_token); giving any implies format="columns".
    A missing file raises FileNotFoundError; bad rows come back in `.skipped`.
    """
    unknown = set(columns) - set(READERS["columns"].OPTIONS)
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}; the columns format takes {READERS['columns'].OPTIONS}")
    if format is None:
        format = "columns" if columns else detect_format(source)
    if format not in READERS:
        raise ValueError(f"unknown format {format!r}; choose one of {FORMATS}")
    if columns and format != "columns":
        raise TypeError(f"{sorted(columns)} are options of format='columns', not of format={format!r}")
    return READERS[format].read(source, limit, **columns)


__all__ = ["FORMATS", "ReadResult", "detect_format", "grammar_items", "read_items", "write_grammar_dataset"]
