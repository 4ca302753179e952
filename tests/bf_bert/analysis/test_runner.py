"""analyze(): batched, bucketed results equal one explain() per sentence; bad rows are reported."""


import jax
import numpy as np
import pytest

from bf_bert.analysis.items import MASK, Item
from bf_bert.analysis.runner import analyze
from bf_bert.explain import explain
from transformers import BFBertForMaskedLM

from ..tiny import minilm_tokenizer, tiny_masked_lm

ITEMS = [  # varied lengths (two buckets of 8 tokens), per-row words, one without a contrast
    Item("a", f"The keys to the cabinet {MASK} on the table.", "are", "is", {"n_attractors": 1, "subject_word": 1,
                                                                             "attractor_words": [4]}),
    Item("b", f"The dog {MASK} here.", "is", "are", {"n_attractors": 0, "subject_word": 1}),
    Item("c", f"The authors that the critic praises {MASK} famous.", "are", "is", {"n_attractors": 1}),
    Item("d", f"The box {MASK} old.", "was", "were", {}),
    Item("e", f"The man {MASK} well.", "writes", None, {}),
]
BAD = [
    Item("no-mask", "The dog is here.", "is", "are"),
    Item("two-masks", f"The {MASK} {MASK} here.", "is", "are"),
    Item("pieces", f"The dog {MASK} here.", "is", "xylophonists"),
    Item("too-long", " ".join(["word"] * 600) + f" {MASK}.", "is", "are"),
]


class Collect:
    def __init__(self):
        self.tables = []

    def write(self, tables):
        self.tables.append(tables)

    def table(self, name):
        import pandas as pd
        return pd.concat([t[name] for t in self.tables if name in t], ignore_index=True)


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    tokenizer = minilm_tokenizer()
    folder = tiny_masked_lm(tmp_path_factory.mktemp("runner"), seed=1, tokenizer=tokenizer)
    with jax.enable_x64(True):
        model = BFBertForMaskedLM.from_pretrained(folder, dtype="float64")
        model.folder = folder
        yield model, tokenizer


@pytest.fixture(scope="module")
def collected(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    out = Collect()
    with jax.enable_x64(True):
        summary = analyze(model, tokenizer, ITEMS + BAD, writer=out, batch_size=2, bucket=8, progress=False)
    return summary, out


def test_batched_rows_equal_one_explain_per_sentence(model_and_tokenizer, collected):
    model, tokenizer = model_and_tokenizer
    _, out = collected
    sentences, tokens, branches = out.table("sentences"), out.table("tokens"), out.table("branches")
    assert sorted(sentences.sentence_id) == ["a", "b", "c", "d", "e"]
    with jax.enable_x64(True):
        for item in (ITEMS[0], ITEMS[1], ITEMS[4]):  # both buckets, with and without a contrast: ~12 s each
            e = explain(model, tokenizer, item.text.replace(MASK, tokenizer.mask_token), item.target, item.contrast)
            row = sentences[sentences.sentence_id == item.id].iloc[0]
            assert row.q == pytest.approx(e.value, rel=1e-6, abs=1e-9)
            assert list(row.tokens) == e.tokens
            mine = tokens[tokens.sentence_id == item.id].sort_values("token_index")
            np.testing.assert_allclose(mine.saliency, e.tokens_attribution.grad_norm, rtol=1e-6)
            np.testing.assert_allclose(mine.log10_abs_grad, e.tokens_attribution.log10_abs_grad, rtol=1e-6)
            np.testing.assert_allclose(mine.entropy, e.tokens_attribution.entropy, rtol=1e-6)
            np.testing.assert_allclose(mine.max_grad, e.tokens_attribution.max_grad, rtol=1e-6)
            for layer in e.layers:
                mine_layer = branches[(branches.sentence_id == item.id) & (branches.layer == layer.layer)]
                credited = mine_layer[mine_layer.oplus == 1].sort_values("token_index").branch.tolist()
                assert credited == [b if b != "other" else None for b in layer.oplus][:len(credited)]
                for branch in ("query", "key", "value", "skip"):
                    rows = mine_layer[mine_layer.branch == branch].sort_values("token_index")
                    np.testing.assert_allclose(rows.bucket_sum, [b[branch] for b in layer.buckets], rtol=1e-6)


def test_token_shares_add_up_to_the_layer_shares(collected):
    # independent numbers: per-token shares weighted by each token's mass give the layer's share
    _, out = collected
    branches = out.table("branches")
    one = branches[(branches.sentence_id == "a") & (branches.layer == 1)]
    assert np.all((one.abs_share >= 0) & (one.abs_share <= 1))
    per_token = one.groupby("token_index").abs_share.sum()
    np.testing.assert_allclose(per_token[per_token > 0], 1.0, rtol=1e-9)


def test_positions_are_mapped_to_tokens(collected):
    _, out = collected
    row = out.table("sentences").set_index("sentence_id").loc["a"]
    assert row.tokens[row.subject_position] == "keys" and [row.tokens[p] for p in row.attractor_positions] == ["cabinet"]
    assert row.tokens[row.mask_position] == "[MASK]"
    assert out.table("sentences").set_index("sentence_id").loc["e"].correct is None


def test_bad_rows_are_reported_with_their_reason_and_the_rest_runs(collected):
    summary, out = collected
    reasons = dict(zip(out.table("skipped").sentence_id, out.table("skipped").reason))
    assert set(reasons) == {"no-mask", "two-masks", "pieces", "too-long"}
    assert "found 0" in reasons["no-mask"] and "found 2" in reasons["two-masks"]
    assert "xylophonists" in reasons["pieces"] and "positions" in reasons["too-long"]
    assert summary.explained == 5 and len(summary.skipped) == 4


def test_one_compile_per_bucket_and_batch_shape(collected, model_and_tokenizer):
    summary, _ = collected
    model, tokenizer = model_and_tokenizer
    # buckets of 8: lengths 8 and 16, with and without a contrast → 3 programs ran cold
    assert summary.compiles == 3
    from bf_bert.analysis.program import compiled_program
    program = compiled_program(model, "logit", True, ("grad", "abs_val_grad", "entropy", "max_grad"))
    with jax.enable_x64(True):
        again = BFBertForMaskedLM.from_pretrained(model.folder, dtype="float64")  # weights are arguments:
        assert compiled_program(again, "logit", True, ("grad", "abs_val_grad", "entropy", "max_grad")) is program
        before = program.compiled_shapes()
        analyze(again, tokenizer, ITEMS[:3], batch_size=2, bucket=8, progress=False)
        assert program.compiled_shapes() == before  # the same compiled programs, nothing new
