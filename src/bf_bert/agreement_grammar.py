"""A small English grammar of subject–verb agreement, with attractors between subject and verb.

It generates sentences mixed into the embedded default model's training text
(`scripts/fit_default_lm.py`) and the held-out sentences its grammar agreement is measured on:

    simple       the keys are on the table .
    pp           the keys to the cabinet are on the table .
    subject_rc   the doctor that helps the children works hard .
    object_rc    the author that the critics praise writes well .

Every `Sentence` knows where its main verb is, which number it agrees with (the head noun of the
subject, never the attractor), and the verb form of the other number, so a caller can mask the
verb and compare the two forms. Words are lower case (the encoder's vocabulary is uncased).

Nouns come in three kinds (person, animal, thing) so that predicates stay sensible: things do
not write well, and only people and animals act inside relative clauses.
"""

import random
from dataclasses import dataclass

SG, PL = "sg", "pl"
CONSTRUCTIONS = ("simple", "pp", "subject_rc", "object_rc")
VERB_KINDS = ("is", "was", "has", "regular")  # named by their singular form; plurals: are, were, have, -s dropped

# (singular, plural) pairs; irregular plurals on purpose
NOUNS = {
    "person": [("author", "authors"), ("teacher", "teachers"), ("doctor", "doctors"), ("student", "students"),
               ("nurse", "nurses"), ("farmer", "farmers"), ("painter", "painters"), ("lawyer", "lawyers"),
               ("singer", "singers"), ("pilot", "pilots"), ("sailor", "sailors"), ("driver", "drivers"),
               ("child", "children"), ("man", "men"), ("woman", "women"), ("neighbor", "neighbors"),
               ("soldier", "soldiers"), ("actor", "actors"), ("manager", "managers"), ("player", "players"),
               ("engineer", "engineers"), ("scientist", "scientists"), ("poet", "poets"), ("dancer", "dancers"),
               ("judge", "judges"), ("critic", "critics"), ("guest", "guests"), ("officer", "officers")],
    "animal": [("dog", "dogs"), ("cat", "cats"), ("horse", "horses"), ("bird", "birds"), ("fox", "foxes"),
               ("mouse", "mice"), ("goose", "geese"), ("wolf", "wolves"), ("rabbit", "rabbits"), ("cow", "cows"),
               ("duck", "ducks"), ("bear", "bears"), ("lion", "lions"), ("monkey", "monkeys")],
    "thing": [("key", "keys"), ("book", "books"), ("box", "boxes"), ("bottle", "bottles"), ("lamp", "lamps"),
              ("chair", "chairs"), ("letter", "letters"), ("picture", "pictures"), ("window", "windows"),
              ("door", "doors"), ("coin", "coins"), ("knife", "knives"), ("shelf", "shelves"), ("leaf", "leaves"),
              ("glass", "glasses"), ("dish", "dishes"), ("clock", "clocks"), ("cabinet", "cabinets"),
              ("drawer", "drawers"), ("map", "maps")],
}
ANIMATE = ("person", "animal")

# complements after is/are and was/were
STATES = {
    "person": ["happy", "tired", "here", "late", "ready", "busy", "in the kitchen", "at home", "very kind"],
    "animal": ["hungry", "asleep", "outside", "in the garden", "very quiet", "near the river", "small"],
    "thing": ["on the table", "broken", "old", "new", "in the closet", "under the bed", "very heavy", "clean"],
}
# objects after has/have
POSSESSIONS = {
    "person": ["a car", "a plan", "two brothers", "a small house", "many friends", "a question"],
    "animal": ["long ears", "a warm home", "soft fur", "a good nose"],
    "thing": ["a crack", "a label", "a red handle", "sharp edges"],
}
# (singular, plural, continuation) for the regular verbs that end a sentence
ACTIONS = {
    "person": [("writes", "write", "well"), ("sings", "sing", "loudly"), ("works", "work", "hard"),
               ("laughs", "laugh", "a lot"), ("walks", "walk", "home"), ("reads", "read", "every night"),
               ("waits", "wait", "outside"), ("agrees", "agree", "with us"), ("smiles", "smile", "often")],
    "animal": [("sleeps", "sleep", "all day"), ("runs", "run", "fast"), ("eats", "eat", "slowly"),
               ("hides", "hide", "from us"), ("plays", "play", "outside"), ("jumps", "jump", "high")],
    "thing": [("falls", "fall", "down"), ("breaks", "break", "easily"), ("looks", "look", "old"),
              ("belongs", "belong", "to me"), ("stays", "stay", "in place"), ("costs", "cost", "a lot")],
}
# transitive verbs inside relative clauses, (singular, plural), by the kind of their object; agents are animate
RC_VERBS = {
    "any": [("likes", "like"), ("sees", "see"), ("finds", "find"), ("wants", "want"), ("remembers", "remember"),
            ("watches", "watch"), ("needs", "need")],
    "animate": [("knows", "know"), ("helps", "help"), ("praises", "praise"), ("follows", "follow"),
                ("visits", "visit"), ("trusts", "trust")],
}
# prepositions between subject and attractor, by the subject's kind
PREPOSITIONS = {
    "person": ["near", "behind", "beside", "next to", "with", "for"],
    "animal": ["near", "behind", "beside", "next to", "with", "without"],
    "thing": ["to", "on", "in", "near", "under", "next to", "behind", "of", "from"],
}
COPULAS = {"is": ("is", "are"), "was": ("was", "were"), "has": ("has", "have")}


@dataclass(frozen=True)
class Sentence:
    """One generated sentence and the facts about its main verb.

    `words` are lower case and end with "."; multi-word phrases ("next to") are separate words.
    `number` is the subject head's number, which the verb at `verb_index` agrees with;
    `other_verb` is that verb in the other number. `attractor_number` is the number of the noun
    between subject and verb (None for "simple").
    """

    words: tuple
    verb_index: int
    number: str
    other_verb: str
    verb_kind: str
    construction: str
    attractor_number: str | None

    @property
    def verb(self) -> str:
        return self.words[self.verb_index]

    @property
    def text(self) -> str:
        return _join(self.words)

    def masked_text(self, mask_token: str = "[MASK]") -> str:
        """The sentence with its main verb replaced by `mask_token`."""
        words = list(self.words)
        words[self.verb_index] = mask_token
        return _join(words)


def _join(words) -> str:
    text = " ".join(words[:-1]) + words[-1]
    return text[0].upper() + text[1:]


def split_nouns(held_out_every: int = 5) -> tuple[dict, dict]:
    """Split the lexicon's nouns into (train, held_out), each a dict like `NOUNS`.

    Every `held_out_every`-th pair of each kind is held out, so the held-out sentences can use
    nouns the head never saw in training. Deterministic: no random draws.
    """
    if held_out_every < 2:
        raise ValueError(f"held_out_every must be >= 2 so that both splits have nouns (got {held_out_every})")
    train = {kind: [p for i, p in enumerate(pairs) if i % held_out_every != held_out_every - 1]
             for kind, pairs in NOUNS.items()}
    held = {kind: [p for i, p in enumerate(pairs) if i % held_out_every == held_out_every - 1]
            for kind, pairs in NOUNS.items()}
    return train, held


def generate(n: int, seed: int, nouns: dict | None = None, constructions=CONSTRUCTIONS,
             verb_kinds=VERB_KINDS) -> list[Sentence]:
    """`n` sentences drawn with `random.Random(seed)`; the same arguments give the same list.

    `nouns` restricts the lexicon (e.g. one half of `split_nouns()`); `constructions` and
    `verb_kinds` restrict what is drawn (e.g. `verb_kinds=("is",)` for is/are sentences only).
    Sentences may repeat: the grammar is small.
    """
    nouns = NOUNS if nouns is None else nouns
    bad = (set(constructions) - set(CONSTRUCTIONS)) | (set(verb_kinds) - set(VERB_KINDS))
    if bad:
        raise ValueError(f"unknown constructions or verb kinds {sorted(bad)}; "
                         f"choose from {CONSTRUCTIONS} and {VERB_KINDS}")
    if not all(nouns.get(kind) for kind in NOUNS):
        raise ValueError(f"`nouns` needs at least one pair of each kind {sorted(NOUNS)}")
    rng = random.Random(seed)
    return [_sentence(rng, nouns, rng.choice(constructions), rng.choice(verb_kinds)) for _ in range(n)]


def _noun(rng, nouns, kinds):
    """(words of 'the <noun>', number, kind) for a noun of one of `kinds`."""
    kind = rng.choice(kinds)
    number = rng.choice((SG, PL))
    pair = rng.choice(nouns[kind])
    return ["the", pair[number == PL]], number, kind


def _rc_verb(rng, object_kind):
    return rng.choice(RC_VERBS["any"] + (RC_VERBS["animate"] if object_kind in ANIMATE else []))


def _main_verb(rng, kind, verb_kind, number):
    """(the verb in the subject's number, in the other number, what follows it); one draw from
    `rng`, the same draw both generators have always made."""
    if verb_kind == "regular":
        singular, plural, rest = rng.choice(ACTIONS[kind])
        forms = (singular, plural)
    else:
        forms = COPULAS[verb_kind]
        rest = rng.choice(STATES[kind] if verb_kind != "has" else POSSESSIONS[kind])
    verb, other = (forms[0], forms[1]) if number == SG else (forms[1], forms[0])
    return verb, other, rest


def _sentence(rng, nouns, construction, verb_kind) -> Sentence:
    # only people and animals can carry a subject relative clause
    subject_kinds = ANIMATE if construction == "subject_rc" else tuple(NOUNS)
    subject, number, kind = _noun(rng, nouns, subject_kinds)
    attractor_number = None
    if construction == "pp":
        attractor, attractor_number, _ = _noun(rng, nouns, tuple(NOUNS))
        subject += rng.choice(PREPOSITIONS[kind]).split() + attractor
    elif construction == "subject_rc":
        # the clause's verb agrees with the subject too; its object is the attractor
        attractor, attractor_number, object_kind = _noun(rng, nouns, tuple(NOUNS))
        subject += ["that", _rc_verb(rng, object_kind)[number == PL]] + attractor
    elif construction == "object_rc":
        # the clause's own subject is the attractor, and the clause's verb agrees with it
        attractor, attractor_number, _ = _noun(rng, nouns, ANIMATE)
        subject += ["that"] + attractor + [_rc_verb(rng, kind)[attractor_number == PL]]

    verb, other, rest = _main_verb(rng, kind, verb_kind, number)
    words = tuple(subject + [verb] + rest.split() + ["."])
    return Sentence(words, len(subject), number, other, verb_kind, construction, attractor_number)


# --- Sentences with several attractors ------------------------------------------------------
# `generate` above draws exactly the grammar sentences the shipped model was trained on, so it stays as it is;
# the analysis benchmark's 1–4 attractors come from a separate generator with its own stream.

ATTRACTOR_CONSTRUCTIONS = ("pp", "subject_rc", "object_rc")
# what a preposition's noun may be, so that chains stay sensible ("the key in the cabinet", never
# "the key in the horses"); prepositions not listed take any kind
PP_OBJECT_KINDS = {"to": ("thing",), "on": ("thing",), "in": ("thing",), "under": ("thing",),
                   "from": ("thing", "person"), "for": ("person",)}


@dataclass(frozen=True)
class AttractorSentence(Sentence):
    """A `Sentence` with one or more nouns between the subject's head and the verb, and where they are.

    `subject_index` is the word index of the subject's head noun (always 1: "the <noun> ...").
    `intervening_indices` / `intervening_numbers` give the word index and number of every noun
    between that head and the verb, left to right. Attractors are the intervening nouns whose
    number differs from the subject's — what Linzen et al. (2016) count, and so what the LGD data
    of Du et al. (2023) buckets by; nouns of the subject's own number are intervening but not
    attractors. `attractor_number` is the number of the intervening noun nearest the verb.
    """

    subject_index: int
    intervening_indices: tuple
    intervening_numbers: tuple

    @property
    def attractor_indices(self) -> tuple:
        return tuple(i for i, number in zip(self.intervening_indices, self.intervening_numbers)
                     if number != self.number)

    @property
    def n_attractors(self) -> int:
        return len(self.attractor_indices)

    @property
    def n_intervening(self) -> int:
        return len(self.intervening_indices)


def generate_attractors(n: int, seed: int, max_attractors: int = 4, min_attractors: int = 1,
                        nouns: dict | None = None, constructions=ATTRACTOR_CONSTRUCTIONS,
                        verb_kinds=VERB_KINDS, mixed_numbers: bool = False) -> list[AttractorSentence]:
    """`n` sentences with `min_attractors`..`max_attractors` nouns between subject and verb.

    The count is drawn uniformly per sentence, so every count is about equally frequent. Shapes:

        pp          the keys to the cabinet near the doors by the window are on the table .
        subject_rc  the doctor that helps the children near the dog works hard .
        object_rc   the author that the critics beside the singer praise writes well .

    Prepositional phrases chain, each attached to the noun before it and chosen by that noun's kind.
    With `mixed_numbers=False` (the default, as in the LGD test set, which keeps only sentences
    whose intervening nouns all differ from the subject in number) every intervening noun is an
    attractor; with True each noun's number is drawn, so `n_attractors <= n_intervening`.
    No noun repeats within a sentence while the lexicon has others.

    Draws from `random.Random(f"attractors-{seed}")`, its own stream: `generate`'s draws are
    untouched. `nouns`, `constructions` and `verb_kinds` restrict the draws as in `generate`.
    """
    nouns = NOUNS if nouns is None else nouns
    bad = (set(constructions) - set(ATTRACTOR_CONSTRUCTIONS)) | (set(verb_kinds) - set(VERB_KINDS))
    if bad:
        raise ValueError(f"unknown constructions or verb kinds {sorted(bad)}; "
                         f"choose from {ATTRACTOR_CONSTRUCTIONS} and {VERB_KINDS}")
    if not 1 <= min_attractors <= max_attractors:
        raise ValueError(f"need 1 <= min_attractors <= max_attractors (got {min_attractors}, {max_attractors})")
    if not all(nouns.get(kind) for kind in NOUNS):
        raise ValueError(f"`nouns` needs at least one pair of each kind {sorted(NOUNS)}")
    rng = random.Random(f"attractors-{seed}")
    return [_attractor_sentence(rng, nouns, rng.choice(constructions), rng.choice(verb_kinds),
                                rng.randint(min_attractors, max_attractors), mixed_numbers) for _ in range(n)]


def _fresh_noun(rng, nouns, kinds, number, used):
    """(noun, kind) of `number` and one of `kinds`, avoiding the pairs in `used` while others remain."""
    fresh = {kind: [p for p in nouns[kind] if p not in used] for kind in kinds}
    kinds = [kind for kind in kinds if fresh[kind]] or list(kinds)
    kind = rng.choice(kinds)
    pair = rng.choice(fresh[kind] or nouns[kind])
    used.add(pair)
    return pair[number == PL], kind


def _attractor_sentence(rng, nouns, construction, verb_kind, k, mixed_numbers) -> AttractorSentence:
    other = {SG: PL, PL: SG}
    used = set()
    number = rng.choice((SG, PL))
    subject, kind = _fresh_noun(rng, nouns, ANIMATE if construction == "subject_rc" else tuple(NOUNS), number, used)
    words = ["the", subject]
    indices, numbers = [], []

    def noun_phrase(kinds):
        noun_number = rng.choice((SG, PL)) if mixed_numbers else other[number]
        noun, noun_kind = _fresh_noun(rng, nouns, kinds, noun_number, used)
        words.extend(["the", noun])
        indices.append(len(words) - 1)
        numbers.append(noun_number)
        return noun_kind, noun_number

    def pp_chain(head_kind, length):
        for _ in range(length):
            preposition = rng.choice(PREPOSITIONS[head_kind])
            words.extend(preposition.split())
            head_kind, _ = noun_phrase(PP_OBJECT_KINDS.get(preposition, tuple(NOUNS)))

    if construction == "pp":
        pp_chain(kind, k)
    elif construction == "subject_rc":
        # the clause's verb agrees with the subject; its object (and what hangs off it) intervenes
        words.append("that")
        verb_slot = len(words)
        words.append(None)
        object_kind, _ = noun_phrase(tuple(NOUNS))
        words[verb_slot] = _rc_verb(rng, object_kind)[number == PL]
        pp_chain(object_kind, k - 1)
    else:  # object_rc: the clause's subject intervenes, and the clause's verb agrees with it
        words.append("that")
        rc_kind, rc_number = noun_phrase(ANIMATE)
        pp_chain(rc_kind, k - 1)
        words.append(_rc_verb(rng, kind)[rc_number == PL])

    verb, other_verb, rest = _main_verb(rng, kind, verb_kind, number)
    verb_index = len(words)
    words += [verb] + rest.split() + ["."]
    return AttractorSentence(tuple(words), verb_index, number, other_verb, verb_kind, construction,
                             numbers[-1], 1, tuple(indices), tuple(numbers))
