"""The explanation step with the layers scanned is the unrolled step, to float rounding."""

import jax
import numpy as np
import pytest
from transformers import BFBertForMaskedLM

from bf_bert.analysis.layer_scan import StackedWeights, scannable, scanned_step
from bf_bert.analysis.program import Program, parameters_of

from ..tiny import minilm_tokenizer, tiny_torch_masked_lm

VALUES = ("grad", "abs_val_grad", "entropy", "max_grad")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """Three layers, so one is between two others; weights off their init so nothing is symmetric."""
    tokenizer = minilm_tokenizer()
    folder = tmp_path_factory.mktemp("scan")
    tiny_torch_masked_lm(3, tokenizer, layers=3, perturb=0.05).save_pretrained(folder)
    return tokenizer, BFBertForMaskedLM.from_pretrained(folder)


def _batch(tokenizer):
    """Two sentences padded to one length (the second has padding), as Program takes them."""
    texts = ["the keys to the old cabinet [MASK] on the table .", "the dog [MASK] here ."]
    encoded = tokenizer(texts, padding="max_length", max_length=16, return_tensors="np")
    ids = encoded["input_ids"].astype(np.int32)
    positions = np.array([np.flatnonzero(row == tokenizer.mask_token_id)[0] for row in ids], np.int32)
    is_id, are_id = tokenizer.convert_tokens_to_ids(["is", "are"])
    return (ids, encoded["attention_mask"].astype(np.int32), np.zeros_like(ids), positions,
            np.array([are_id, is_id], np.int32), np.array([is_id, are_id], np.int32))


@pytest.mark.parametrize("quantity,has_contrast", [("logit", True), ("log_prob", False)])
def test_the_scanned_step_gives_the_unrolled_steps_readout(model, quantity, has_contrast):
    tokenizer, bf_model = model
    assert scannable(bf_model)
    params, batch = parameters_of(bf_model), _batch(tokenizer)
    unrolled = Program(bf_model, quantity, has_contrast, VALUES)._step(bf_model, quantity, has_contrast, VALUES)
    outputs = [jax.jit(jax.vmap(step, in_axes=(None, 0, 0, 0, 0, 0, 0)))(weights, *batch)
               for step, weights in ((scanned_step(bf_model, quantity, has_contrast, VALUES),
                                      StackedWeights(bf_model)(params)), (unrolled, params))]
    scanned, expected = (output.readout for output in outputs)
    for field in expected._fields:
        got, want = np.asarray(getattr(scanned, field)), np.asarray(getattr(expected, field))
        assert got.shape == want.shape and got.dtype == want.dtype, field
        if field == "oplus":  # branch codes: exact
            np.testing.assert_array_equal(got, want, err_msg=field)
        else:
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, equal_nan=True, err_msg=field)
    assert np.isfinite(np.asarray(scanned.entropy)).all()


def test_a_training_model_is_not_scanned(model):
    """Dropout inside a scan would draw one key for every layer: such a model runs unrolled."""
    _, bf_model = model
    bf_model.train()
    try:
        assert not scannable(bf_model)
    finally:
        bf_model.eval()
    assert scannable(bf_model)


def test_the_weights_are_stacked_once_per_set_of_weights(model):
    _, bf_model = model
    stack = StackedWeights(bf_model)
    params = parameters_of(bf_model)
    outside, stacked = stack(params)
    assert stack(parameters_of(bf_model)) is stack(params)  # the same arrays: not stacked again
    layer = list(bf_model.bert.encoder.layer[2].parameters())
    for column, value in zip(stacked, layer):
        np.testing.assert_array_equal(column[2], value.val)
    assert len(outside) + len(stacked) * 3 == len(params)
    changed = [p * 2 for p in params]
    np.testing.assert_array_equal(stack(changed)[1][0], 2 * stacked[0])  # other weights: stacked anew
