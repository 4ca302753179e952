"""What every reader checks in a row, and how a reader's outcomes become a `ReadResult`.

A reader turns each row into an `Item` or raises `BadRow(reason)`; `attempt` makes the latter
a `Skipped`, so one bad row never stops a read.
"""

import json

from ..items import MASK, Item, ReadResult, Skipped
from .load import BAD_ROW

# meta keys the analyses read, with the type they read them as (files may hold them as text)
INT_KEYS = ("n_attractors", "n_intervening", "subject_word")
INT_LIST_KEYS = ("attractor_words", "intervening_words")
STR_LIST_KEYS = ("intervening_numbers",)
BOOL_KEYS = ("held_out",)


class BadRow(ValueError):
    """A row that cannot become an Item; the message is the reason a `Skipped` carries."""


def attempt(id_: str, make, *args):
    """`make(*args)`, or a `Skipped(id_, reason)` when it raises `BadRow`."""
    try:
        return make(*args)
    except BadRow as e:
        return Skipped(id_, str(e))


def collect(outcomes, limit: int | None, format_: str) -> ReadResult:
    """Items and Skipped from `outcomes`, in order, stopping once `limit` items are in.

    An item whose id an earlier item already has is skipped, so ids stay unique per dataset.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None (got {limit})")
    result = ReadResult(format=format_)
    if limit == 0:
        return result
    seen = set()
    for outcome in outcomes:
        if isinstance(outcome, Item) and outcome.id in seen:
            outcome = Skipped(outcome.id, "duplicate id: an earlier row already has it")
        if isinstance(outcome, Skipped):
            result.skipped.append(outcome)
            continue
        seen.add(outcome.id)
        result.items.append(outcome)
        if limit is not None and len(result.items) >= limit:
            break
    return result


def parse_error(row: dict) -> str | None:
    """Why the file's parser could not split this row into fields, if it could not."""
    for value in row.values():
        if isinstance(value, str) and value.startswith(BAD_ROW):
            return value[len(BAD_ROW):]
    return None


def blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def masked_text(text, column: str) -> str:
    """`text` if it holds exactly one `MASK`."""
    if blank(text):
        raise BadRow(f"empty {column}")
    text = str(text).strip()
    n = text.count(MASK)
    if n != 1:
        what = "no mask" if n == 0 else f"{n} masks"
        raise BadRow(f"{what} in {column}; an item masks exactly one word ({MASK!r})")
    return text


def word(value, column: str) -> str:
    """`value` as one word: not empty, no whitespace inside."""
    if blank(value):
        raise BadRow(f"empty {column}")
    value = str(value).strip()
    if len(value.split()) > 1:
        raise BadRow(f"{column} {value!r} is more than one word")
    return value


def count(value, column: str) -> int:
    """`value` as a whole number >= 0 (text such as "3" or " 3" too)."""
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or number < 0:
        raise BadRow(f"{column} {value!r} is not a whole number >= 0")
    return number


def typed(key: str, value):
    """`value` of meta key `key` as the analyses read it; a file may hold lists as JSON text."""
    if key in INT_KEYS:
        return count(value, key)
    if key in INT_LIST_KEYS + STR_LIST_KEYS:
        items = _json_list(value, key)
        return [count(v, key) for v in items] if key in INT_LIST_KEYS else [str(v) for v in items]
    if key in BOOL_KEYS:
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in ("true", "false"):
            return str(value).strip().lower() == "true"
        raise BadRow(f"{key} {value!r} is neither true nor false")
    return value


def _json_list(value, key):
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            raise BadRow(f"{key} {value!r} is not a JSON list such as [3, 6]") from None
    if not isinstance(value, (list, tuple)):
        raise BadRow(f"{key} {value!r} is not a list")
    return list(value)


def word_index(value, key: str, words: list) -> int:
    """A meta index checked against the words of the text."""
    if not 0 <= value < len(words):
        raise BadRow(f"{key} {value} is past the text's {len(words)} words")
    if words[value] == MASK:
        raise BadRow(f"{key} {value} points at the mask")
    return value
