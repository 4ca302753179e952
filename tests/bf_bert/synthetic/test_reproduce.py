"""`bf-bert reproduce synthetic-top-path` end to end on a tiny setting, its resume, and its CLI errors."""

import numpy as np
import pandas as pd
import pytest

from bf_bert.analysis.store import read_table
from bf_bert.cli import main
from bf_bert.explanation import ATTENTION_BRANCHES
from bf_bert.synthetic.reproduce import RunError, reproduce

TINY = dict(train_size=256, heldout_size=20, epochs=2, analysis_batch=10)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    messages = []
    return out, reproduce(out, log=messages.append, **TINY), messages


def test_tables_hold_every_example_and_the_credit_rules_hold(run):
    out, result, _ = run
    for variant in ("bf.opt", "torch"):
        branches, sentences = read_table(out / variant, "branches"), read_table(out / variant, "sentences")
        assert len(sentences) == 20 and len(branches) == 20 * 10 * 4
        per_token = branches.groupby(["example_id", "token_index"])
        # oplus and max_path credit one branch per token; max_path credits the best exact path
        assert (per_token["oplus"].apply(lambda v: (v != 0).sum()) <= 1).all()
        best = per_token["max_path_through"].max()
        np.testing.assert_allclose(per_token["max_path"].sum(), best, rtol=1e-6)
        # one layer, the pooler reads position 0: a later token's query and skip reach no logit
        later = branches[(branches["token_index"] > 0) & branches["branch"].isin(["query", "skip"])]
        assert (later[["oplus", "bucket_sum", "max_path"]] == 0).all().all()
        assert (later["max_path_through"] == -np.inf).all()
        first = branches[branches["token_type"] == "FirstToken"]
        assert (first["token_index"] == 0).all() and first["example_id"].nunique() == 20
        repeat = branches[branches["token_type"] == "RepeatToken"]
        assert set(repeat["label"]) <= {1}
    facts = result["facts"]
    assert facts["torch"]["torch_correct"] == facts["torch"]["correct"]  # trained in torch, analysed here: same predictions
    summary = pd.read_parquet(out / "summary.parquet")
    assert set(summary["variant"]) == {"bf.opt", "torch"}
    assert set(summary["token_type"]) == {"FirstToken", "RepeatToken", "OtherToken", "all"}
    assert set(summary["branch"]) == set(ATTENTION_BRANCHES)


def test_report_and_figure(run):
    out, result, _ = run
    text = (out / "report.md").read_text()
    assert "0.03010" in text and "0.01740" in text  # the paper's anchors, beside ours
    for heading in ("bf.opt: token type × branch", "torch: token type × branch", "Where ours differ"):
        assert heading in text
    assert (out / "top_path_by_token_type.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_keeps_finished_stages_and_refuses_other_settings(run):
    out, result, _ = run
    messages = []
    again = reproduce(out, log=messages.append, **TINY)
    assert any("trained model kept" in m for m in messages) and not any("analysing" in m for m in messages)
    pd.testing.assert_frame_equal(again["summary"], result["summary"])
    # a run killed mid-analysis: the batch whose commit part is missing is analysed again, the rest kept
    last = sorted((out / "bf.opt" / "parts" / "sentences").glob("*.parquet"))[-1]
    last.unlink()
    messages.clear()
    resumed = reproduce(out, log=messages.append, **TINY)
    assert "[bf.opt] analysing 10 held-out examples (10 kept)" in messages
    assert len(read_table(out / "bf.opt", "branches")) == 20 * 10 * 4
    pd.testing.assert_frame_equal(resumed["summary"], result["summary"])
    with pytest.raises(RunError, match="other settings.*epochs: 2 there, 3 here"):
        reproduce(out, log=messages.append, **{**TINY, "epochs": 3})


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["reproduce", "synthetic-top-path", "--out", str(tmp_path), "--task", "Nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bf-bert: error: --task 'Nope': unknown task; known: FirstTokenRepeatedOnce"]
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["reproduce", "synthetic-top-path", "--out", str(a_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0]
    assert main(["reproduce", "synthetic-top-path", "--out", str(tmp_path), "--epochs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "bf-bert: error: --epochs must be at least 1"
