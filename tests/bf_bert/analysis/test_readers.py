"""Dataset readers: each format's sample file reads into exactly the items written there, formats
are told apart, bad rows are skipped with a reason, and the grammar's new draws leave its old ones
alone while recording where the subject and attractors are."""

import collections
import hashlib
import json
import os
from pathlib import Path

import datasets
import pytest

from bf_bert import agreement_grammar as grammar
from bf_bert.analysis import MASK, FORMATS, Item, Skipped, detect_format, grammar_items, read_items, \
    write_grammar_dataset

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path_factory, monkeypatch):
    # load_dataset writes Arrow copies of what it reads; keep them out of the user's cache
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf_cache"))


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# --- each format on its sample file ---------------------------------------------------------

LGD_ITEMS = [
    Item("lgd-000000", "the keys to the cabinet [MASK] on the table .", "are", "is", {"n_attractors": 1}),
    Item("lgd-000001", 'the pilot who flew the planes over the towns [MASK] " hello " .', "says", "say",
         {"n_attractors": 2}),
    Item("lgd-000002", '" the label on the boxes [MASK] torn , " she said .', "is", "are", {"n_attractors": 1}),
    Item("lgd-000003", "the report that the managers of the shops in the towns write [MASK] long .", "is", "are",
         {"n_attractors": 3}),
]


def test_lgd_sample():
    result = read_items(DATA / "lgd.tsv")
    assert result.format == "lgd" and result.skipped == []
    assert result.items == LGD_ITEMS


def test_gulordava_sample_pairs_rows_in_either_order_and_unquotes_sent():
    result = read_items(DATA / "generated.tab")
    assert result.format == "gulordava" and result.skipped == []
    key = {"pattern": "NOUN_ADP_NOUN_VERB", "constr_id": 0}
    assert result.items == [
        Item("gulordava-NOUN_ADP_NOUN_VERB-0-0", "the dogs near the gate [MASK] at night .", "bark", "barks",
             {"n_attractors": 1, **key, "sent_id": 0, "type": "original", "correct_number": "plur"}),
        # the quoted sent with "" inside; the sentence's own verb (glow) is masked, the forms compared
        Item("gulordava-NOUN_ADP_NOUN_VERB-0-4", 'the lamps beside the " red " door [MASK] softly , mostly .',
             "shine", "shines", {"n_attractors": 1, **key, "sent_id": 4, "type": "generated",
                                 "correct_number": "plur"}),
        # the wrong row comes first here; "NA" stays a word, not a missing value
        Item("gulordava-NOUN_ADP_NOUN_PUNCT_VERB-2-1", "NA the singer with the drums , it seems , [MASK] well .",
             "sings", "sing", {"n_attractors": 1, "pattern": "NOUN_ADP_NOUN_PUNCT_VERB", "constr_id": 2,
                               "sent_id": 1, "type": "generated", "correct_number": "sing"}),
    ]


def test_grammar_sample_is_what_the_generator_draws_and_rewrites_to_the_same_bytes(tmp_path):
    result = read_items(DATA / "grammar.jsonl")
    assert result.format == "grammar" and result.skipped == []
    assert result.items == grammar_items(3, seed=0)
    again = write_grammar_dataset(tmp_path / "again.jsonl", 3, seed=0)
    assert again.read_bytes() == (DATA / "grammar.jsonl").read_bytes()


def test_grammar_tsv_round_trip(tmp_path):
    path = write_grammar_dataset(tmp_path / "g.tsv", 20, seed=5, max_attractors=3, held_out=False)
    assert detect_format(path) == "grammar"
    assert read_items(path).items == grammar_items(20, seed=5, max_attractors=3, held_out=False)
    with pytest.raises(ValueError, match=r"\.jsonl or \.tsv"):
        write_grammar_dataset(tmp_path / "g.csv", 2, seed=0)


COLUMN_OPTIONS = dict(text_column="sentence", target_column="good", contrast_column="bad", group_column="condition",
                      id_column="qid", meta_columns=["n_attractors"])
COLUMN_ITEMS = [
    Item("q1", "The keys, as always, [MASK] on the table.", "are", "is", {"n_attractors": 0, "group": "pp"}),
    Item("q2", 'The dog that the children love [MASK] "Rex".', "is", "are", {"n_attractors": 1, "group": "object_rc"}),
    Item("q3", "The authors near the door [MASK] well.", "write", "writes", {"n_attractors": 1, "group": "pp"}),
]
COLUMN_ROWS = [{"qid": "q1", "sentence": "The keys, as always, [MASK] on the table.", "good": "are", "bad": "is",
                "condition": "pp", "n_attractors": 0},
               {"qid": "q2", "sentence": 'The dog that the children love [MASK] "Rex".', "good": "is", "bad": "are",
                "condition": "object_rc", "n_attractors": 1},
               {"qid": "q3", "sentence": "The authors near the door [MASK] well.", "good": "write", "bad": "writes",
                "condition": "pp", "n_attractors": 1}]


def test_columns_sample_csv_with_quoted_commas():
    result = read_items(DATA / "columns.csv", **COLUMN_OPTIONS)
    assert result.format == "columns" and result.skipped == []
    assert result.items == COLUMN_ITEMS


def as_source(dataset, kind, folder):
    """`dataset` as an in-memory object or written to `folder` as a file of that kind."""
    if kind == "memory":
        return dataset
    if kind == "dict":
        return datasets.DatasetDict({"test": dataset})
    if kind == "numpy":
        return dataset.with_format("numpy")
    path = folder / {"jsonl": "c.jsonl", "parquet": "c.parquet", "saved": "saved"}[kind]
    {"jsonl": dataset.to_json, "parquet": dataset.to_parquet, "saved": dataset.save_to_disk}[kind](str(path))
    return path


@pytest.mark.parametrize("kind", ["memory", "dict", "numpy", "jsonl", "parquet", "saved"])
def test_columns_from_every_kind_of_source(tmp_path, kind):
    source = as_source(datasets.Dataset.from_list(COLUMN_ROWS), kind, tmp_path)
    assert read_items(source, **COLUMN_OPTIONS).items == COLUMN_ITEMS


def test_columns_defaults_and_other_mask_tokens():
    dataset = datasets.Dataset.from_dict({"text": ["The keys <mask> here.", "No mask here."],
                                          "target": ["are", "is"], "contrast": ["is", ""]})
    assert detect_format(dataset) == "columns"
    result = read_items(dataset, format="columns", mask_token="<mask>")
    assert result.items == [Item("row-000000", "The keys [MASK] here.", "are", "is", {})]
    assert result.skipped == [Skipped("row-000001", "no mask in text; an item masks exactly one word ('[MASK]')")]
    # an empty contrast cell is "no contrast", not a bad row
    one = datasets.Dataset.from_dict({"text": ["It [MASK] ."], "target": ["is"], "contrast": [None]})
    assert read_items(one).items == [Item("row-000000", "It [MASK] .", "is", None, {})]


def test_lgd_from_a_dataset_with_named_columns(tmp_path):
    dataset = datasets.Dataset.from_dict({"n_attractors": [1], "sentence": ["the keys to the cabinet are here ."],
                                          "masked_sentence": ["the keys to the cabinet ***mask*** here ."],
                                          "good_word": ["are"], "bad_word": ["is"]})
    assert detect_format(dataset) == "lgd"
    expected = [Item("lgd-000000", "the keys to the cabinet [MASK] here .", "are", "is", {"n_attractors": 1})]
    assert read_items(dataset).items == expected
    # a header line of exactly these names is read as a header, not as a bad row
    with_header = write(tmp_path / "h.tsv", "\t".join(dataset.column_names) + "\n"
                        + "1\tthe keys to the cabinet are here .\tthe keys to the cabinet ***mask*** here .\tare\tis\n")
    assert read_items(with_header, format="lgd").items == expected


# --- telling formats apart ------------------------------------------------------------------

@pytest.mark.parametrize("name, fmt", [("lgd.tsv", "lgd"), ("generated.tab", "gulordava"),
                                       ("grammar.jsonl", "grammar")])
def test_detection_from_the_first_line(name, fmt):
    assert detect_format(DATA / name) == fmt


def test_detection_from_dataset_columns(tmp_path):
    assert detect_format(write(tmp_path / "t.csv", "id,text,target\n1,It [MASK] here.,is\n")) == "columns"
    gul = datasets.Dataset.from_dict({c: ["x"] for c in ("pattern", "constr_id", "sent_id", "correct_number", "form",
                                                         "class", "type", "n_attr", "len_prefix", "sent")})
    assert detect_format(gul) == "gulordava"
    assert set(FORMATS) == {"lgd", "gulordava", "grammar", "columns"}


def test_an_unknown_layout_names_every_format_and_its_columns():
    with pytest.raises(ValueError) as error:
        read_items(DATA / "columns.csv")  # no text/target columns and no column options
    message = str(error.value)
    assert "columns.csv" in message and "qid" in message
    for needs in ("lgd:", "***mask***", "gulordava:", "len_prefix", "grammar:", "attractor_words",
                  "columns:", "text_column="):
        assert needs in message


def test_missing_files_and_wrong_options_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.tsv"):
        read_items(tmp_path / "nowhere.tsv")
    with pytest.raises(FileNotFoundError, match="save_to_disk"):
        read_items(tmp_path, format="columns")
    with pytest.raises(ValueError, match="kind of file"):
        read_items(write(tmp_path / "data.xlsx", "x"), format="columns")
    with pytest.raises(ValueError, match="unknown format 'conll'"):
        read_items(DATA / "lgd.tsv", format="conll")
    with pytest.raises(TypeError, match="format='columns'"):
        read_items(DATA / "lgd.tsv", format="lgd", text_column="sentence")
    with pytest.raises(TypeError, match="unknown options"):
        read_items(DATA / "lgd.tsv", text_colum="sentence")
    with pytest.raises(ValueError, match="empty"):
        read_items(write(tmp_path / "empty.tsv", ""), format="lgd")
    with pytest.raises(ValueError, match=r"no column\(s\) \['sentense'\]"):
        read_items(DATA / "columns.csv", text_column="sentense", target_column="good")


# --- bad rows -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["c.parquet", "c.jsonl"])
def test_a_corrupt_parquet_or_json_file_is_an_error_naming_it(tmp_path, name):
    good = as_source(datasets.Dataset.from_list(COLUMN_ROWS), name.split(".")[1], tmp_path)
    broken = tmp_path / f"broken-{name}"
    data = good.read_bytes()
    broken.write_bytes(data[: len(data) // 2] + (b"" if name.endswith("parquet") else b'{"text": '))
    with pytest.raises(ValueError, match=f"broken-{name}.*cannot read it as"):
        read_items(broken, **COLUMN_OPTIONS)


def test_lgd_bad_rows_are_skipped_and_good_ones_keep_their_row_ids(tmp_path):
    path = write(tmp_path / "lgd.tsv", "\n".join([
        "1\tthe key is here .\tthe key ***mask*** here .\tis\tare",
        "1\tthe key is here .\tthe key is here .\tis\tare",                          # no mask
        "2\tx\tthe key ***mask*** ***mask*** .\tis\tare",                            # two masks
        "1\tthe key is here .\tthe key ***mask*** here .\t\tare",                    # empty target
        "many\tthe key is here .\tthe key ***mask*** here .\tis\tare",               # not a number
        "1\tthe key is here .\tthe key ***mask*** here .\tis\tare\textra\tfields",   # too many fields
        "1\tthe key is here .",                                                      # too few
        "1\tthe key is here .\tthe key ***mask*** here .\tis\tis",                   # nothing to compare
        '1\t"the keys , she said , are here .\t"the keys , she said , ***mask*** here .\tare\tis',
    ]) + "\n")
    result = read_items(path)
    assert [item.id for item in result.items] == ["lgd-000000", "lgd-000008"]
    assert result.items[1].text == '"the keys , she said , [MASK] here .'
    reasons = {s.id: s.reason for s in result.skipped}
    assert reasons == {
        "lgd-000001": "no mask in masked_sentence (expected one ***mask***); an item masks exactly one word ('[MASK]')",
        "lgd-000002": "2 masks in masked_sentence (expected one ***mask***); an item masks exactly one word ('[MASK]')",
        "lgd-000003": "empty good_word",
        "lgd-000004": "n_attractors 'many' is not a whole number >= 0",
        "lgd-000005": "expected 5 tab-separated fields, got 7",
        "lgd-000006": "empty masked_sentence (expected one ***mask***)",
        "lgd-000007": "good_word and bad_word are both 'is'",
    }


GUL_HEADER = "pattern\tconstr_id\tsent_id\tcorrect_number\tform\tclass\ttype\tprefix\tn_attr\tpunct\tfreq\t" \
             "len_context\tlen_prefix\tsent\n"


def gul_row(sent_id, form, class_, sent="the dogs near the gate bark . <eos>", n_attr="1", len_prefix="5"):
    return "\t".join(["P", "0", sent_id, "plur", form, class_, "generated", "the dogs near the gate", n_attr,
                      "False", "10", "3", len_prefix, sent]) + "\n"


def test_gulordava_bad_rows_and_unpaired_items(tmp_path):
    path = write(tmp_path / "g.tab", GUL_HEADER + "".join([
        gul_row("1", "bark", "correct"), gul_row("1", "barks", "wrong"),              # fine
        gul_row("2", "bark", "correct"),                                              # no wrong row
        gul_row("3", "barks", "wrong"),                                               # no correct row
        gul_row("4", "bark", "correct"), gul_row("4", "bark", "correct"), gul_row("4", "barks", "wrong"),
        gul_row("5", "bark", "correct", len_prefix="9"), gul_row("5", "barks", "wrong", len_prefix="9"),
        gul_row("6", "bark", "correct", n_attr="x"), gul_row("6", "barks", "wrong", n_attr="x"),
        gul_row("7", "bark", "correct"), gul_row("7", "barks", "wrong", sent="other words . <eos>"),
        gul_row("8", "bark", "right"),
        gul_row("9", "bark", "correct"),
        gul_row("10", "bark", "correct", sent="a tab\tinside . <eos>"),                # 15 fields
        "P\t0\n",                                                                      # 2 fields
    ]))
    result = read_items(path)
    assert [item.id for item in result.items] == ["gulordava-P-0-1", "gulordava-P-0-4"]
    assert result.items[0].text == "the dogs near the gate [MASK] ." and result.items[0].meta["n_attractors"] == 1
    reasons = [(s.id, s.reason) for s in result.skipped]
    assert reasons == [
        ("gulordava-P-0-4", "row 5: a second 'correct' row for this item (the first one is used)"),
        ("gulordava-P-0-5", "len_prefix 9 is past the sentence's 7 words"),
        ("gulordava-P-0-6", "n_attr 'x' is not a whole number >= 0"),
        ("gulordava-P-0-7", "the 'correct' and 'wrong' rows have different sentences"),
        ("gulordava-P-0-8", "row 13: class 'right' is neither 'correct' nor 'wrong'"),
        ("gulordava-row-000015", "row 15: expected 14 tab-separated fields, got 15"),
        ("gulordava-row-000016", "row 16: empty pattern/constr_id/sent_id"),
        ("gulordava-P-0-2", "only the 'correct' row; its 'wrong' row is missing"),
        ("gulordava-P-0-3", "only the 'wrong' row; its 'correct' row is missing"),
        ("gulordava-P-0-9", "only the 'correct' row; its 'wrong' row is missing"),
    ]


def test_columns_bad_rows(tmp_path):
    path = write(tmp_path / "c.tsv", "id\ttext\ttarget\tsubject_word\n"
                 "a\tThe keys [MASK] here.\tare\t1\n"
                 "a\tThe keys [MASK] here.\tare\t1\n"              # the id again
                 "\tThe keys [MASK] here.\tare\t1\n"               # no id
                 "b\tThe [MASK] keys [MASK] here.\tare\t1\n"
                 "c\tThe keys [MASK] here.\ttwo words\t1\n"
                 "d\tThe keys [MASK] here.\tare\t7\n")
    result = read_items(path, meta_columns=["subject_word"])
    assert result.items == [Item("a", "The keys [MASK] here.", "are", None, {"subject_word": 1})]
    assert [(s.id, s.reason) for s in result.skipped] == [
        ("a", "duplicate id: an earlier row already has it"),
        ("row-000002", "empty id"),
        ("b", "2 masks in text; an item masks exactly one word ('[MASK]')"),
        ("c", "target 'two words' is more than one word"),
        ("d", "subject_word 7 is past the text's 4 words"),
    ]


def test_grammar_rows_whose_indices_do_not_fit_are_skipped(tmp_path):
    good = json.loads((DATA / "grammar.jsonl").read_text().splitlines()[2])
    rows = [good, {**good, "id": "far", "subject_word": 40}, {**good, "id": "count", "n_attractors": 2},
            {**good, "id": "verb", "attractor_words": [6]}]
    path = write(tmp_path / "g.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    result = read_items(path)
    assert [item.id for item in result.items] == ["grammar-0-2"]
    assert [(s.id, s.reason) for s in result.skipped] == [
        ("far", "subject_word 40 is past the text's 9 words"),
        ("count", "n_attractors is 2 but attractor_words has 1 indices"),
        ("verb", "attractor_words 6 points at the mask"),
    ]


def test_limit_stops_after_that_many_items():
    assert [i.id for i in read_items(DATA / "lgd.tsv", limit=2).items] == ["lgd-000000", "lgd-000001"]
    assert read_items(DATA / "generated.tab", limit=1).items[0].id == "gulordava-NOUN_ADP_NOUN_VERB-0-0"
    assert read_items(DATA / "lgd.tsv", limit=0).items == []
    with pytest.raises(ValueError, match="limit"):
        read_items(DATA / "lgd.tsv", limit=-1)


# --- the grammar: old draws unchanged, new ones with 1-4 attractors ---------------------------

def fingerprint(sentences):
    fields = [(s.words, s.verb_index, s.number, s.other_verb, s.verb_kind, s.construction, s.attractor_number)
              for s in sentences]
    return hashlib.sha256(repr(fields).encode()).hexdigest()[:16]


def test_generate_draws_what_it_drew_before_multi_attractor_sentences_were_added():
    # computed with the grammar as it was before generate_attractors existed; the shipped MLM head
    # was fitted on generate(16000, seed=0, nouns=train) and must stay reproducible
    train, held = grammar.split_nouns()
    assert fingerprint(grammar.generate(16000, seed=0, nouns=train)) == "beebc562ab48a931"
    assert fingerprint(grammar.generate(500, seed=1, nouns=held)) == "9a5e2e9941c41a61"
    assert fingerprint(grammar.generate(2000, seed=7)) == "0048dca1c2f46213"
    assert fingerprint(grammar.generate(300, seed=5, constructions=("pp",), verb_kinds=("is",))) == "200c7f1e87416364"
    assert [s.text for s in grammar.generate(3, seed=0, nouns=train)] == [
        "The engineers that the mice know read every night.", "The cat beside the chairs was hungry.",
        "The goose has a good nose."]


SINGULAR = {pair[0] for pairs in grammar.NOUNS.values() for pair in pairs}
PLURAL = {pair[1] for pairs in grammar.NOUNS.values() for pair in pairs}
MANY = grammar.generate_attractors(1500, seed=11)
MIXED = grammar.generate_attractors(1500, seed=12, mixed_numbers=True)


def number_of(noun):
    return grammar.SG if noun in SINGULAR else grammar.PL


def test_attractor_sentences_record_where_the_subject_and_attractors_are():
    for s in MANY + MIXED:
        nouns = [i for i, w in enumerate(s.words[:s.verb_index]) if w in SINGULAR | PLURAL]
        assert s.subject_index == 1 and nouns == [1, *s.intervening_indices], s.text
        assert number_of(s.words[1]) == s.number, s.text
        assert [number_of(s.words[i]) for i in s.intervening_indices] == list(s.intervening_numbers), s.text
        assert s.attractor_number == s.intervening_numbers[-1]
        assert s.n_attractors == sum(n != s.number for n in s.intervening_numbers)
        assert s.verb != s.other_verb and number_of(s.words[1]) == s.number
    assert all(s.n_attractors == s.n_intervening for s in MANY)  # the default: every noun is an attractor
    assert any(s.n_attractors < s.n_intervening for s in MIXED)


def test_attractor_counts_and_constructions_are_balanced():
    counts = collections.Counter((s.construction, s.n_attractors) for s in MANY)
    for construction in grammar.ATTRACTOR_CONSTRUCTIONS:
        for k in range(1, 5):
            assert counts[construction, k] > 60, (construction, k)
    assert grammar.generate_attractors(40, seed=3) == grammar.generate_attractors(40, seed=3)
    assert {s.n_intervening for s in grammar.generate_attractors(200, seed=3, max_attractors=2)} == {1, 2}
    with pytest.raises(ValueError, match="min_attractors"):
        grammar.generate_attractors(1, seed=0, max_attractors=0)


def test_grammar_items_point_their_meta_at_the_nouns_of_their_text():
    held = {w for pairs in grammar.split_nouns()[1].values() for pair in pairs for w in pair}
    for item in grammar_items(300, seed=4):
        words = item.text.split(" ")
        assert words.count(MASK) == 1
        assert words[item.meta["subject_word"]] in held
        assert number_of(words[item.meta["subject_word"]]) == item.meta["subject_number"]
        for i, number in zip(item.meta["intervening_words"], item.meta["intervening_numbers"]):
            assert words[i] in held and number_of(words[i]) == number
        assert item.meta["attractor_words"] == item.meta["intervening_words"]
        assert 1 <= item.meta["n_attractors"] == len(item.meta["attractor_words"]) <= 4
    assert [i.id for i in grammar_items(2, seed=9)] == ["grammar-9-0", "grammar-9-1"]


def test_grammar_words_are_single_tokens_of_the_minilm_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")
    from bf_bert.default_model import default_model_path

    tokenizer = tokenizers.Tokenizer.from_file(os.path.join(default_model_path(), "tokenizer.json"))
    tokenizer.no_padding()
    words = {w for s in MANY + MIXED for w in s.words}
    split = {w: tokenizer.encode(w, add_special_tokens=False).tokens for w in words}
    assert {w: t for w, t in split.items() if len(t) != 1} == {}
