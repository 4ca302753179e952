import json
import random

import pandas as pd
import pytest

pytest.importorskip("pyarrow")

from bf_bert.analysis import store  # noqa: E402
from bf_bert.analysis.shards import select  # noqa: E402
from bf_bert.analysis.store import StoreError, TableWriter, done_ids, merge, read_table, tables  # noqa: E402

CONFIG = {"model": "bert-base-uncased", "data": {"path": "lgd.tsv", "format": "lgd"},
          "options": {"max_len": 128, "semirings": ["grad", "entropy"]}, "batch_size": 4,
          "versions": {"brunoflow": "0.1.0"}}
IDS = [f"lgd-{k:04d}" for k in range(23)]
TABLES = ("sentences", "tokens", "branches", "skipped")


def rows(ids):
    """One batch as the compute side writes it; every 5th sentence is skipped."""
    sentences, tokens, branches, skipped = [], [], [], []
    for sid in ids:
        rng = random.Random(sid)
        if int(sid[-4:]) % 5 == 3:
            skipped.append({"sentence_id": sid, "reason": "longer than max_len"})
            continue
        words = ["the", "keys", "to", "the", "[MASK]", "are"][: rng.randint(3, 6)]
        # Some batches have no attractor at all: their list column is list<null> on its own.
        attractors = [] if int(sid[-4:]) < 8 else [rng.randint(0, 5) for _ in range(rng.randint(0, 2))]
        sentences.append({"sentence_id": sid, "text": " ".join(words), "tokens": words, "q": rng.random(),
                          "correct": rng.random() > 0.3, "n_attractors": len(attractors),
                          "subject_position": 1, "attractor_positions": attractors,
                          "meta": json.dumps({"construction": "pp"})})
        for t, w in enumerate(words):
            tokens.append({"sentence_id": sid, "token_index": t, "token": w, "saliency": rng.random(),
                           "grad_x_input": rng.gauss(0, 1), "log10_abs_grad": rng.gauss(-3, 1),
                           "entropy": rng.random(), "top_path": f"L{rng.randint(0, 11)}"})
            for layer in range(2):
                for branch in ("query", "key", "value", "skip"):
                    branches.append({"sentence_id": sid, "token_index": t, "layer": layer, "branch": branch,
                                     "oplus": rng.random(), "bucket_sum": rng.random(),
                                     "abs_share": rng.random(), "entropy": rng.random()})
    # Mixed input kinds on purpose: DataFrames and lists of dicts.
    return {"sentences": pd.DataFrame(sentences), "tokens": tokens, "branches": pd.DataFrame(branches),
            "skipped": pd.DataFrame(skipped, columns=["sentence_id", "reason"])}


def run(out_dir, ids=IDS, *, shard=(0, 1), batch=4, resume=False, config=CONFIG):
    w = TableWriter(out_dir, shard=shard, config=config, resume=resume)
    todo = [i for i in select(ids, shard) if i not in w.done_ids()]
    for k in range(0, len(todo), batch):
        w.write(rows(todo[k:k + batch]))
    return w


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    run(out)
    return {t: read_table(out, t) for t in TABLES}


def assert_same(out_dir, reference):
    for t in TABLES:
        pd.testing.assert_frame_equal(read_table(out_dir, t), reference[t])


def test_one_run_round_trips(tmp_path, reference):
    run(tmp_path)
    s = reference["sentences"]
    expected = pd.DataFrame(rows(IDS)["sentences"]).sort_values("sentence_id", ignore_index=True)
    assert s["sentence_id"].tolist() == expected["sentence_id"].tolist()
    assert s["tokens"].tolist() == expected["tokens"].tolist()  # lists, not numpy arrays
    assert s["attractor_positions"].tolist() == expected["attractor_positions"].tolist()
    assert s["correct"].dtype == bool and s["n_attractors"].dtype == "int64"
    assert s["meta"].map(json.loads).tolist() == [{"construction": "pp"}] * len(s)
    assert len(reference["branches"]) == 8 * len(reference["tokens"])
    assert reference["branches"][["sentence_id", "token_index", "layer", "branch"]].equals(
        reference["branches"][["sentence_id", "token_index", "layer", "branch"]].sort_values(
            ["sentence_id", "token_index", "layer", "branch"], ignore_index=True))
    assert done_ids(tmp_path) == set(IDS)
    assert tables(tmp_path) == sorted(TABLES)
    assert json.loads((tmp_path / "run.json").read_text())["config"] == CONFIG
    assert sorted(p.name for p in (tmp_path / "parts" / "sentences").iterdir())[:2] == [
        "shard-0-of-1-part-000000.parquet", "shard-0-of-1-part-000001.parquet"]


def test_resume_after_a_kill_mid_batch(tmp_path, reference, monkeypatch):
    real = store._write_parquet
    written = []

    def dies_at_third_sentences_part(table, path):
        if path.parent.name == "sentences" and len([p for p in written if p.parent.name == "sentences"]) == 2:
            raise KeyboardInterrupt("killed")
        real(table, path)
        written.append(path)

    monkeypatch.setattr(store, "_write_parquet", dies_at_third_sentences_part)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    monkeypatch.setattr(store, "_write_parquet", real)
    orphan = tmp_path / "parts" / "tokens" / "shard-0-of-1-part-000002.parquet"
    assert orphan.exists() and not (tmp_path / "parts" / "sentences" / orphan.name).exists()
    # A SIGKILL inside pq.write_table leaves its temp file behind.
    (tmp_path / "parts" / "tokens" / ".shard-0-of-1-part-000002.parquet.tmp-999").write_bytes(b"PAR1 half")
    finished = set(IDS[:8])
    assert done_ids(tmp_path) == finished
    assert set(read_table(tmp_path, "tokens")["sentence_id"]) <= finished  # the orphan is not read

    w = run(tmp_path, resume=True)
    assert not (tmp_path / "parts" / "tokens" / ".shard-0-of-1-part-000002.parquet.tmp-999").exists()
    assert w.done_ids() == set(IDS)
    assert_same(tmp_path, reference)
    # Resuming a finished run writes nothing.
    before = sorted((tmp_path / "parts").rglob("*"))
    run(tmp_path, resume=True)
    assert sorted((tmp_path / "parts").rglob("*")) == before


def test_parts_are_written_atomically(tmp_path, monkeypatch):
    import pyarrow.parquet as pq
    real = pq.write_table

    def half_then_die(table, where, **kw):
        real(table, where, **kw)
        with open(where, "r+b") as f:
            f.truncate(10)
        raise OSError("disk full")

    w = TableWriter(tmp_path, config=CONFIG)
    monkeypatch.setattr(pq, "write_table", half_then_die)
    with pytest.raises(OSError):
        w.write(rows(IDS[:4]))
    assert list((tmp_path / "parts").rglob("*.parquet*")) == []


def test_no_resume_over_existing_parts(tmp_path):
    run(tmp_path, IDS[:4])
    with pytest.raises(StoreError, match="--resume"):
        TableWriter(tmp_path, config=CONFIG)
    # Another shard may share the folder without --resume.
    TableWriter(tmp_path, shard=(1, 2), config=CONFIG)


def test_resume_with_another_config_names_the_keys(tmp_path):
    run(tmp_path, IDS[:4])
    changed = {**CONFIG, "model": "bert-large", "options": {**CONFIG["options"], "max_len": 256}}
    with pytest.raises(StoreError, match=r"model: 'bert-base-uncased' there, 'bert-large' here.*"
                                         r"options\.max_len: 128 there, 256 here"):
        TableWriter(tmp_path, config=changed, resume=True)
    # Batch size and progress bars do not change any row.
    TableWriter(tmp_path, config={**CONFIG, "batch_size": 64, "progress": False}, resume=True)
    with pytest.raises(StoreError, match=r"versions\.torch: '<absent>' there"):
        TableWriter(tmp_path, config={**CONFIG, "versions": {"brunoflow": "0.1.0", "torch": "2.5"}}, resume=True)


def test_a_run_that_wrote_nothing_binds_no_config(tmp_path):
    TableWriter(tmp_path, config=CONFIG)
    TableWriter(tmp_path, config={**CONFIG, "model": "other"})
    assert json.loads((tmp_path / "run.json").read_text())["config"]["model"] == "other"


def test_writing_a_finished_id_again_is_refused(tmp_path):
    w = run(tmp_path, IDS[:4])
    with pytest.raises(StoreError, match="already finished"):
        w.write(rows(IDS[2:6]))


def test_merge_of_three_shard_dirs_equals_the_whole_run(tmp_path, reference):
    dirs = [tmp_path / f"s{i}" for i in range(3)]
    for i, d in enumerate(dirs):
        run(d, shard=(i, 3), config={**CONFIG, "batch_size": 2 + i})
    out = tmp_path / "merged"
    paths = merge(out, sources=dirs)
    assert sorted(paths) == sorted(TABLES) and all(p.exists() for p in paths.values())
    assert_same(out, reference)
    first = {t: p.read_bytes() for t, p in paths.items()}
    merge(out, sources=dirs)  # idempotent
    assert {t: p.read_bytes() for t, p in paths.items()} == first
    merge(out)  # a merged folder merges onto itself unchanged
    assert_same(out, reference)


def test_shards_sharing_one_folder(tmp_path, reference):
    for i in (2, 0, 1):
        run(tmp_path, shard=(i, 3))
    assert done_ids(tmp_path) == set(IDS)
    assert_same(tmp_path, reference)
    merge(tmp_path)
    assert_same(tmp_path, reference)
    with pytest.raises(StoreError, match="merged tables"):  # more parts would make them stale
        TableWriter(tmp_path, shard=(0, 3), config=CONFIG, resume=True).write(rows(["lgd-9001"]))


def test_merge_refuses_duplicates_and_other_configs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    run(a, shard=(0, 2))
    run(b, shard=(0, 3))  # overlaps a: shards of different n
    with pytest.raises(StoreError, match="finished twice"):
        merge(tmp_path / "out", sources=[a, b])
    assert not (tmp_path / "out").exists()
    run(c, shard=(1, 2), config={**CONFIG, "model": "other"})
    with pytest.raises(StoreError, match=r"different configs \(model:"):
        merge(tmp_path / "out", sources=[a, c])


def test_read_table_names_what_there_is(tmp_path):
    run(tmp_path, IDS[:4])
    with pytest.raises(StoreError, match=r"no table 'token'.*branches, sentences, skipped, tokens"):
        read_table(tmp_path, "token")
