"""scripts/fit_default_lm.py and its helpers: a few-step run on the shipped sample text, and the pieces it trusts.

The smoke run trains on scripts/data/sample_text.txt (public domain, shipped), so it needs no
Debian text package; the real fit reads the packages lm_text names.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.append(str(REPO / "scripts"))  # bf_bert stays the installed copy
import fit_default_lm  # noqa: E402
import lm_agreement  # noqa: E402
import lm_eval  # noqa: E402
import lm_text  # noqa: E402

SAMPLE = REPO / "scripts" / "data" / "sample_text.txt"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    prov = fit_default_lm.main(["--sources", "", "--text", str(SAMPLE), "--tune-layers", "1", "--max-steps", "3",
                                "--batch-size", "8", "--max-agreement-items", "16", "--grammar-sentences", "40",
                                "--out-dir", str(out)])
    return out, prov


def test_a_few_steps_on_the_sample_text_write_weights_the_default_model_builds_from(run):
    from safetensors.numpy import load_file

    from bf_bert import default_model
    from transformers import AutoTokenizer, BertForMaskedLM

    out, prov = run
    top = load_file(out / fit_default_lm.WEIGHTS)
    assert prov["tuned_layers"] == [5] and prov["training"]["steps"] == 3
    assert set(top) == set(default_model.HEAD_KEYS) | {k for k in top if k.startswith("bert.encoder.layer.5.")}
    assert json.loads((out / fit_default_lm.PROVENANCE).read_text())["sha256"] == prov["sha256"]
    held = prov["heldout"]
    assert held["heldout_masked_tokens"]["masked_tokens"] > 0 and held["real_agreement"]["all"]["n"] == 16
    assert held["cloze"]["n"] == len(lm_eval.read_cloze()) and held["grammar_is_are"]["all"]["n"] > 100
    assert prov["data"]["train_sentences"] == prov["text_sources"]["text"]["train_sentences"] + 40
    # the weights drop into the default model's folder layout in place of the shipped ones
    folder = out / "folder"
    folder.mkdir()
    default_model._build(folder, default_model._encoder_folder(), out / fit_default_lm.WEIGHTS)
    assert json.loads((folder / "bf_bert_provenance.json").read_text())["sha256"] == prov["sha256"]
    model = BertForMaskedLM.from_pretrained(folder).eval()
    np.testing.assert_array_equal(model.bert.encoder.layer[5].output.dense.weight.detach().numpy(),
                                  top["bert.encoder.layer.5.output.dense.weight"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert len(lm_eval.cloze(model, tokenizer, lm_eval.read_cloze()[:3])["predictions"]) == 3


def test_training_moves_only_the_tuned_layers_and_the_head(run):
    from safetensors.numpy import load_file

    _, _, minilm = fit_default_lm.load_minilm()
    top = load_file(run[0] / fit_default_lm.WEIGHTS)
    before = minilm.state_dict()
    changed = [k for k in top if not np.array_equal(top[k], before[k].numpy())]
    assert "cls.predictions.transform.dense.weight" in changed
    assert any(k.startswith("bert.encoder.layer.5.") for k in changed)
    assert all(k.startswith(("bert.encoder.layer.5.", "cls.")) for k in changed)


def test_the_split_forward_is_the_whole_encoder():
    folder, tokenizer, model = fit_default_lm.load_minilm()
    fit_default_lm.check_split_forward(model, tokenizer)  # raises when they differ


def test_missing_text_packages_are_named(monkeypatch, tmp_path):
    monkeypatch.setattr(lm_text, "FORTUNE_DIR", tmp_path / "nothing")
    with pytest.raises(lm_text.MissingText, match="fortunes-min"):
        lm_text.fortune_documents()
    monkeypatch.setattr(lm_text, "WORDNET_DIR", tmp_path / "nothing")
    with pytest.raises(lm_text.MissingText, match="wordnet-base"):
        lm_text.wordnet_documents()
    monkeypatch.setattr(lm_text.shutil, "which", lambda name: None)
    with pytest.raises(lm_text.MissingText, match="libsword-utils"):
        lm_text.bible_documents()
    # the script itself stops with that message, not a traceback
    with pytest.raises(SystemExit, match="fit_default_lm: .*libsword-utils"):
        fit_default_lm.main(["--sources", "web", "--out-dir", str(tmp_path)])
    assert not list(tmp_path.glob("*.safetensors"))


def test_sentences_split_after_stops_but_not_after_titles():
    text = lm_text.normalise('He said, \u201cGo.\u201d  Then Mr. Smith left! Was it 3 p.m.? "Yes." ok')
    assert lm_text.split_sentences(text) == ['He said, "Go."', "Then Mr. Smith left!", "Was it 3 p.m.?",
                                             '"Yes." ok']


def test_held_out_documents_never_share_a_sentence_with_training():
    train, heldout, counts = lm_text.load_corpus((), [SAMPLE])
    assert heldout and not {s.text.lower() for s in train} & {s.text.lower() for s in heldout}
    assert counts["text"]["train_sentences"] == len(train)


def tags(words_and_tags):
    return [tuple(p.split("/")) for p in words_and_tags.split()]


@pytest.mark.parametrize("tagged, subject", [
    ("The/det keys/nns to/to the/det cabinet/nn are/vbp", "keys"),
    ("The/det dog/nn near/in the/det old/jj houses/nns is/vbz", "dog"),
    ("The/det authors/nns that/wdt the/det critic/nn praises/vbz are/vbp", "authors"),
    ("The/det man/nn who/wp is/vbz", "man"),
    ("She/prp was/vbd", "She"),
    ("He/prp clearly/rb has/vbz", "He"),
    ("There/ex are/vbp", None),
    ("What/wp he/prp said/vbd was/vbd", None),  # a clause as subject: no item
    ("The/det man/nn who/wp likes/vbz dogs/nns is/vbz", "man"),
    ("The/det keys/nns to/to the/det man/nn who/wp sings/vbz are/vbp", "keys"),
    ("The/det dog/nn that/wdt is/vbz barking/vbg is/vbz", "dog"),
    ("I/prp know/vbp that/in the/det dogs/nns are/vbp", "dogs"),
    ("They/prp will/md have/vbp", None),
])
def test_subject_heuristic(tagged, subject):
    t = tags(tagged)
    found = lm_agreement.find_subject(t, len(t) - 1)
    assert (t[found][0] if found is not None else None) == subject


def test_items_keep_only_finite_verbs_whose_subject_agrees():
    sentence = "The keys to the cabinet are on the table."
    t = tags("The/det keys/nns to/to the/det cabinet/nn are/vbp on/in the/det table/nn ./pp")
    (item,) = lm_agreement.items_from(sentence, t)
    assert sentence[item["start"]:item["end"]] == "are" and item["other"] == "is" and item["agrees"]
    assert item["distance"] == 4 and item["attractors"] == 1 and item["subject"] == "keys"


def test_shipped_agreement_items_point_at_their_verb():
    items = lm_eval.read_agreement_items()
    assert len(items) >= 1000
    for it in items:
        assert it["sentence"][it["start"]:it["end"]].lower() == it["verb"]
        assert {it["verb"], it["other"]} in [set(p) for p in lm_agreement.PAIRS.values()]
