"""Subject-verb agreement items from held-out real text: mask a finite is/are, was/were, has/have, does/do.

Each held-out sentence (scripts/lm_text.py) is tagged with Lingua::EN::Tagger (Debian package
liblingua-en-tagger-perl, a Penn-Treebank-tagset HMM tagger that runs offline). An item is a
sentence with a verb from PAIRS tagged as a finite form (VBZ, VBP, VBD), its subject found by the
heuristic in `find_subject`, and the written form the one that subject's number asks for; the
model is right when the written form out-scores the other form of the pair at the mask. The
subject heuristic, in order, walking left from the verb:

    1. skip adverbs; stop (no item) at "to", "there", punctuation, a conjunction or the start;
    2. the first noun or personal pronoun met is the candidate (the head of its noun phrase);
    3. if that noun phrase follows a preposition ("the keys to the cabinet"), the subject is
       further left: continue from the word before the preposition;
    4. if it follows a verb, or a verb comes first, we are inside a relative clause ("the man who
       likes dogs", "the authors that the critic praises"): continue from the noun before its
       who/which/that/whom; with no such pronoun (a clause as subject, "what he said is") stop;
    5. a relative pronoun met directly ("the man who is") stands for the noun before it.

Existential "there", questions and inversions (no subject to the left) give no item. Items whose
heuristic subject disagrees in number with the written verb (subjunctive "if he were", collective
nouns, coordination, heuristic errors) are dropped and counted. Distance is the number of words
from the subject head to the verb (1 = adjacent); attractors are nouns between them of the other
number. Writes scripts/data/agreement_heldout.tsv, read by scripts/lm_eval.py.

    .venv/bin/python scripts/lm_agreement.py   # a few seconds; needs the text packages and the tagger
"""

import argparse
import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import lm_text  # beside this file: on sys.path when run as a script

OUT = Path(__file__).resolve().parent / "data" / "agreement_heldout.tsv"
PAIRS = {"is": ("is", "are"), "are": ("is", "are"), "was": ("was", "were"), "were": ("was", "were"),
         "has": ("has", "have"), "have": ("has", "have"), "does": ("does", "do"), "do": ("does", "do")}
FINITE = {"is": {"vbz"}, "are": {"vbp"}, "was": {"vbd"}, "were": {"vbd"}, "has": {"vbz"}, "have": {"vbp"},
          "does": {"vbz"}, "do": {"vbp"}}
SINGULAR_NOUN, PLURAL_NOUN = {"nn", "nnp"}, {"nns", "nnps"}
NOUN_PHRASE = {"det", "jj", "jjr", "jjs", "cd", "prps", "pos", "nn", "nnp", "nns", "nnps"}
VERBS = {"vb", "vbd", "vbg", "vbn", "vbp", "vbz", "md"}
ADVERBS = {"rb", "rbr", "rbs"}
SUBORDINATORS = {"that", "because", "if", "while", "although", "though", "since", "when", "whether", "unless",
                 "as", "than", "so", "until", "before", "after", "once", "where"}
PRONOUN_NUMBER = {"he": "3sg", "she": "3sg", "it": "3sg", "i": "1sg", "you": "pl", "we": "pl", "they": "pl"}
RELATIVE = {"who", "which", "that", "whom"}


def tag(sentences):
    """[(word, tag)] per sentence, through one Lingua::EN::Tagger process."""
    if shutil.which("perl") is None or subprocess.run(["perl", "-MLingua::EN::Tagger", "-e", "1"],
                                                      capture_output=True).returncode != 0:
        sys.exit("the POS tagger Lingua::EN::Tagger is missing: apt-get install liblingua-en-tagger-perl")
    program = 'use Lingua::EN::Tagger; my $p = Lingua::EN::Tagger->new(longest_noun_phrase => 5); ' \
              '$| = 1; while (<STDIN>) { chomp; print $p->add_tags($_), "\\n"; }'
    out = subprocess.run(["perl", "-e", program], input="\n".join(sentences) + "\n", capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(out) == len(sentences), (len(out), len(sentences))
    return [[(w, t) for t, w in re.findall(r"<(\w+)>([^<]*)</\1>", line)] for line in out]


def number(word, tag_):
    if tag_ in SINGULAR_NOUN:
        return "3sg"
    if tag_ in PLURAL_NOUN:
        return "pl"
    return PRONOUN_NUMBER.get(word.lower())


def expected_form(subject_number, pair):
    if subject_number == "1sg":
        return {"is": None, "was": "was"}.get(pair[0], pair[1])  # I was, I have, I do; "I am" is not a pair
    return pair[0] if subject_number == "3sg" else pair[1]


def _np_start(tags, head):
    i = head
    while i > 0 and tags[i - 1][1] in NOUN_PHRASE:
        i -= 1
    return i


def _relative_antecedent(tags, i):
    """From tags[i] inside a relative clause, the index of the noun the clause modifies, or None."""
    j = i
    while j >= 0 and tags[j][0].lower() not in RELATIVE and tags[j][1] in VERBS | NOUN_PHRASE | ADVERBS | {"prp"}:
        j -= 1
    if j > 0 and tags[j][0].lower() in RELATIVE and tags[j - 1][1] in SINGULAR_NOUN | PLURAL_NOUN:
        return j - 1
    return None


def find_subject(tags, verb):
    """Index of the subject head of tags[verb], or None (see the module docstring)."""
    nouns = SINGULAR_NOUN | PLURAL_NOUN
    i = verb - 1
    while i >= 0:
        word, t = tags[i][0].lower(), tags[i][1]
        if t in ADVERBS:
            i -= 1
        elif t == "prp" and word in PRONOUN_NUMBER:
            return i  # "who thinks it has": a pronoun just before the verb is its subject, not an object
        elif t in nouns:
            start = _np_start(tags, i)
            before = tags[start - 1] if start > 0 else None
            if before and before[1] in ("in", "to") and before[0].lower() not in SUBORDINATORS:
                i = start - 2  # object of a preposition: the subject is the noun before it
            elif before and before[1] in VERBS:
                i = _relative_antecedent(tags, start - 1)  # object inside a relative clause, or no subject
                if i is None:
                    return None
            else:
                return i
        elif t in VERBS:
            i = _relative_antecedent(tags, i)  # the verb of a relative clause ending just before ours
            if i is None:
                return None
        elif word in RELATIVE and t in ("wdt", "wp"):
            return i - 1 if i > 0 and tags[i - 1][1] in nouns else None
        else:
            return None  # "to", "there", punctuation, a conjunction: no subject to the left
    return None


def items_from(sentence, tags):
    """Every agreement item in one tagged sentence (a dict per masked verb)."""
    out = []
    for v, (word, t) in enumerate(tags):
        w = word.lower()
        if w not in PAIRS or t not in FINITE[w] or v == 0:
            continue
        s = find_subject(tags, v)
        if s is None:
            continue
        subject_number = number(*tags[s])
        pair = PAIRS[w]
        want = expected_form(subject_number, pair)
        occurrence = sum(x[0].lower() == w for x in tags[:v])
        matches = list(re.finditer(rf"\b{w}\b", sentence, flags=re.I))
        if occurrence >= len(matches):
            continue
        m = matches[occurrence]
        attractors = sum(1 for x in tags[s + 1:v]
                         if x[1] in SINGULAR_NOUN | PLURAL_NOUN and number(*x) != subject_number)
        out.append({"sentence": sentence, "start": m.start(), "end": m.end(), "verb": w,
                    "other": pair[1] if w == pair[0] else pair[0], "subject": tags[s][0], "distance": v - s,
                    "attractors": attractors, "agrees": want == w})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    try:
        _, heldout, _ = lm_text.load_corpus()
    except lm_text.MissingText as e:
        sys.exit(str(e))
    tagged = tag([s.text for s in heldout])
    kept, dropped = [], 0
    for s, tags in zip(heldout, tagged):
        for item in items_from(s.text, tags):
            if item.pop("agrees"):
                kept.append({"source": s.source, **item})
            else:
                dropped += 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(kept[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(kept)
    print(f"{len(kept)} items from {len(heldout)} held-out sentences ({dropped} dropped: heuristic subject "
          f"disagrees with the written verb) -> {args.out}")


if __name__ == "__main__":
    main()
