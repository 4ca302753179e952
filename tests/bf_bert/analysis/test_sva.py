"""analyze_sva end to end on a tiny checkpoint: a resumed run, merged shards and a plain run agree.

One module-scoped checkpoint folder and one LGD file of short rows (one padded length, every
row with a contrast), so the whole module compiles one float64 program (and one float32 one).
"""


import jax
import numpy as np
import pandas as pd
import pytest

from bf_bert.analysis import program, store
from bf_bert.analysis.shards import shard_of
from bf_bert.analysis.store import StoreError, TableWriter, merge, read_table
from bf_bert.analysis.sva import analyze_sva

from ..tiny import LGD_GOOD, tiny_masked_lm, write_lgd

GOOD = LGD_GOOD
BAD = {  # id → (row, what its skipped reason says)
    "lgd-000002": ((0, "the dog is here .", "is", "are"), "no mask"),
    "lgd-000005": ((0, "the ***mask*** ***mask*** here .", "is", "are"), "2 masks"),
    "lgd-000008": ((0, "the dog ***mask*** here .", "is", "xylophonists"), "not one token"),
    "lgd-000011": ((0, " ".join(["word"] * 600) + " ***mask*** .", "is", "are"), "positions"),
}
TABLES = ("sentences", "tokens", "branches", "skipped")


def lgd_rows():
    """GOOD and BAD interleaved so that each BAD row sits at the row number its id names."""
    good, rows = iter(GOOD), []
    for n in range(len(GOOD) + len(BAD)):
        bad = BAD.get(f"lgd-{n:06d}")
        rows.append(bad[0] if bad else next(good))
    return rows


GOOD_IDS = sorted(f"lgd-{n:06d}" for n in range(len(GOOD) + len(BAD)) if f"lgd-{n:06d}" not in BAD)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_masked_lm(tmp_path_factory.mktemp("sva-checkpoint"), seed=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_lgd(tmp_path_factory.mktemp("sva-data") / "lgd.tsv", lgd_rows())


def run(data, out, checkpoint, **options):
    return analyze_sva(data, out, model=checkpoint, batch_size=4, progress=False, **options)


@pytest.fixture(scope="module")
def run_a(data, checkpoint, tmp_path_factory):
    """The reference: every row, one uninterrupted run."""
    out = tmp_path_factory.mktemp("run-a")
    return run(data, out, checkpoint), out


def compiled_shapes():
    return {key: jitted.compiled_shapes() for key, jitted in program._PROGRAMS.items()}


def read_all(out):
    return {name: read_table(out, name) for name in TABLES}


def assert_same_tables(got, want):
    for name in TABLES:
        pd.testing.assert_frame_equal(got[name].reset_index(drop=True), want[name].reset_index(drop=True),
                                      check_exact=False, rtol=1e-12, atol=1e-12, obj=name)
    for name in ("sentences", "skipped"):
        assert not got[name].sentence_id.duplicated().any(), name


def test_run_explains_every_good_row_and_reports_the_bad_ones(run_a):
    summary, out = run_a
    assert summary.explained == len(GOOD) and summary.compiles == 1  # one padded length, every row a contrast
    tables = read_all(out)
    assert sorted(tables["sentences"].sentence_id) == GOOD_IDS
    assert set(tables["tokens"].sentence_id) == set(GOOD_IDS) == set(tables["branches"].sentence_id)
    assert tables["sentences"].n_tokens.max() <= 16
    reasons = dict(zip(tables["skipped"].sentence_id, tables["skipped"].reason))
    assert set(reasons) == set(BAD) == {s.id for s in summary.skipped}
    for id_, (_, says) in BAD.items():
        assert says in reasons[id_], (id_, reasons[id_])
    sentences = tables["sentences"].set_index("sentence_id")
    assert sentences.loc["lgd-000000", "target"] == "are" and sentences.loc["lgd-000000", "n_attractors"] == 1
    assert np.isfinite(tables["tokens"].saliency).all() and np.isfinite(tables["tokens"].entropy).all()


def test_a_run_killed_mid_write_then_resumed_equals_the_uninterrupted_run(run_a, data, checkpoint, tmp_path,
                                                                          monkeypatch):
    out = tmp_path / "b"
    real = store._write_parquet
    sentence_parts = []

    def dies_in_the_second_batch(table, path):
        if path.parent.name == "sentences" and table.num_rows:
            sentence_parts.append(path)
            if len(sentence_parts) == 2:  # the batch's tokens and branches parts are on disk already
                raise KeyboardInterrupt("killed")
        real(table, path)

    monkeypatch.setattr(store, "_write_parquet", dies_in_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run(data, out, checkpoint)
    monkeypatch.undo()
    assert len(read_table(out, "sentences")) == 4  # the first batch of 4 is finished, the second is not
    names = lambda table: {p.name for p in (out / "parts" / table).iterdir()}  # noqa: E731
    assert names("tokens") - names("sentences")  # the second batch's parts are on disk, orphaned
    assert set(read_table(out, "tokens").sentence_id) == set(read_table(out, "sentences").sentence_id)

    summary = run(data, out, checkpoint, resume=True)
    assert summary.explained == len(GOOD) - 4 and summary.skipped == []
    assert_same_tables(read_all(out), read_all(run_a[1]))


def test_a_run_that_raised_after_its_first_batch_resumes_to_the_same_tables(run_a, data, checkpoint, tmp_path,
                                                                            monkeypatch):
    out = tmp_path / "b"
    real, calls = TableWriter.write, []

    def write(self, tables):
        calls.append(sorted(tables))
        if "sentences" in tables and sum("sentences" in c for c in calls) == 2:
            raise RuntimeError("killed")
        real(self, tables)

    monkeypatch.setattr(TableWriter, "write", write)
    with pytest.raises(RuntimeError, match="killed"):
        run(data, out, checkpoint)
    monkeypatch.undo()
    assert len(read_table(out, "sentences")) == 4
    run(data, out, checkpoint, resume=True)
    run(data, out, checkpoint, resume=True)  # a finished run resumed again changes nothing
    assert_same_tables(read_all(out), read_all(run_a[1]))


def test_shards_merge_to_the_unsharded_result(run_a, data, checkpoint, tmp_path):
    ids = GOOD_IDS + sorted(BAD)
    assert len({shard_of(i, 3) for i in ids}) == 3  # every shard has rows: the split is really tested
    dirs = [tmp_path / f"shard-{i}" for i in range(3)]
    explained, compiled = 0, compiled_shapes()
    for i, out in enumerate(dirs):
        summary = run(data, out, checkpoint, shard=f"{i}/3")
        explained += summary.explained
        mine = set(read_table(out, "sentences").sentence_id) | set(read_table(out, "skipped").sentence_id)
        assert mine == {x for x in ids if shard_of(x, 3) == i}
    assert explained == len(GOOD)
    assert compiled_shapes() == compiled  # later runs reuse run A's compiled program: no new compile
    merged = tmp_path / "merged"
    assert set(merge(merged, sources=dirs)) == set(TABLES)
    assert_same_tables(read_all(merged), read_all(run_a[1]))


def test_shards_sharing_one_folder_read_and_merge_as_one_run(run_a, data, checkpoint, tmp_path):
    out = tmp_path / "shared"
    for i in range(3):
        run(data, out, checkpoint, shard=f"{i}/3")
    assert_same_tables(read_all(out), read_all(run_a[1]))
    merge(out)
    assert all((out / f"{name}.parquet").is_file() for name in TABLES)
    assert_same_tables(read_all(out), read_all(run_a[1]))


def test_existing_results_need_resume_and_the_same_config(run_a, data, checkpoint):
    _, out = run_a
    before = sorted(p.name for p in (out / "parts" / "sentences").iterdir())
    with pytest.raises(StoreError, match="resume"):
        run(data, out, checkpoint)
    with pytest.raises(StoreError, match="top_path") as err:
        run(data, out, checkpoint, resume=True, top_path=True)
    assert "False there, True here" in str(err.value)
    with pytest.raises(StoreError, match="dtype"):
        run(data, out, checkpoint, resume=True, dtype="float64")
    assert sorted(p.name for p in (out / "parts" / "sentences").iterdir()) == before  # nothing written


def test_float64_is_an_option_and_agrees_with_the_float32_default(run_a, data, checkpoint, tmp_path):
    x64 = jax.config.jax_enable_x64
    summary = run(data, tmp_path / "f64", checkpoint, dtype="float64")
    assert summary.explained == len(GOOD) and len(summary.skipped) == len(BAD)
    got = read_table(tmp_path / "f64", "sentences").set_index("sentence_id")
    want = read_table(run_a[1], "sentences").set_index("sentence_id")
    np.testing.assert_allclose(got.q, want.q, rtol=1e-4, atol=1e-5)
    assert jax.config.jax_enable_x64 == x64  # the caller's setting is back
