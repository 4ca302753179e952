"""What a dataset reader yields, whatever the file format: one masked item per row."""

from dataclasses import dataclass, field

# Readers write this placeholder where the verb was; the runner puts the model's own mask token
# there, so one file serves any tokenizer.
MASK = "[MASK]"


@dataclass(frozen=True)
class Item:
    """One sentence with one masked word and the two words to compare there.

    id: stable within its dataset (e.g. "lgd-000123", "gulordava-15-3"): finished rows are
        found by it when a run resumes, and shards never share one.
    text: the sentence, with exactly one `MASK`.
    target: the word that fits (the correct verb form); contrast: the word that does not, or None.
    meta: what the data knows, JSON-able. Keys the analyses read when present:
        n_attractors (int), subject_word (int) and attractor_words (list of int) — indices into
        `text.split(" ")`, so the runner can find their tokens — plus anything else
        (construction, pattern, ...), kept as a column.
    """

    id: str
    text: str
    target: str
    contrast: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A row that could not become an Item (or could not be analysed), and why, in words."""

    id: str
    reason: str


@dataclass
class ReadResult:
    """What reading a dataset gives: its items in file order, the rows it could not use, and the
    format it was read as (named when the reader detected it)."""

    items: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    format: str | None = None
