"""English text written by people, read offline from Debian packages, split into training and held-out sentences.

The default model's MLM head and top layers are fitted on this text (scripts/fit_default_lm.py).
Three sources, each a Debian package (install them with
`apt-get update && apt-get install fortunes fortunes-min sword-text-web libsword-utils wordnet-base`):

    web        World English Bible with Deuterocanon (package sword-text-web, SWORD module
               engWEB2015eb, read with `mod2imp` from libsword-utils). Public domain.
    fortunes   the English fortune-cookie databases of fortune-mod (packages fortunes,
               fortunes-min; /usr/share/games/fortunes): quotations, jokes, aphorisms, short
               stories. BSD licence (Debian's copyright file for fortunes).
    wordnet    the example sentences in WordNet 3.0's glosses (package wordnet-base,
               /usr/share/wordnet/data.*). WordNet 3.0 licence (permissive, keep the notice).

Held out, by document so that no sentence of a held-out document is trained on: the Bible books in
HELDOUT_BOOKS, and one fortune (one synset's examples) in ten by a stable hash of its text. A
sentence that occurs in both halves (the Bible repeats itself, fortunes recur across files) is
dropped from the held-out half. `--text FILE` (plain text, blank lines between documents) stands
in for or adds to these, as the smoke test does with scripts/data/sample_text.txt.
"""

import hashlib
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("web", "fortunes", "wordnet")
PACKAGES = {"web": "sword-text-web (and libsword-utils for mod2imp)", "fortunes": "fortunes and fortunes-min",
            "wordnet": "wordnet-base"}
APT_COMMAND = "apt-get update && apt-get install fortunes fortunes-min sword-text-web libsword-utils wordnet-base"
LICENCES = {
    "web": {"package": "sword-text-web", "work": "World English Bible with Deuterocanon (SWORD module engWEB2015eb)",
            "licence": "public domain (module conf: DistributionLicense=Public Domain)"},
    "fortunes": {"package": "fortunes, fortunes-min", "work": "fortune-mod's English fortune databases "
                 "(/usr/share/games/fortunes, all files but ascii-art)",
                 "licence": "BSD (Debian copyright file of fortunes)"},
    "wordnet": {"package": "wordnet-base", "work": "example sentences quoted in WordNet 3.0 glosses",
                "licence": "WordNet 3.0 licence (permissive; 'WordNet 3.0 Copyright 2006 by Princeton University')"},
    "text": {"package": None, "work": "a plain text file given with --text", "licence": "as its author says"},
}
BIBLE_MODULE = "engWEB2015eb"
FORTUNE_DIR = Path("/usr/share/games/fortunes")
FORTUNE_SKIP = {"ascii-art"}  # pictures drawn in characters, not sentences
WORDNET_DIR = Path("/usr/share/wordnet")
# whole books held out: narrative (Ruth, Acts), poetry (Job), argument (Romans, James), none of which
# has a parallel account elsewhere in the Bible the way Kings/Chronicles or the gospels do
HELDOUT_BOOKS = ("Ruth", "Job", "Acts", "Romans", "James")
HELDOUT_SHARE = 10  # one document in ten of fortunes and wordnet


class MissingText(RuntimeError):
    """A text source's Debian package is not installed."""


@dataclass(frozen=True)
class Sentence:
    text: str
    source: str  # web, fortunes, wordnet, text
    document: str


def normalise(text: str) -> str:
    text = re.sub(".\b", "", text)  # fortune files underline and embolden by overstriking
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                                         "\u2014": " - ", "\u2013": "-"}))
    return re.sub(r"\s+", " ", text).strip()


_SENTENCE_END = re.compile(r"""(?<=[.!?])["')\]]*\s+(?=["'(\[]*[A-Z0-9])""")
_ABBREVIATIONS = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|vs|etc|e\.g|i\.e|Mt|No|Vol)\.$")


def split_sentences(text: str) -> list[str]:
    """Sentences of a normalised paragraph: after . ! ? (and closing quotes) before a capital, not after Mr. etc."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if _ABBREVIATIONS.search(text[start:m.start()]):
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def usable(sentence: str) -> bool:
    """Prose, not code, lists or shouting fragments: enough words, mostly letters."""
    words = sentence.split()
    if not 4 <= len(words) <= 60:
        return False
    letters = sum(c.isalpha() for c in sentence)
    return letters >= 0.7 * sum(not c.isspace() for c in sentence)


def bible_documents() -> list[tuple[str, str]]:
    """(book chapter, text) per chapter of the WEB, headings and footnotes removed."""
    if shutil.which("mod2imp") is None:
        raise MissingText("the World English Bible is read with mod2imp from the Debian package libsword-utils, "
                          f"which is not installed: {APT_COMMAND}")
    run = subprocess.run(["mod2imp", BIBLE_MODULE], capture_output=True, text=True)
    if run.returncode != 0 or "$$$Genesis 1:1" not in run.stdout:
        raise MissingText(f"the SWORD module {BIBLE_MODULE} (Debian package sword-text-web) is not installed or "
                          f"unreadable ({run.stderr.strip()[:200]}): {APT_COMMAND}")
    chapters: dict[str, list[str]] = {}
    for block in run.stdout.split("$$$")[1:]:
        head, _, body = block.partition("\n")
        m = re.fullmatch(r"(.+) (\d+):(\d+)", head.strip())
        if not m or m.group(3) == "0":  # module, testament, book and chapter headings
            continue
        body = re.sub(r"<note\b.*?</note>", " ", body, flags=re.S)
        body = re.sub(r"<title\b.*?</title>", " ", body, flags=re.S)
        body = re.sub(r"<[^>]+>", "", body)
        chapters.setdefault(f"{m.group(1)} {m.group(2)}", []).append(body)
    return [(name, normalise(" ".join(verses))) for name, verses in chapters.items()]


def fortune_documents() -> list[tuple[str, str]]:
    files = sorted(p for p in FORTUNE_DIR.glob("*") if p.is_file() and not p.suffix and p.name not in FORTUNE_SKIP) \
        if FORTUNE_DIR.is_dir() else []
    if not files:
        raise MissingText(f"no fortune databases in {FORTUNE_DIR}: install the Debian packages fortunes and "
                          f"fortunes-min ({APT_COMMAND})")
    docs = []
    for path in files:
        for i, cookie in enumerate(path.read_text(encoding="latin-1").split("\n%\n")):
            # attributions ("-- Mark Twain") are names and sources, not sentences
            lines = [line for line in cookie.splitlines() if not line.strip().startswith("--")]
            text = normalise(" ".join(lines))
            if text:
                docs.append((f"{path.name}#{i}", text))
    return docs


def wordnet_documents() -> list[tuple[str, str]]:
    files = [WORDNET_DIR / f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    if not all(p.is_file() for p in files):
        raise MissingText(f"WordNet's data files are not in {WORDNET_DIR}: install the Debian package wordnet-base "
                          f"({APT_COMMAND})")
    docs = []
    for path in files:
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:  # the licence header
                continue
            examples = re.findall(r'"([^"]+)"', line.split("|", 1)[1])
            sentences = []
            for e in examples:
                e = normalise(e)
                if e and e[-1] not in ".!?":
                    e += "."  # examples are quoted without a final stop
                sentences.append(e[:1].upper() + e[1:])
            if sentences:
                docs.append((f"{path.name}:{line.split()[0]}", " ".join(sentences)))
    return docs


def text_file_documents(path: Path) -> list[tuple[str, str]]:
    paragraphs = re.split(r"\n\s*\n", Path(path).read_text(encoding="utf-8"))
    return [(f"{Path(path).name}#{i}", normalise(p)) for i, p in enumerate(paragraphs) if p.strip()]


def _held_out(source: str, document: str, text: str) -> bool:
    if source == "web":
        return document.rsplit(" ", 1)[0] in HELDOUT_BOOKS
    # by content, so that a fortune that two files share lands in one half
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % HELDOUT_SHARE == 0


def load_corpus(sources=SOURCES, text_files=()) -> tuple[list[Sentence], list[Sentence], dict]:
    """(training sentences, held-out sentences, counts per source); raises MissingText naming the package."""
    readers = {"web": bible_documents, "fortunes": fortune_documents, "wordnet": wordnet_documents}
    per_source = [(name, readers[name]()) for name in sources]
    per_source += [("text", text_file_documents(p)) for p in text_files]
    train, heldout, counts = [], [], {}
    for source, docs in per_source:
        c = counts.setdefault(source, {"documents": 0, "train_sentences": 0, "heldout_sentences": 0,
                                       "train_words": 0})
        for document, text in docs:
            c["documents"] += 1
            out = heldout if _held_out(source, document, text) else train
            for s in split_sentences(text):
                if usable(s):
                    out.append(Sentence(s, source, document))
                    c["train_words"] += len(s.split()) if out is train else 0
    seen = {s.text.lower() for s in train}
    kept, first = [], set()
    for s in heldout:
        key = s.text.lower()
        if key not in seen and key not in first:
            kept.append(s)
            first.add(key)
    for source, c in counts.items():
        c["train_sentences"] = sum(s.source == source for s in train)
        c["heldout_sentences"] = sum(s.source == source for s in kept)
    return train, kept, counts
