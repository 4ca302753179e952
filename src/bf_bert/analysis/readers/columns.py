"""Any table with a masked sentence and a target word per row, its columns named by the caller.

    text_column      (default "text") the sentence, with MASK ("[MASK]") or `mask_token` where the word was
    target_column    (default "target") the word that fits there
    contrast_column  optional: the word to compare it with (default "contrast" when there is
                     such a column); an empty cell gives contrast None
    group_column     optional: kept as meta["group"] (e.g. a condition, to aggregate by)
    id_column        optional: the item ids, which must be unique (default "id" when there is
                     such a column); without one, "row-<row>" with rows counted from 0
    meta_columns     optional: more columns kept in meta under their own names; n_attractors,
                     subject_word and attractor_words are read as the analyses expect (int, int,
                     list of int — JSON text such as "[3, 6]" in a CSV)

Delimited files need a header line. A mask token other than "[MASK]" (say RoBERTa's "<mask>")
is named with `mask_token` and becomes MASK.
"""

from ..items import MASK, Item
from . import load, rows

NAME = "columns"
OPTIONS = ("text_column", "target_column", "contrast_column", "group_column", "id_column", "meta_columns",
           "mask_token")
NEEDS = ("a header; text_column= and target_column= name the columns (default text, target); optional "
         "contrast_column, group_column, id_column, meta_columns, mask_token")


def matches(fields: list[str]) -> bool:
    return {"text", "target"} <= set(fields)


def read(source, limit: int | None = None, *, text_column: str = "text", target_column: str = "target",
         contrast_column: str | None = None, group_column: str | None = None, id_column: str | None = None,
         meta_columns=(), mask_token: str | None = None):
    """A `ReadResult` of the items in `source` (a path or a `datasets.Dataset`)."""
    dataset = load.load(load.resolve(source))
    names = dataset.column_names
    if contrast_column is None and "contrast" in names:
        contrast_column = "contrast"
    if id_column is None and "id" in names:
        id_column = "id"
    if isinstance(meta_columns, str):
        meta_columns = (meta_columns,)
    wanted = [text_column, target_column, contrast_column, group_column, id_column, *meta_columns]
    missing = [c for c in wanted if c is not None and c not in names]
    if missing:
        raise ValueError(f"{source}: no column(s) {missing}; it has {names}. Name the right ones with "
                         "text_column=, target_column=, contrast_column=, group_column=, id_column=, meta_columns=")
    spec = (text_column, target_column, contrast_column, group_column, tuple(meta_columns), mask_token)
    return rows.collect(_outcomes(load.rows(dataset), id_column, spec), limit, NAME)


def _outcomes(table, id_column, spec):
    for n, row in enumerate(table):
        id_ = f"row-{n:06d}" if id_column is None or rows.blank(row[id_column]) else str(row[id_column]).strip()
        if id_column is not None and rows.blank(row[id_column]):
            yield rows.attempt(id_, _no_id, id_column)
        else:
            yield rows.attempt(id_, _item, id_, row, *spec)


def _no_id(id_column):
    raise rows.BadRow(f"empty {id_column}")


def _item(id_, row, text_column, target_column, contrast_column, group_column, meta_columns, mask_token):
    problem = rows.parse_error(row)
    if problem:
        raise rows.BadRow(problem)
    text = row[text_column]
    if mask_token and mask_token != MASK and isinstance(text, str):
        text = text.replace(mask_token, MASK)
    text = rows.masked_text(text, text_column)
    target = rows.word(row[target_column], target_column)
    contrast = None
    if contrast_column is not None and not rows.blank(row[contrast_column]):
        contrast = rows.word(row[contrast_column], contrast_column)
        if contrast == target:
            raise rows.BadRow(f"{target_column} and {contrast_column} are both {target!r}")
    meta = {column: rows.typed(column, row[column]) for column in meta_columns}
    if group_column is not None:
        meta["group"] = row[group_column]
    words = text.split(" ")
    if "subject_word" in meta:
        rows.word_index(meta["subject_word"], "subject_word", words)
    for index in meta.get("attractor_words", []):
        rows.word_index(index, "attractor_words", words)
    return Item(id_, text, target, contrast, meta)
