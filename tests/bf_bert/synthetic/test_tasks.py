"""The synthetic task generators: labels and token types follow the task's definition."""

import numpy as np
import pytest

from bf_bert.synthetic.tasks import PAD_ID, TASKS, FirstTokenRepeatedOnce, get_task


def _brute_force_label(row):
    return int(row[0] in row[1:])


def test_first_token_repeated_once_labels_and_shape():
    task = FirstTokenRepeatedOnce()
    split = task.generate(500, seed=3)
    assert split.ids.shape == (500, 10) and split.ids.dtype == np.int32
    assert split.ids.min() >= 1 and split.ids.max() <= 19 and not (split.ids == PAD_ID).any()
    assert [_brute_force_label(r) for r in split.ids] == split.labels.tolist()
    np.testing.assert_array_equal(task.label(split.ids), split.labels)
    assert split.labels.sum() == 250  # balanced
    repeats = (split.ids[:, 1:] == split.ids[:, :1]).sum(1)
    assert set(repeats[split.labels == 1]) == {1}  # repeated exactly once
    # the repeat lands anywhere after the first position
    assert len({int(np.flatnonzero(r[1:] == r[0])[0]) for r in split.ids[split.labels == 1]}) == 9


def test_generation_is_seeded_and_splits_differ():
    task = get_task("FirstTokenRepeatedOnce", vocab_size=7, seq_len=5)
    a, b = task.generate(64, seed=1), task.generate(64, seed=1)
    np.testing.assert_array_equal(a.ids, b.ids)
    train, heldout = task.splits(64, 32, seed=1)
    assert len(train) == 64 and len(heldout) == 32 and not np.array_equal(train.ids[:32], heldout.ids)
    assert train.ids.max() <= 6


def test_token_types():
    task = FirstTokenRepeatedOnce(vocab_size=6, seq_len=5)
    ids = np.array([[3, 1, 3, 2, 5], [4, 1, 2, 1, 5]])
    types = task.token_type_of(ids)
    names = np.asarray(task.token_types)[types]
    assert names[0].tolist() == ["FirstToken", "OtherToken", "RepeatToken", "OtherToken", "OtherToken"]
    assert names[1].tolist() == ["FirstToken"] + ["OtherToken"] * 4


def test_unknown_task_and_bad_sizes():
    with pytest.raises(ValueError, match="unknown task 'Nope'; known: FirstTokenRepeatedOnce"):
        get_task("Nope")
    with pytest.raises(ValueError, match="vocab_size >= 3"):
        FirstTokenRepeatedOnce(vocab_size=2)
    assert "FirstTokenRepeatedOnce" in TASKS
