import random

import pytest

from bf_bert.analysis.items import Item
from bf_bert.analysis.shards import (as_shard, in_shard, parse_shard, resolve_shard, select, shard_from_env,
                                     shard_label, shard_of)

IDS = [f"lgd-{k:06d}" for k in range(3000)]


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_are_disjoint_and_cover_every_id(n):
    parts = [set(select(IDS, (i, n))) for i in range(n)]
    assert sum(map(len, parts)) == len(IDS)
    assert set().union(*parts) == set(IDS)
    if n > 1:  # and the split is not lopsided
        assert min(map(len, parts)) > len(IDS) / n * 0.8


def test_assignment_ignores_row_order_and_takes_items():
    shuffled = IDS[:]
    random.Random(0).shuffle(shuffled)
    for i in range(4):
        assert set(select(shuffled, f"{i}/4")) == set(select(IDS, f"{i}/4"))
    items = [Item(id=x, text="a [MASK] .", target="is") for x in IDS[:50]]
    assert [it.id for it in select(items, "1/3")] == [x for x in IDS[:50] if in_shard(x, (1, 3))]


def test_assignment_is_pinned():
    # Fixed numbers: Python's salted hash() would change them from one process (machine) to the next.
    assert [shard_of(x, 5) for x in ("lgd-000000", "lgd-000001", "gulordava-15-3", "a", "b", "c")] == [
        3, 2, 3, 3, 3, 0]


def test_parse():
    assert parse_shard("0/1") == (0, 1)
    assert parse_shard(" 2/3 ") == (2, 3)
    assert as_shard((1, 4)) == (1, 4)
    assert shard_label("2/3") == "shard-2-of-3"


@pytest.mark.parametrize("spec", ["3/3", "-1/3", "0/0", "1", "a/b", "1/2/3", "", (1, 1), (True, 2), "1.0/2"])
def test_parse_errors_say_zero_based(spec):
    with pytest.raises(ValueError, match=r"0-based.*0/3, 1/3, 2/3"):
        as_shard(spec)


def test_one_based_slip_gets_a_hint():
    with pytest.raises(ValueError, match="did you mean 2/3"):
        parse_shard("3/3")


def test_slurm_env():
    assert shard_from_env({}) is None
    assert resolve_shard(None, {}) == (0, 1)
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}) == (2, 4)
    # --array=1-4: task ids 1..4 are shards 0..3
    env = {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}
    assert shard_from_env(env) == (3, 4)
    assert resolve_shard(None, env) == (3, 4)
    assert resolve_shard("0/2", env) == (0, 2)  # an explicit --shard wins
    # --array=10-16:3: ids 10, 13, 16
    env = {"SLURM_ARRAY_TASK_ID": "13", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "10",
           "SLURM_ARRAY_TASK_STEP": "3"}
    assert shard_from_env(env) == (1, 3)


def test_slurm_env_picked_up_from_os_environ(monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "3")
    assert resolve_shard() == (2, 3)


@pytest.mark.parametrize("env", [
    {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "3"},  # --array=0,3,7
    {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"},
    {"SLURM_ARRAY_TASK_ID": "1"},
    {"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "3"},
])
def test_slurm_env_errors_name_the_fix(env):
    with pytest.raises(ValueError, match="--shard i/n"):
        shard_from_env(env)
