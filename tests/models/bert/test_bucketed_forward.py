"""Bucketed compiled forwards of every BF BERT head (transformers/modeling_bf_buckets.py) against
the eager forward: the caller's shapes and values, the eager graph for every semiring, one
compile per bucket of lengths, and the eager path wherever padding or tracing cannot apply."""

import jax
import numpy as np
import pytest
import torch

import brunoflow as bf
from brunoflow.net import compiled
from transformers import (BertForMaskedLM, BertForMultipleChoice, BertForNextSentencePrediction, BertForPreTraining,
                          BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification,
                          BertModel, BFBertForMaskedLM, BFBertForMultipleChoice, BFBertForNextSentencePrediction,
                          BFBertForPreTraining, BFBertForQuestionAnswering, BFBertForSequenceClassification,
                          BFBertForTokenClassification, BFBertModel)

from ...brunoflow.net.test_compiled import ALL_VALUES, assert_same_graph
from .test_modeling_bf_bert import tester


@pytest.fixture(autouse=True)
def fresh_caches():
    compiled.clear()
    yield


def eager(model, **inputs):
    model.compiled_forward = False
    try:
        return model(**inputs)
    finally:
        del model.compiled_forward


def inputs_for(head, base):
    inputs = dict(base)
    labels = inputs.pop("labels")
    if head in ("masked_lm", "token_classification"):
        inputs["labels"] = np.where(labels == -100, -100, labels % 3)
    elif head == "pretraining":
        inputs.update(labels=labels, next_sentence_label=np.array([0, 1]))
    elif head in ("next_sentence_prediction", "sequence_classification"):
        inputs["labels"] = np.array([1, 0])
    elif head == "multiple_choice":
        inputs = {k: v[None] for k, v in inputs.items()}
        inputs["labels"] = np.array([1])
    return inputs


HEADS = {
    "model": (BertModel, BFBertModel),
    "masked_lm": (BertForMaskedLM, BFBertForMaskedLM),
    "pretraining": (BertForPreTraining, BFBertForPreTraining),
    "next_sentence_prediction": (BertForNextSentencePrediction, BFBertForNextSentencePrediction),
    "sequence_classification": (BertForSequenceClassification, BFBertForSequenceClassification),
    "multiple_choice": (BertForMultipleChoice, BFBertForMultipleChoice),
    "token_classification": (BertForTokenClassification, BFBertForTokenClassification),
    "question_answering": (BertForQuestionAnswering, BFBertForQuestionAnswering),
}


def assert_same_outputs(got, expected, tol=1e-5):
    assert list(got.keys()) == list(expected.keys())
    for field in expected.keys():
        ours, theirs = got[field], expected[field]
        pairs = zip(ours, theirs) if isinstance(theirs, tuple) else [(ours, theirs)]
        for a, b in pairs:
            assert a.shape == b.shape, field
            np.testing.assert_allclose(np.asarray(a.val), np.asarray(b.val), rtol=0, atol=tol, err_msg=field)


@pytest.mark.parametrize("head", HEADS)
def test_every_head_matches_the_eager_forward_at_the_callers_shapes(tmp_path, head):
    torch_class, bf_class = HEADS[head]
    overrides = {"num_labels": 2} if head == "question_answering" else {}
    _, model = tester.build(torch_class, bf_class, tmp_path, **overrides)
    inputs = inputs_for(head, tester.prepare_inputs())
    flags = dict(output_hidden_states=True, output_attentions=True)
    got = model(**inputs, **flags)
    assert (compiled.stats.calls, compiled.stats.padded) == (1, 1)  # seq 7 ran in the 16-long program
    assert_same_outputs(got, eager(model, **inputs, **flags))
    assert got.attentions[0].shape[-2:] == (7, 7)


def test_question_answering_positions_run_unpadded(tmp_path):
    _, model = tester.build(BertForQuestionAnswering, BFBertForQuestionAnswering, tmp_path, num_labels=2)
    inputs = {k: v for k, v in tester.prepare_inputs().items() if k != "labels"}
    # a softmax over the sequence picks them: padded, 10 would be a (padding) position, not ignored
    inputs.update(start_positions=np.array([1, 10]), end_positions=np.array([3, 4]))
    got = model(**inputs)
    assert (compiled.stats.calls, compiled.stats.padded) == (1, 0)
    assert_same_outputs(got, eager(model, **inputs))


def test_a_row_with_no_kept_token_runs_unpadded(tmp_path):
    _, model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path)
    inputs = {k: v for k, v in tester.prepare_inputs().items() if k != "labels"}
    inputs["attention_mask"] = inputs["attention_mask"].copy()
    inputs["attention_mask"][1] = 0  # its softmax spreads over every key: padding would add keys
    got = model(**inputs)
    assert (compiled.stats.calls, compiled.stats.padded) == (1, 0)
    assert_same_outputs(got, eager(model, **inputs))


def test_backprop_from_a_bucketed_forward_matches_eager_for_every_semiring(tmp_path):
    torch_model, model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path)
    inputs = {k: v for k, v in tester.prepare_inputs().items() if k not in ("labels", "input_ids")}
    ids = tester.prepare_inputs()["input_ids"]
    embeds = bf.Node(torch_model.bert.embeddings.word_embeddings(torch.as_tensor(ids)).detach().numpy(),
                     name="inputs_embeds")
    results = []
    for run in (eager, lambda m, **kw: m(**kw)):
        out = run(model, inputs_embeds=embeds, output_hidden_states=True, **inputs)
        out.logits[1, 3, 5].backprop(values_to_compute=ALL_VALUES)
        leaves = [*model.named_parameters(), ("inputs_embeds", embeds)]
        results.append((out, {name: (leaf.grad, leaf.abs_val_grad, leaf.compute_entropy().val,
                                     *leaf.max_grad_of_output_wrt_node, *leaf.max_neg_grad_of_output_wrt_node,
                                     *leaf.max_path_of_output_wrt_node, *leaf.min_path_of_output_wrt_node)
                                for name, leaf in leaves}))
        for _, leaf in leaves:
            leaf._zero_self()
    (expected_out, expected), (got_out, got) = results
    assert compiled.stats.padded == 1
    for name in expected:
        for k, (a, b) in enumerate(zip(got[name], expected[name])):
            scale = float(np.max(np.abs(np.asarray(b)), initial=0.0))
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5 * max(scale, 1.0),
                                       err_msg=f"{name}[{k}]")
    assert_same_graph(got_out.logits, expected_out.logits, leaves=[embeds, *model.parameters()])
    consumers = {p.module_path for p in got_out.hidden_states[1].get_parents()}
    assert "bert.encoder.layer.1.attention.self.query" in consumers  # the layer's real input, not a copy


def test_lengths_share_a_bucket_and_architectures_share_programs(tmp_path):
    _, model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path / "a")
    rng = np.random.default_rng(0)

    def call(m, length):
        return m(input_ids=rng.integers(1, 99, (1, length)), attention_mask=np.ones((1, length), np.int64))

    for length in (3, 7, 12, 16):
        assert call(model, length).logits.shape == (1, length, 99)
    assert (compiled.stats.programs, compiled.stats.calls) == (1, 4)
    call(model, 17)  # the next bucket
    assert compiled.stats.programs == 2
    tester.seed = 1  # another checkpoint of the same architecture
    try:
        _, other = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path / "b")
    finally:
        tester.seed = 0
    out = call(other, 9)
    assert compiled.stats.programs == 2
    assert out.logits.inputs[0].module is other.cls.predictions.decoder
    _, bigger = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path / "c", intermediate_size=41)
    call(bigger, 9)
    assert compiled.stats.programs == 3


def test_training_mode_head_mask_and_the_switch_run_eagerly(tmp_path):
    _, model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path)
    inputs = {k: v for k, v in tester.prepare_inputs().items() if k != "labels"}
    model.train()
    first, second = (np.asarray(model(**inputs).logits.val) for _ in range(2))
    assert not np.allclose(first, second)  # dropout draws a new mask per call, as eager
    model.eval()
    model(**inputs, head_mask=np.ones((2, 4)))
    model.compiled_forward = False
    model(**inputs)
    assert compiled.stats.calls == 0 and compiled.stats.eager == 3


def test_traced_inputs_run_eagerly(tmp_path):
    _, model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path)
    inputs = {k: v for k, v in tester.prepare_inputs().items() if k != "labels"}
    expected = np.asarray(eager(model, **inputs).logits.val)
    got = jax.jit(lambda kw: model(**kw).logits.val)(inputs)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=1e-5)
    assert compiled.stats.calls == 0


def test_bad_labels_give_the_eager_error(tmp_path):
    _, model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path)
    inputs = tester.prepare_inputs()
    inputs["labels"] = inputs["labels"][:, :-1]
    with pytest.raises(ValueError, match=r"labels of shape \(2, 6\) do not match logits of shape \(2, 7, 99\)"):
        model(**inputs)


def test_positional_arguments_and_tuples(tmp_path):
    _, model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path)
    inputs = tester.prepare_inputs()
    got = model(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], labels=inputs["labels"],
                return_dict=False)
    expected = eager(model, **inputs, return_dict=False)
    assert isinstance(got, tuple) and len(got) == len(expected) == 2
    for a, b in zip(got, expected):
        np.testing.assert_allclose(np.asarray(a.val), np.asarray(b.val), rtol=0, atol=1e-5)
