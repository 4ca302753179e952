"""Gulordava et al. (2018)'s `generated.tab` (English agreement, "colorless green" sentences).

Tab-separated with a header; fields may be CSV-quoted (a quote inside doubled, ""). Two rows per
item, told apart by `class`, with the same `sent`:

    pattern constr_id sent_id correct_number form class type prefix n_attr punct freq len_context len_prefix sent
    ...     3         1       sing           runs correct generated ...  1   ...                5          <sent> <eos>
    ...     3         1       sing           run  wrong   generated ...  1   ...                5          <sent> <eos>

`sent` is space-tokenised and ends with <eos>; its verb is word number `len_prefix` (from 0). In
"generated" items that word is some other verb (the nonce sentence was built around it), so it
is masked, never compared.

Item per (pattern, constr_id, sent_id): id "gulordava-<pattern>-<constr_id>-<sent_id>", text =
the words of `sent` with word `len_prefix` -> MASK and <eos> dropped, target = `form` of the
"correct" row, contrast = `form` of the "wrong" row, meta {"n_attractors": n_attr, "pattern",
"constr_id", "sent_id", "type" (original/generated), "correct_number" (sing/plur)}. The file does
not say where the subject and attractors are, so meta has no subject_word or attractor_words.
An item with one of its two rows missing, doubled, or disagreeing on `sent` is skipped.
"""

from ..items import MASK, Item, Skipped
from . import load, rows

NAME = "gulordava"
COLUMNS = ("pattern", "constr_id", "sent_id", "correct_number", "form", "class", "type", "prefix", "n_attr",
           "punct", "freq", "len_context", "len_prefix", "sent")
REQUIRED = ("pattern", "constr_id", "sent_id", "form", "class", "n_attr", "len_prefix", "sent")
KEY = ("pattern", "constr_id", "sent_id")
CLASSES = ("correct", "wrong")
EOS = "<eos>"
NEEDS = f"a header with at least {', '.join(REQUIRED)}; two rows (class correct / wrong) per item"


def matches(fields: list[str]) -> bool:
    return set(REQUIRED) <= set(fields)


def read(source, limit: int | None = None):
    """A `ReadResult` of the items in `source` (a path or a `datasets.Dataset`).

    With `limit`, reading stops at the limit-th item; rows still waiting for their pair then are
    neither items nor skipped.
    """
    dataset = load.load_with_columns(source, REQUIRED, "gulordava", NEEDS)
    return rows.collect(_outcomes(load.rows(dataset)), limit, NAME)


def _outcomes(table):
    waiting = {}  # item key -> {class: row}, until both rows are in
    done = set()
    for n, row in enumerate(table):
        problem = rows.parse_error(row)
        key = tuple("" if rows.blank(row[k]) else str(row[k]).strip() for k in KEY)
        id_ = "gulordava-" + "-".join(key) if all(key) and not problem else f"gulordava-row-{n:06d}"
        class_ = "" if rows.blank(row["class"]) else str(row["class"]).strip()
        if problem or not all(key):
            yield Skipped(id_, f"row {n}: {problem or 'empty ' + '/'.join(KEY)}")
        elif class_ not in CLASSES:
            yield Skipped(id_, f"row {n}: class {class_!r} is neither 'correct' nor 'wrong'")
        elif key in done or class_ in waiting.get(key, {}):
            yield Skipped(id_, f"row {n}: a second {class_!r} row for this item (the first one is used)")
        else:
            pair = waiting.setdefault(key, {})
            pair[class_] = row
            if len(pair) == len(CLASSES):
                del waiting[key]
                done.add(key)
                yield rows.attempt(id_, _item, id_, key, pair["correct"], pair["wrong"])
    for key, pair in waiting.items():
        (class_,) = pair
        missing = next(c for c in CLASSES if c != class_)
        yield Skipped("gulordava-" + "-".join(key), f"only the {class_!r} row; its {missing!r} row is missing")


def _item(id_: str, key: tuple, correct: dict, wrong: dict) -> Item:
    if correct["sent"] != wrong["sent"]:
        raise rows.BadRow("the 'correct' and 'wrong' rows have different sentences")
    words = [] if rows.blank(correct["sent"]) else str(correct["sent"]).split()
    if words and words[-1] == EOS:
        words.pop()
    if not words:
        raise rows.BadRow("empty sent")
    verb = rows.count(correct["len_prefix"], "len_prefix")
    if verb >= len(words):
        raise rows.BadRow(f"len_prefix {verb} is past the sentence's {len(words)} words")
    words[verb] = MASK
    text = rows.masked_text(" ".join(words), "sent")
    target = rows.word(correct["form"], "form of the 'correct' row")
    contrast = rows.word(wrong["form"], "form of the 'wrong' row")
    if target == contrast:
        raise rows.BadRow(f"both rows have form {target!r}")
    meta = {"n_attractors": rows.count(correct["n_attr"], "n_attr"),
            **{k: int(v) if v.isdigit() else v for k, v in zip(KEY, key)}}
    for column in ("type", "correct_number"):
        if not rows.blank(correct.get(column)):
            meta[column] = str(correct[column]).strip()
    return Item(id_, text, target, contrast, meta)
