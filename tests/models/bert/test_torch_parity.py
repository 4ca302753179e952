"""BF BERT against transformers' torch BERT where a user compares them directly: the parameter
gradients of a loss on a padded batch (padding rows included), and the keys and tuple layout
of every head's output.

Tiny seeded models with perturbed weights (so the padding row of the word embeddings is not
zero, as in trained checkpoints), one input shape (batch 2, seq 7), the padding id 0 in the
padded positions.
"""

import numpy as np
import pytest
import torch
import transformers

from transformers import BertConfig

CONFIG = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
              max_position_embeddings=64, num_labels=2, pad_token_id=0)
HEADS = ["Model", "ForPreTraining", "ForMaskedLM", "ForNextSentencePrediction", "ForSequenceClassification",
         "ForMultipleChoice", "ForTokenClassification", "ForQuestionAnswering"]


def padded_batch():
    ids = np.random.RandomState(0).randint(1, CONFIG["vocab_size"], (2, 7))
    mask = np.ones((2, 7), np.int64)
    ids[1, -2:], mask[1, -2:] = CONFIG["pad_token_id"], 0  # the second sentence is padded
    return ids, mask


def labels_for(head):
    token_labels = np.full((2, 7), -100)
    token_labels[0, 2], token_labels[1, 1], token_labels[1, 3] = 5, 17, 42
    return {"ForPreTraining": {"labels": token_labels, "next_sentence_label": np.array([0, 1])},
            "ForMaskedLM": {"labels": token_labels},
            "ForNextSentencePrediction": {"labels": np.array([1, 0])},
            "ForSequenceClassification": {"labels": np.array([1, 0])},
            "ForMultipleChoice": {"labels": np.array([1])},
            "ForTokenClassification": {"labels": np.where(token_labels == -100, -100, token_labels % 2)},
            "ForQuestionAnswering": {"start_positions": np.array([1, 3]), "end_positions": np.array([3, 4])},
            "Model": {}}[head]


def inputs_for(head, with_mask=True):
    ids, mask = padded_batch()
    inputs = {"input_ids": ids, "attention_mask": mask} if with_mask else {"input_ids": ids}
    if head == "ForMultipleChoice":  # (1 question, 2 choices, seq)
        inputs = {k: v[None] for k, v in inputs.items()}
    return inputs


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """head → (torch model, BF model) on identical weights."""
    pairs = {}
    for head in HEADS:
        torch.manual_seed(0)
        reference = getattr(transformers, "Bert" + head)(BertConfig(**CONFIG, attn_implementation="eager"))
        with torch.no_grad():
            for param in reference.parameters():
                param.add_(0.05 * torch.randn_like(param))
        folder = tmp_path_factory.mktemp(head)
        reference.save_pretrained(folder)
        pairs[head] = reference.eval(), getattr(transformers, "BFBert" + head).from_pretrained(folder)
    return pairs


# -- gradients: torch's nn.Embedding(padding_idx) gives the padding row nothing from the lookup ----

@pytest.mark.parametrize("head, with_mask", [("ForMaskedLM", True), ("ForMaskedLM", False),
                                             ("ForTokenClassification", False), ("ForPreTraining", True)])
def test_loss_gradients_on_a_padded_batch_match_torch_for_every_parameter(models, head, with_mask):
    # without an attention mask the padding ids are attended: the padding row then lies on paths
    # to the loss, and only the masked lookup keeps its gradient at torch's
    reference, model = models[head]
    inputs = {**inputs_for(head, with_mask), **labels_for(head)}
    reference.zero_grad()
    reference(**{k: torch.as_tensor(v) for k, v in inputs.items()}).loss.backward()
    model.zero_gradients()
    model(**inputs).loss.backprop(values_to_compute=("grad",))  # a bucketed, compiled forward
    ours = dict(model.named_parameters())
    theirs = {name: p for name, p in reference.named_parameters() if p.grad is not None}
    assert set(ours) == set(theirs)
    for name, param in theirs.items():
        np.testing.assert_allclose(np.asarray(ours[name].grad), param.grad.numpy(), rtol=0,
                                   atol=1e-5 * max(1.0, float(param.grad.abs().max())), err_msg=name)
    pad_row = theirs["bert.embeddings.word_embeddings.weight"].grad[CONFIG["pad_token_id"]]
    if head == "ForTokenClassification":  # no tied decoder: the lookup is the row's only use
        assert np.all(np.asarray(ours["bert.embeddings.word_embeddings.weight"].grad)[0] == 0)
        assert torch.all(pad_row == 0)


# -- outputs: the same keys, in the same order, and the same tuple layout ---------------------------

def layout(value):
    """Shapes, with tuples spelled out: what a caller indexing or unpacking the output relies on."""
    if isinstance(value, (tuple, list)):
        return tuple(layout(v) for v in value)
    return tuple(np.shape(value.val if hasattr(value, "val") else value.detach().numpy()))


FLAGS = [{}, {"output_attentions": True}, {"output_hidden_states": True},
         {"output_attentions": True, "output_hidden_states": True, "labels": True}]


@pytest.mark.parametrize("head", HEADS)
def test_every_head_has_torchs_output_keys_and_tuple_layout(models, head):
    reference, model = models[head]
    model.compiled_forward = False  # the layout is the forward's; eager kernels are shared by every head
    try:
        for flags in FLAGS:
            call = dict(inputs_for(head), **{k: v for k, v in flags.items() if k != "labels"})
            if flags.get("labels"):
                call.update(labels_for(head))
            with torch.no_grad():
                expected = reference(**{k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v
                                        for k, v in call.items()})
                expected_tuple = reference(**{k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v
                                              for k, v in call.items()}, return_dict=False)
            got = model(**call)
            assert list(got.keys()) == list(expected.keys()), flags
            assert layout(got.to_tuple()) == layout(expected.to_tuple()), flags
            assert layout(model(**call, return_dict=False)) == layout(expected_tuple), flags
    finally:
        model.compiled_forward = True


def test_cross_attentions_is_an_empty_tuple_through_the_compiled_forward_too(models):
    reference, model = models["Model"]
    with torch.no_grad():
        expected = reference(**{k: torch.as_tensor(v) for k, v in inputs_for("Model").items()}, output_attentions=True)
    got = model(**inputs_for("Model"), output_attentions=True)
    assert expected.cross_attentions == () and got.cross_attentions == ()
    assert list(got.keys()) == list(expected.keys())
    assert layout(model(**inputs_for("Model"), output_attentions=True, return_dict=False)) == \
        layout(expected.to_tuple())
