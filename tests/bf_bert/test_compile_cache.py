"""The explanation program kept on disk: a later process loads it instead of tracing the model again."""

import os

import jax
import numpy as np
import pytest
from transformers import BFBertForMaskedLM

import bf_bert.explain
from bf_bert.analysis import program
from bf_bert.explain import explain

from .tiny import minilm_tokenizer, tiny_masked_lm

TEXT = "The keys to the cabinet [MASK] on the table."
FOUR = ("grad", "abs_val_grad", "entropy", "max_grad")


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    tokenizer = minilm_tokenizer()
    folder = tiny_masked_lm(tmp_path_factory.mktemp("cache"), seed=3, tokenizer=tokenizer)
    return BFBertForMaskedLM.from_pretrained(folder), tokenizer


@pytest.fixture
def disk_cache(tmp_path, monkeypatch):
    """The persistent cache on, in an empty folder; the in-memory programs forgotten before and
    after (as in a new process), and model traces counted."""
    monkeypatch.setattr(program, "_PROGRAMS", {})
    before = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    jax.config.update("jax_enable_compilation_cache", True)
    traces = []
    real_head = bf_bert.explain.quantity_at_mask  # every step, scanned or not, traces the head once
    monkeypatch.setattr(bf_bert.explain, "quantity_at_mask", lambda *a, **k: traces.append(1) or real_head(*a, **k))
    yield tmp_path / "bf_programs", traces
    jax.config.update("jax_compilation_cache_dir", before[0])
    jax.config.update("jax_enable_compilation_cache", before[1])


def explain_without_top_path(model, tokenizer):
    """explain's read-out from the 4-semiring program alone (no op-by-op top-path stage)."""
    ids = bf_bert.explain.encode(tokenizer, TEXT)
    compiled = program.compiled_program(model, "logit", True, FOUR)
    position = int(np.flatnonzero(ids == tokenizer.mask_token_id)[0])
    rows = [np.asarray([v], np.int32) for v in (position, bf_bert.explain.word_id(tokenizer, "are"),
                                                bf_bert.explain.word_id(tokenizer, "is"))]
    return compiled(program.parameters_of(model), ids[None].astype(np.int32), np.ones((1, len(ids)), np.int32),
                    np.zeros((1, len(ids)), np.int32), *rows)


def test_a_new_process_loads_the_program_instead_of_tracing_the_model(model_and_tokenizer, disk_cache, monkeypatch):
    model, tokenizer = model_and_tokenizer
    folder, traces = disk_cache
    first = explain_without_top_path(model, tokenizer)
    assert len(traces) == 1 and len(os.listdir(folder)) == 1
    monkeypatch.setattr(program, "_PROGRAMS", {})  # "a new process": nothing in memory
    again = explain_without_top_path(model, tokenizer)
    assert len(traces) == 1  # loaded from disk: the model's graph was not built again
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_corrupt_cached_program_is_traced_again_and_replaced(model_and_tokenizer, disk_cache, monkeypatch):
    model, tokenizer = model_and_tokenizer
    folder, traces = disk_cache
    first = explain_without_top_path(model, tokenizer)
    (path,) = folder.iterdir()
    path.write_bytes(b"not a program")
    monkeypatch.setattr(program, "_PROGRAMS", {})
    with pytest.warns(UserWarning, match="unreadable cached program"):
        again = explain_without_top_path(model, tokenizer)
    assert len(traces) == 2 and path.read_bytes() != b"not a program"
    np.testing.assert_array_equal(np.asarray(first.readout.value), np.asarray(again.readout.value))


def test_explain_with_the_top_path_is_the_same_from_a_loaded_program(model_and_tokenizer, disk_cache, monkeypatch):
    model, tokenizer = model_and_tokenizer
    first = explain(model, tokenizer, TEXT, target="are", contrast="is")
    monkeypatch.setattr(program, "_PROGRAMS", {})
    again = explain(model, tokenizer, TEXT, target="are", contrast="is")
    assert again.to_dict() == first.to_dict() and len(again.top_path) > 0


def test_nothing_is_written_with_the_persistent_cache_off(model_and_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(program, "_PROGRAMS", {})
    before = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        explain_without_top_path(*model_and_tokenizer)
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_enable_compilation_cache", before[1])
    assert not (tmp_path / "bf_programs").exists()
