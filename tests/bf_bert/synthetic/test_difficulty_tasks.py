"""The §5.3 task generators: labels checked row by row against plain-Python definitions."""

import numpy as np
import pytest

from bf_bert.synthetic.tasks import difficulty_task


def _brute(name, row):
    row = [int(t) for t in row]
    if name == "Contains1":
        return int(1 in row)
    if name == "FirstTokenRepeatedImmediately":
        return int(row[1] == row[0])
    if name == "FirstTokenRepeatedLast":
        return int(row[-1] == row[0])
    if name == "AdjacentDuplicate":
        return int(any(a == b for a, b in zip(row, row[1:])))
    base, _, value = name.partition("-")
    if base == "BinCountOnes":
        ones, width = row.count(1), len(row) // int(value)
        return next(c for c in range(int(value)) if c * width < ones <= (c + 1) * width)
    if base == "ContainsTokenSet":
        return int(set(range(1, int(value) + 1)) <= set(row))
    raise AssertionError(name)


SPECS = ["Contains1", "FirstTokenRepeatedImmediately", "FirstTokenRepeatedLast", "AdjacentDuplicate",
         "BinCountOnes-2", "BinCountOnes-6", "ContainsTokenSet-1", "ContainsTokenSet-4"]


@pytest.mark.parametrize("spec", SPECS)
def test_labels_follow_the_definition_and_classes_are_balanced(spec):
    task = difficulty_task(spec)
    split = task.generate(360, seed=5)
    assert split.ids.shape == (360, 36) and split.ids.dtype == np.int32
    assert split.ids.min() >= 1 and split.ids.max() <= 59  # 0 is padding, never generated
    assert [_brute(spec, r) for r in split.ids] == split.labels.tolist()
    np.testing.assert_array_equal(task.label(split.ids), split.labels)
    counts = np.bincount(split.labels, minlength=task.num_labels)
    assert counts.max() - counts.min() <= 1 and len(counts) == task.num_labels
    again = task.generate(360, seed=5)
    np.testing.assert_array_equal(again.ids, split.ids)
    types = task.token_type_of(split.ids)
    assert types.shape == split.ids.shape and types.max() < len(task.token_types)


def test_the_label_is_the_only_difference_the_generator_makes():
    # FirstTokenRepeatedLast: the other positions may repeat the first token in either class
    split = difficulty_task("FirstTokenRepeatedLast").generate(2000, seed=0)
    middle_repeats = (split.ids[:, 1:-1] == split.ids[:, :1]).any(axis=1)
    assert 0.3 < middle_repeats[split.labels == 0].mean() < 0.6
    assert 0.3 < middle_repeats[split.labels == 1].mean() < 0.6
    # BinCountOnes: every count of ones occurs, and the ones are spread over all positions
    split = difficulty_task("BinCountOnes-4").generate(4000, seed=1)
    assert set((split.ids == 1).sum(1)) == set(range(1, 37))
    assert (split.ids == 1).any(axis=0).all()
    # ContainsTokenSet: negatives may hold any proper part of the set
    split = difficulty_task("ContainsTokenSet-3").generate(2000, seed=2)
    held = np.stack([(split.ids == t).any(1) for t in (1, 2, 3)], 1).sum(1)
    assert set(held[split.labels == 0]) == {0, 1, 2} and set(held[split.labels == 1]) == {3}


def test_task_names_and_bad_parameters():
    assert difficulty_task("BinCountOnes-9").num_labels == 9
    assert difficulty_task("ContainsTokenSet-3").name == "ContainsTokenSet-3"
    assert difficulty_task("Contains1", vocab_size=7, seq_len=5).generate(8, 0).ids.max() <= 6
    with pytest.raises(ValueError, match="unknown task 'Nope'; known: Contains1, FirstTokenRepeatedImmediately"):
        difficulty_task("Nope")
    with pytest.raises(ValueError, match="unknown task 'BinCountOnes'"):
        difficulty_task("BinCountOnes")
    with pytest.raises(ValueError, match="BinCountOnes-N needs a whole number"):
        difficulty_task("BinCountOnes-x")
    with pytest.raises(ValueError, match="must be >= 2 and divide seq_len 36, got 5"):
        difficulty_task("BinCountOnes-5")
    with pytest.raises(ValueError, match="size must be in 1 .. 36"):
        difficulty_task("ContainsTokenSet-0")
