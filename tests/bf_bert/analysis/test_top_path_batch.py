"""The top-path stage sweeps a batch at once: each sentence's path is the one it has alone."""

import jax
import numpy as np
import pytest
from transformers import BFBertForMaskedLM

from bf_bert.analysis import top_path_stage
from bf_bert.analysis.program import compiled_program, parameters_of
from bf_bert.explain import VALUES, encode, pad_to_bucket, word_id

from ..tiny import minilm_tokenizer, tiny_masked_lm

TEXTS = ["The keys to the cabinet [MASK] on the table.", "The dog [MASK] here.", "The authors [MASK] famous."]
WORDS = [("are", "is"), ("is", "are"), ("were", "was")]


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    tokenizer = minilm_tokenizer()
    folder = tiny_masked_lm(tmp_path_factory.mktemp("batch"), seed=4, tokenizer=tokenizer)
    with jax.enable_x64(True):
        yield BFBertForMaskedLM.from_pretrained(folder, dtype="float64"), tokenizer


def arrays(tokenizer, rows):
    """Program arguments for (text, target, contrast) rows, padded to one 16-token bucket."""
    encoded = [encode(tokenizer, text) for text, _, _ in rows]
    padded = [pad_to_bucket(ids, 16, 512, tokenizer.pad_token_id) for ids in encoded]
    positions = [int(np.flatnonzero(ids == tokenizer.mask_token_id)[0]) for ids in encoded]
    return (np.stack([p for p, _ in padded]), np.stack([m for _, m in padded]),
            np.zeros((len(rows), 16), np.int32), np.asarray(positions, np.int32),
            np.asarray([word_id(tokenizer, t) for _, t, _ in rows], np.int32),
            np.asarray([word_id(tokenizer, c) for _, _, c in rows], np.int32))


@pytest.mark.parametrize("quantity, stage_tokens", [("logit", 256), ("log_prob", 32)])
def test_a_batch_gives_every_sentence_the_path_it_has_alone(model_and_tokenizer, quantity, stage_tokens, monkeypatch):
    """Also in chunks: with 32 tokens a sweep, the three 16-token rows go as two and one."""
    model, tokenizer = model_and_tokenizer
    monkeypatch.setattr(top_path_stage, "STAGE_TOKENS", stage_tokens)
    rows = [(text, *words) for text, words in zip(TEXTS, WORDS)]
    with jax.enable_x64(True):
        program = compiled_program(model, quantity, True, VALUES)
        params = parameters_of(model)
        together = program(params, *arrays(tokenizer, rows))
        for b, row in enumerate(rows):
            alone = program(params, *arrays(tokenizer, [row]))
            np.testing.assert_array_equal(np.asarray(together.path_positions)[b], np.asarray(alone.path_positions)[0])
            np.testing.assert_allclose(np.asarray(together.path_values)[b], np.asarray(alone.path_values)[0],
                                       rtol=1e-9)
            np.testing.assert_allclose(np.asarray(together.readout.top_path)[b],
                                       np.asarray(alone.readout.top_path)[0], rtol=1e-9)
    crossed = (np.asarray(together.path_positions) >= 0).sum(1)
    assert (crossed > 20).all()  # a real path through every layer, for every sentence
    layout = program.layouts[16]
    assert len(layout.nodes) == np.asarray(together.path_positions).shape[1] and len(layout.layer_inputs) == 2
