"""Online codelength arithmetic (no training): block boundaries, codes, and known totals."""

import math

import numpy as np
import pytest

from bf_bert.synthetic import mdl


def test_block_ends_follow_voita_titov_boundaries():
    assert mdl.block_ends(3600) == [4, 8, 15, 29, 58, 116, 225, 450, 900, 1800, 3600]
    assert mdl.block_ends(10) == [1, 2, 3, 5, 10]  # tiny sets: duplicates merge, every block non-empty
    with pytest.raises(ValueError, match="at least 2"):
        mdl.block_ends(1)


def test_codelength_of_known_distributions():
    labels = np.array([0, 1, 2, 1])
    # equal logits over the task's 3 classes: log2(3) bits each, whatever the extra outputs say
    logits = np.concatenate([np.zeros((4, 3)), np.full((4, 33), 50.0)], axis=1)
    np.testing.assert_allclose(mdl.codelength_bits(logits, labels, 3), np.full(4, math.log2(3)))
    # p(true) = 1/2 exactly: one bit
    two = np.log(np.array([[1.0, 1.0], [1.0, 1.0]]))
    np.testing.assert_allclose(mdl.codelength_bits(two, np.array([0, 1]), 2), [1.0, 1.0])
    # p(true) = 0.8, 0.2 → -log2 of each
    probs = np.log(np.array([[0.8, 0.2], [0.8, 0.2]]))
    np.testing.assert_allclose(mdl.codelength_bits(probs, np.array([0, 1]), 2), -np.log2([0.8, 0.2]))


@pytest.mark.parametrize("classes", [2, 3, 6])
def test_a_model_that_learns_nothing_costs_the_uniform_code(classes):
    labels = np.arange(3600) % classes

    def uniform(start, stop):  # a model that predicts equal logits for every class
        return mdl.codelength_bits(np.zeros((stop - start, 36)), labels[start:stop], classes).sum()

    rows = mdl.online_codelength(3600, classes, uniform)
    summary = mdl.summary(rows, classes)
    assert summary["mdl_bits"] == pytest.approx(3600 * math.log2(classes))
    assert summary["compression"] == pytest.approx(1.0)
    assert [r["stop"] for r in rows] == mdl.block_ends(3600) and rows[0]["train_size"] == 0


def test_a_perfect_model_pays_only_the_first_block():
    calls = []

    def perfect(start, stop):
        calls.append((start, stop))
        return 0.0

    rows = mdl.online_codelength(3600, 4, perfect)
    assert mdl.summary(rows, 4)["mdl_bits"] == pytest.approx(4 * 2.0)  # 4 labels at log2(4) bits
    assert calls[0] == (4, 8) and calls[-1] == (1800, 3600) and len(calls) == 10
    assert all(r["train_size"] == r["start"] for r in rows[1:])


def test_short_prefixes_fill_whole_batches():
    rng = np.random.default_rng(0)
    (batch,) = mdl.epoch_batches(5, 32, rng)
    assert batch.shape == (32,) and set(batch) == set(range(5))
    assert np.bincount(batch).min() >= 6  # cycled permutations: each example about equally often
    full = mdl.epoch_batches(100, 32, rng)
    assert [len(b) for b in full] == [32, 32, 32]
