"""Items from the project's agreement grammar (`bf_bert.agreement_grammar`): drawn, written, read.

`grammar_items` draws sentences with 1..max_attractors nouns between subject and verb
(`agreement_grammar.generate_attractors`); `write_grammar_dataset` writes them as JSONL or TSV,
and `read` reads such a file back. Columns, one row per item:

    id                   "grammar-<seed>-<k>"
    text                 the sentence with its main verb as MASK ("The keys to the cabinet [MASK] ...")
    target, contrast     the verb that agrees with the subject, and the other number's form
    n_attractors         intervening nouns whose number differs from the subject's (LGD's count)
    attractor_words      their word indices in text.split(" ")
    n_intervening        all nouns between subject and verb, whatever their number
    intervening_words    their word indices; intervening_numbers their numbers ("sg"/"pl")
    subject_word         the subject's head noun's word index; subject_number its number
    construction         pp / subject_rc / object_rc; verb_kind is / was / has / regular
    held_out             whether the nouns are the ones the shipped model never saw in grammar sentences

Item: id, text, target, contrast as above; meta = every other column. In TSV the lists are JSON
text ("[4, 7]") and held_out is true/false.
"""

import csv
import json
from pathlib import Path

from ... import agreement_grammar as grammar
from ..items import MASK, Item
from . import load, rows

NAME = "grammar"
REQUIRED = ("text", "target", "contrast", "n_attractors", "subject_word", "attractor_words", "construction")
NEEDS = f"columns {', '.join(REQUIRED)} (as written by write_grammar_dataset)"


def matches(fields: list[str]) -> bool:
    return set(REQUIRED) <= set(fields)


def grammar_items(n: int, seed: int, max_attractors: int = 4, held_out: bool = True,
                  mixed_numbers: bool = False) -> list[Item]:
    """`n` items drawn with `seed`, each with 1..`max_attractors` nouns between subject and verb.

    `held_out`: draw only the nouns the shipped model was not trained on (else all nouns).
    `mixed_numbers`: see `agreement_grammar.generate_attractors`; by default every intervening
    noun is an attractor. The same arguments always give the same items.
    """
    nouns = grammar.split_nouns()[1] if held_out else None
    sentences = grammar.generate_attractors(n, seed, max_attractors=max_attractors, nouns=nouns,
                                            mixed_numbers=mixed_numbers)
    return [_from_sentence(f"grammar-{seed}-{k}", s, held_out) for k, s in enumerate(sentences)]


def _from_sentence(id_: str, s, held_out: bool) -> Item:
    meta = {"n_attractors": s.n_attractors, "attractor_words": list(s.attractor_indices),
            "n_intervening": s.n_intervening, "intervening_words": list(s.intervening_indices),
            "intervening_numbers": list(s.intervening_numbers), "subject_word": s.subject_index,
            "subject_number": s.number, "construction": s.construction, "verb_kind": s.verb_kind,
            "held_out": held_out}
    return Item(id_, s.masked_text(MASK), s.verb, s.other_verb, meta)


def write_grammar_dataset(path, n: int, seed: int, max_attractors: int = 4, held_out: bool = True,
                          mixed_numbers: bool = False) -> Path:
    """Write `grammar_items(n, seed, ...)` to `path`: JSON lines for .jsonl, tab-separated for .tsv."""
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".jsonl", ".tsv"):
        raise ValueError(f"{path}: write_grammar_dataset writes .jsonl or .tsv files; rename it")
    records = [{"id": item.id, "text": item.text, "target": item.target, "contrast": item.contrast, **item.meta}
               for item in grammar_items(n, seed, max_attractors, held_out, mixed_numbers)]
    with open(path, "w", encoding="utf-8", newline="") as f:
        if kind == ".jsonl":
            f.writelines(json.dumps(record) + "\n" for record in records)
        else:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            columns = list(records[0]) if records else ["id", *REQUIRED]
            writer.writerow(columns)
            writer.writerows([_cell(record[c]) for c in columns] for record in records)
    return path


def _cell(value) -> str:
    return json.dumps(value) if isinstance(value, (list, bool)) else str(value)


def read(source, limit: int | None = None):
    """A `ReadResult` of the items in a file written by `write_grammar_dataset` (or any source
    with its columns); a row without an id gets "grammar-row-<row>"."""
    dataset = load.load_with_columns(source, REQUIRED, "grammar", NEEDS)
    return rows.collect(_outcomes(load.rows(dataset)), limit, NAME)


def _outcomes(table):
    for n, row in enumerate(table):
        id_ = f"grammar-row-{n:06d}" if rows.blank(row.get("id")) else str(row["id"]).strip()
        yield rows.attempt(id_, _item, id_, row)


def _item(id_: str, row: dict) -> Item:
    problem = rows.parse_error(row)
    if problem:
        raise rows.BadRow(problem)
    text = rows.masked_text(row["text"], "text")
    target, contrast = rows.word(row["target"], "target"), rows.word(row["contrast"], "contrast")
    if target == contrast:
        raise rows.BadRow(f"target and contrast are both {target!r}")
    meta = {key: rows.typed(key, value) for key, value in row.items()
            if key not in ("id", "text", "target", "contrast")}
    words = text.split(" ")
    rows.word_index(meta["subject_word"], "subject_word", words)
    for key in ("attractor_words", "intervening_words"):
        for index in meta.get(key, []):
            rows.word_index(index, key, words)
    if meta["n_attractors"] != len(meta["attractor_words"]):
        raise rows.BadRow(f"n_attractors is {meta['n_attractors']} but attractor_words has "
                          f"{len(meta['attractor_words'])} indices")
    return Item(id_, text, target, contrast, meta)
