"""The agreement grammar: every sentence agrees, the attractors are there, and a seed fixes the list."""

import collections

import pytest

from bf_bert import agreement_grammar as grammar

SENTENCES = grammar.generate(2000, seed=7)
SINGULAR = {pair[0] for pairs in grammar.NOUNS.values() for pair in pairs}
PLURAL = {pair[1] for pairs in grammar.NOUNS.values() for pair in pairs}
# every agreeing verb form the grammar has, by number
VERB_FORMS = {grammar.SG: {"is", "was", "has"} | {a[0] for acts in grammar.ACTIONS.values() for a in acts},
              grammar.PL: {"are", "were", "have"} | {a[1] for acts in grammar.ACTIONS.values() for a in acts}}


def head_noun(s):
    """The subject's head noun, read off the words: the word right after the first 'the'."""
    assert s.words[0] == "the"
    return s.words[1]


def test_lexicon_is_big_enough_and_unambiguous():
    assert sum(len(pairs) for pairs in grammar.NOUNS.values()) >= 40
    assert not SINGULAR & PLURAL  # a noun such as "sheep" would make the number unrecoverable
    # nor may a noun be spelled like a verb or sit in a fixed phrase ("watches", "in the drawer"):
    # the held-out nouns would leak into training sentences
    phrases = [*grammar.PREPOSITIONS.values(), *grammar.STATES.values(), *grammar.POSSESSIONS.values()]
    others = {w for phrase_list in phrases for phrase in phrase_list for w in phrase.split()}
    others |= {w for acts in grammar.ACTIONS.values() for act in acts for part in act for w in part.split()}
    others |= {w for verbs in grammar.RC_VERBS.values() for pair in verbs for w in pair}
    assert not (SINGULAR | PLURAL) & others


def test_every_main_verb_agrees_with_the_head_noun():
    other = {grammar.SG: grammar.PL, grammar.PL: grammar.SG}
    for s in SENTENCES:
        assert head_noun(s) in SINGULAR | PLURAL, s.text
        assert s.number == (grammar.SG if head_noun(s) in SINGULAR else grammar.PL), s.text
        assert s.verb in VERB_FORMS[s.number], s.text
        assert s.other_verb in VERB_FORMS[other[s.number]], s.text
        assert s.words[-1] == "." and "." not in s.words[:-1], s.text


def test_attractor_constructions_appear_with_both_numbers():
    seen = collections.Counter((s.construction, s.attractor_number == s.number) for s in SENTENCES
                               if s.construction != "simple")
    for construction in ("pp", "subject_rc", "object_rc"):
        assert seen[construction, True] > 50 and seen[construction, False] > 50, construction
    assert sum(s.construction == "simple" and s.attractor_number is None for s in SENTENCES) > 300


def test_the_constructions_look_like_their_names():
    by = collections.defaultdict(list)
    for s in SENTENCES:
        by[s.construction].append(s)
    # "the keys to the cabinet are ...": a preposition and a second noun phrase before the verb
    assert all(s.verb_index >= 5 and "that" not in s.words[:s.verb_index] for s in by["pp"])
    # "the doctor that helps the children works ...": that + verb right after the head noun
    assert all(s.words[2] == "that" and s.words[3] != "the" for s in by["subject_rc"])
    # "the author that the critics praise writes ...": the clause's verb agrees with the attractor
    for s in by["object_rc"]:
        assert s.words[2:4] == ("that", "the")
        rc_noun, rc_verb = s.words[4], s.words[5]
        rc_number = grammar.SG if rc_noun in SINGULAR else grammar.PL
        assert s.attractor_number == rc_number
        assert rc_verb in {pair[rc_number == grammar.PL] for pairs in grammar.RC_VERBS.values() for pair in pairs}
    assert all(s.verb_index == 2 for s in by["simple"])


def test_verb_kinds_all_appear():
    kinds = collections.Counter((s.verb_kind, s.verb) for s in SENTENCES)
    for verb in ("is", "are", "was", "were", "has", "have"):
        assert any(v == verb for _, v in kinds), verb
    assert sum(n for (kind, _), n in kinds.items() if kind == "regular") > 300


def test_same_seed_same_sentences_other_seed_other_sentences():
    assert grammar.generate(50, seed=3) == grammar.generate(50, seed=3)
    assert grammar.generate(50, seed=3) != grammar.generate(50, seed=4)


def test_text_and_masked_text():
    s = grammar.Sentence(("the", "keys", "to", "the", "cabinet", "are", "on", "the", "table", "."), 5, grammar.PL,
                         "is", "is", "pp", grammar.SG)
    assert s.text == "The keys to the cabinet are on the table."
    assert s.masked_text() == "The keys to the cabinet [MASK] on the table."
    assert s.verb == "are"


def test_noun_split_is_disjoint_and_restricts_generation():
    train, held = grammar.split_nouns()
    train_words = {w for pairs in train.values() for pair in pairs for w in pair}
    held_words = {w for pairs in held.values() for pair in pairs for w in pair}
    assert not train_words & held_words
    assert train_words | held_words == SINGULAR | PLURAL
    nouns_used = {w for s in grammar.generate(300, seed=1, nouns=held) for w in s.words if w in SINGULAR | PLURAL}
    assert nouns_used and nouns_used <= held_words


def test_restricting_kinds_and_rejecting_unknown_ones():
    assert {s.verb_kind for s in grammar.generate(100, seed=0, verb_kinds=("is",))} == {"is"}
    assert {s.construction for s in grammar.generate(100, seed=0, constructions=("pp",))} == {"pp"}
    with pytest.raises(ValueError, match="unknown"):
        grammar.generate(3, seed=0, verb_kinds=("are",))
