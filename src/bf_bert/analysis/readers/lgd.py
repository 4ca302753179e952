"""The LGD agreement TSV of Goldberg (2019)'s bert-syntax repository, as Du et al. (2023) use it.

It holds Linzen, Goldberg & Dupoux (2016)'s sentences whose intervening nouns all differ from
the subject in number. Tab-separated, no header, quotes are plain text, one item per row:

    n_attractors  sentence  masked_sentence  good_word  bad_word
    2             <as written>  <the verb as ***mask***>  <correct verb>  <verb in the other number>

Item: id "lgd-<row>" (row counted from 0, blank lines not counted), text = masked_sentence with
***mask*** -> MASK, target = good_word, contrast = bad_word, meta {"n_attractors": int}.
The data do not say where the subject and its attractors are, so meta has no subject_word or
attractor_words. A file that starts with a header line of exactly these column names is read
too, as is a dataset (in memory, saved, Parquet, JSON) with these columns.
"""

import csv

from ..items import MASK, Item
from . import load, rows

NAME = "lgd"
COLUMNS = ("n_attractors", "sentence", "masked_sentence", "good_word", "bad_word")
MARK = "***mask***"
NEEDS = ("no header; 5 tab-separated fields: n_attractors, sentence, masked_sentence (verb as ***mask***), "
         "good_word, bad_word — or columns with those names")


def matches(fields: list[str]) -> bool:
    """Whether a header (or, for a file without one, its first row) looks like this format."""
    if set(COLUMNS) - {"sentence"} <= set(fields):
        return True
    return len(fields) == len(COLUMNS) and fields[0].strip().isdigit() and MARK in fields[2]


def read(source, limit: int | None = None):
    """A `ReadResult` of the LGD items in `source` (a path or a `datasets.Dataset`)."""
    source = load.resolve(source)
    names = None
    if load.delimiter(source) is not None and tuple(load.first_fields(source)) != COLUMNS:
        names = COLUMNS
    # QUOTE_NONE: the sentences are raw text, where a quote mark is just a word
    dataset = load.load(source, names=names, quoting=csv.QUOTE_NONE)
    return rows.collect(_outcomes(load.rows(dataset)), limit, NAME)


def _outcomes(table):
    for n, row in enumerate(table):
        id_ = f"lgd-{n:06d}"
        yield rows.attempt(id_, _item, id_, row)


def _item(id_: str, row: dict) -> Item:
    problem = rows.parse_error(row)
    if problem:
        raise rows.BadRow(problem)
    missing = [c for c in COLUMNS if c not in row and c != "sentence"]
    if missing:
        raise rows.BadRow(f"no column {missing}")
    n_attractors = rows.count(row["n_attractors"], "n_attractors")
    masked = "" if rows.blank(row["masked_sentence"]) else str(row["masked_sentence"])
    if MASK in masked:  # a literal [MASK] would become a second mask
        raise rows.BadRow(f"masked_sentence already holds {MASK!r}; only {MARK} may mark the verb")
    text = rows.masked_text(masked.replace(MARK, MASK), f"masked_sentence (expected one {MARK})")
    target, contrast = rows.word(row["good_word"], "good_word"), rows.word(row["bad_word"], "bad_word")
    if target == contrast:
        raise rows.BadRow(f"good_word and bad_word are both {target!r}")
    return Item(id_, text, target, contrast, {"n_attractors": n_attractors})
