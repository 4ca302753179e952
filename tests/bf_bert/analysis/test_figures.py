"""Aggregates, figures and the report of the SVA analysis, on tiny hand-made tables (no model).

THREE sentences × 2 layers; every token's top path takes skip unless CREDIT says otherwise:

    s1  5 tokens, [MASK] at 3, subject 1, attractors at 2 and 4 (4 follows the verb: not counted)
    s2  4 tokens, [MASK] at 2, subject unknown, 1 attractor but no positions (unknown)
    s3  4 tokens, [MASK] at 3, subject 1, no attractors (known: none)
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from bf_bert.analysis import aggregates as A
from bf_bert.analysis import figures as F
from bf_bert.analysis.report import markdown_table, paper_comparison, write_report

BRANCHES = ("query", "key", "value", "skip")
LABEL = "tiny synthetic tables (no model), not BERT-base"
SENTENCES = [  # sentence_id, n_tokens, mask, subject, attractor positions, n_attractors, correct
    ("s1", 5, 3, 1, [2, 4], 2, True),
    ("s2", 4, 2, -1, [], 1, False),
    ("s3", 4, 3, 1, [], 0, None),
]
# (sentence, token, layer) -> the branch the ⊕ rule credits ("other": no branch)
CREDIT = {("s1", 1, 1): "key", ("s3", 1, 1): "value", ("s1", 2, 1): "key", ("s2", 0, 1): "other",
          ("s3", 1, 0): "key", ("s1", 3, 1): "query"}
# (sentence, token, layer) -> buckets where they are not 1 for the ⊕ winner and 0 elsewhere
BUCKETS = {("s1", 1, 1): {"query": 0.0, "key": 0.3, "value": 0.5, "skip": 0.1},   # ⊕ key, buckets value
           ("s3", 0, 0): {"query": 0.0, "key": 0.4, "value": 0.4, "skip": 0.2}}   # a tie: key comes first
ENTROPY = {"s1": [1, 2, 3, 4, 5], "s2": [1, 1, 1, 1], "s3": [2, 2, 2, 2]}


def tables(sentences=SENTENCES, credit=CREDIT, buckets=BUCKETS, layers=2):
    s, t, b = [], [], []
    for sid, n, mask, subject, attractors, n_att, correct in sentences:
        s.append({"sentence_id": sid, "text": " ".join(["w"] * n), "tokens": ["w"] * n, "n_tokens": n,
                  "mask_position": mask, "target": "are", "contrast": None if correct is None else "is",
                  "q": 0.0 if correct is None else (1.0 if correct else -1.0), "correct": correct,
                  "n_attractors": n_att, "subject_position": subject, "attractor_positions": attractors,
                  "meta": json.dumps({})})
        for k in range(n):
            t.append({"sentence_id": sid, "token_index": k, "token": "w", "saliency": 1.0, "grad_x_input": 0.0,
                      "log10_abs_grad": 0.0, "entropy": float(ENTROPY.get(sid, [1.0] * n)[k]), "max_grad": 1.0,
                      "top_path": math.nan})
            for layer in range(layers):
                winner = credit.get((sid, k, layer), "skip")
                bucket = buckets.get((sid, k, layer), {br: float(br == winner) for br in BRANCHES})
                for br in BRANCHES:
                    b.append({"sentence_id": sid, "token_index": k, "layer": layer, "branch": br,
                              "oplus": int(br == winner), "bucket_sum": bucket[br], "abs_share": 0.25,
                              "entropy": 1.0})
    return pd.DataFrame(s), pd.DataFrame(t), pd.DataFrame(b)


def cell(top, group, layer, branch, column="share"):
    row = top[(top["group"] == group) & (top["layer"] == layer) & (top["branch"] == branch)]
    assert len(row) == 1, (group, layer, branch)
    return row[column].iloc[0]


def test_oplus_shares_by_group_match_hand_counts():
    sentences, _, branches = tables()
    top = A.top_path_by_layer(branches, sentences)
    assert set(top["group"]) == set(A.GROUPS) and set(top["branch"]) == set(A.CREDITS)
    assert len(top) == len(A.GROUPS) * 2 * len(A.CREDITS)
    # all: 13 tokens per layer
    assert (top.loc[top["group"] == "all", "n"] == 13).all()
    assert cell(top, "all", 0, "key", "count") == 1 and cell(top, "all", 0, "skip", "count") == 12
    expected = {"query": 1, "key": 2, "value": 1, "skip": 8, "other": 1}
    assert {br: cell(top, "all", 1, br, "count") for br in A.CREDITS} == expected
    assert cell(top, "all", 1, "skip") == pytest.approx(8 / 13)
    # subject: s1 and s3 (s2 unknown)
    assert cell(top, "subject", 0, "skip") == 0.5 and cell(top, "subject", 0, "key") == 0.5
    assert cell(top, "subject", 1, "key") == 0.5 and cell(top, "subject", 1, "value") == 0.5
    assert cell(top, "subject", 1, "skip") == 0
    # mask: three sentences, one [MASK] takes query at layer 1
    assert cell(top, "mask", 0, "skip") == 1.0 and cell(top, "mask", 0, "skip", "n") == 3
    assert cell(top, "mask", 1, "query") == pytest.approx(1 / 3)
    assert cell(top, "mask", 1, "skip") == pytest.approx(2 / 3)
    # shares over the five credits sum to 1 wherever there are tokens
    sums = top.groupby(["group", "layer"])["share"].sum()
    assert np.allclose(sums, 1.0)


def test_unknown_positions_are_left_out_and_counted():
    sentences, _, branches = tables()
    top = A.top_path_by_layer(branches, sentences)
    subject = top[top["group"] == "subject"]
    assert (subject["n"] == 2).all() and (subject["n_sentences"] == 2).all() and (subject["n_unknown"] == 1).all()
    attractors = top[top["group"] == "attractors"]
    # s1's attractor at 2 only (4 follows the verb); s2 left out; s3 known with none
    assert (attractors["n"] == 1).all() and (attractors["n_sentences"] == 1).all()
    assert (attractors["n_unknown"] == 1).all()
    assert cell(top, "attractors", 1, "key") == 1.0 and cell(top, "attractors", 0, "skip") == 1.0
    assert (top.loc[top["group"].isin(["all", "mask"]), "n_unknown"] == 0).all()


def test_partly_unknown_attractor_positions_leave_the_sentence_out():
    rows = [("a", 6, 5, 1, [2, -1], 2, True),   # an attractor word that no token starts: unknown
            ("b", 6, 5, 1, [2, 3], 3, True),    # fewer positions than attractors: unknown
            ("c", 6, 5, 1, [2, 3], -1, True),   # count unknown, positions given: known
            ("d", 6, 5, -1, [], -1, True)]      # nothing known
    sentences, _, branches = tables(rows, credit={}, buckets={})
    chosen, unknown = A.group_tokens(sentences)["attractors"]
    assert unknown == 3
    assert sorted(map(tuple, chosen.to_numpy().tolist())) == [("c", 2), ("c", 3)]
    top = A.top_path_by_layer(branches, sentences)
    assert cell(top, "attractors", 0, "skip", "n") == 2 and cell(top, "attractors", 0, "skip", "n_unknown") == 3
    assert cell(top, "subject", 0, "skip", "n") == 3 and cell(top, "subject", 0, "skip", "n_unknown") == 1


def test_no_known_subject_gives_rows_with_n_zero():
    rows = [("a", 5, 3, -1, [], 1, True), ("b", 5, 3, -1, [], 2, False)]
    sentences, _, branches = tables(rows, credit={}, buckets={})
    top = A.top_path_by_layer(branches, sentences)
    subject = top[top["group"] == "subject"]
    assert len(subject) == 2 * len(A.CREDITS)
    assert (subject["n"] == 0).all() and subject["share"].isna().all() and (subject["n_unknown"] == 2).all()


def test_bucket_sum_credits_the_argmax_bucket():
    sentences, _, branches = tables()
    credit = A.credited_branches(branches, "bucket_sum").set_index(["sentence_id", "token_index", "layer"])
    assert credit.loc[("s1", 1, 1), "credited"] == "value"     # ⊕ says key; the value bucket is largest
    assert credit.loc[("s3", 0, 0), "credited"] == "key"       # key and value tie at 0.4: key comes first
    assert credit.loc[("s2", 0, 1), "credited"] == "other"     # every bucket 0: nothing flowed
    assert credit.loc[("s1", 0, 0), "credited"] == "skip"
    oplus = A.credited_branches(branches, "oplus").set_index(["sentence_id", "token_index", "layer"])
    assert oplus.loc[("s1", 1, 1), "credited"] == "key" and oplus.loc[("s2", 0, 1), "credited"] == "other"
    top = A.top_path_by_layer(branches, sentences, rule="bucket_sum")
    assert (top["rule"] == "bucket_sum").all()
    assert cell(top, "subject", 1, "value") == 1.0 and cell(top, "subject", 1, "key") == 0
    # mean bucket over the two subjects at layer 1: value (0.5 + 1) / 2, key (0.3 + 0) / 2
    assert cell(top, "subject", 1, "value", "mean_bucket") == pytest.approx(0.75)
    assert cell(top, "subject", 1, "key", "mean_bucket") == pytest.approx(0.15)
    assert math.isnan(cell(top, "subject", 1, "other", "mean_bucket"))
    with pytest.raises(ValueError, match="rule"):
        A.credited_branches(branches, "sum")


def test_wilson_interval_known_cases():
    low, high = A.wilson_interval(8, 10)   # Newcombe (1998): 0.4902–0.9433
    assert (float(low), float(high)) == pytest.approx((0.4902, 0.9433), abs=5e-5)
    low, high = A.wilson_interval(0, 10)   # 0–0.2775
    assert (float(low), float(high)) == pytest.approx((0.0, 0.2775), abs=5e-5)
    low, high = A.wilson_interval(np.array([5, 0]), np.array([10, 0]))
    assert low[0] == pytest.approx(1 - high[0]) and np.isnan(low[1]) and np.isnan(high[1])
    mean, lo, hi = A.mean_interval([1.0, 2.0, 3.0, math.nan])   # t(0.975, 2) = 4.3027
    assert (mean, lo, hi) == pytest.approx((2.0, 2 - 4.302653 / math.sqrt(3), 2 + 4.302653 / math.sqrt(3)))


def test_accuracy_and_entropy_by_attractors():
    sentences, tokens, _ = tables()
    table = A.accuracy_and_entropy_by_attractors(sentences, tokens).set_index("n_attractors")
    assert list(table.index) == [0, 1, 2]
    assert table.loc[2, "accuracy"] == 1.0 and table.loc[1, "accuracy"] == 0.0
    assert table.loc[0, "n_scored"] == 0 and math.isnan(table.loc[0, "accuracy"])   # s3 has no contrast
    assert table.loc[2, "entropy_sum"] == 15 and table.loc[2, "entropy_per_token"] == 3
    assert table.loc[1, "entropy_sum"] == 4 and table.loc[0, "entropy_sum"] == 8
    assert table.loc[2, "mean_n_tokens"] == 5

    rows = [(f"x{k}", 4, 2, 1, [], 1, k < 8) for k in range(10)] + [("u", 4, 2, 1, [], -1, True)]
    sentences, tokens, _ = tables(rows, credit={}, buckets={})
    table = A.accuracy_and_entropy_by_attractors(sentences, tokens)
    assert table.attrs["n_unknown"] == 1 and list(table["n_attractors"]) == [1]
    row = table.iloc[0]
    assert (row["n"], row["n_scored"], row["n_correct"], row["accuracy"]) == (10, 10, 8, 0.8)
    assert (row["accuracy_low"], row["accuracy_high"]) == pytest.approx((0.4902, 0.9433), abs=5e-5)
    assert row["entropy_sum"] == 4 and row["entropy_sum_low"] == row["entropy_sum_high"] == 4   # no spread


def test_paper_comparison_puts_the_papers_numbers_beside_ours():
    sentences, _, branches = tables()
    comparison = paper_comparison(branches, sentences)
    subject = comparison[comparison["what"].str.startswith("subject")].set_index("branch")
    assert subject.loc["key", "paper_pct"] == 76.1 and subject.loc["value", "paper_pct"] == 23.9
    assert subject.loc["query", "paper_pct"] == 0 and subject.loc["skip", "paper_pct"] == 0
    assert (subject["layer"] == 1).all()     # the last layer of this 2-layer table
    assert subject.loc["key", "ours_pct"] == 50 and subject.loc["key", "difference_pp"] == pytest.approx(50 - 76.1)
    assert subject.loc["value", "ours_pct"] == 50 and subject.loc["key", "n"] == 2
    # value-weighted: mean buckets at layer 1 are key 0.15, value 0.75, skip 0.05 (s1's 0.1 / 2)
    assert subject.loc["value", "ours_bucket_value_pct"] == pytest.approx(100 * 0.75 / 0.95)
    mask = comparison[comparison["what"].str.startswith("[MASK]")].set_index("layer")
    assert list(mask.index) == [0, 1]         # layers 0–4 that a 2-layer model has
    assert (mask["paper_count"] == 1000).all() and (mask["paper_pct"] == 100).all()
    assert mask.loc[0, "ours_count"] == 3 and mask.loc[0, "ours_pct"] == 100
    assert mask.loc[1, "ours_count"] == 2 and mask.loc[1, "difference_pp"] == pytest.approx(200 / 3 - 100)


def test_figures_and_report_are_written(tmp_path):
    sentences, tokens, branches = tables()
    top = A.top_path_by_layer(branches, sentences)
    written = [F.figure_top_path_by_layer(top, tmp_path / "top.png", LABEL),
               F.figure_top_path_by_layer((branches, sentences), tmp_path / "top_bucket.png", LABEL,
                                          rule="bucket_sum", statistic="mean_bucket", mask_panel=False),
               F.figure_accuracy_entropy_by_attractors((sentences, tokens), tmp_path / "acc.png", LABEL,
                                                       entropy="sum")]
    for path in written:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

    report = write_report(tmp_path / "run", LABEL, tables={"sentences": sentences, "tokens": tokens,
                                                           "branches": branches},
                          timings={"explained": 3, "seconds": 1.5})
    text = report.read_text(encoding="utf-8")
    assert report == tmp_path / "run" / "report.md"
    for figure in ("figures/top_path_by_layer_oplus.png", "figures/accuracy_entropy_by_attractors.png"):
        assert f"]({figure})" in text and (tmp_path / "run" / figure).stat().st_size > 10_000
    assert text.count(LABEL) >= 5                         # title, run table and every section
    assert "76.1%" in text and "23.9%" in text and "100.0% (1,000/1,000)" in text   # the paper's
    assert "50.0% (1/2 top)" in text and "100.0% (3/3 skip)" in text and "66.7% (2/3 skip)" in text   # ours
    assert "-26.1" in text                                # key: 50.0 − 76.1
    assert "## Why these numbers may differ" in text and "float" in text and "neuron-granular" in text
    assert "| seconds | 1.500 |" in text


def test_figures_and_report_from_an_out_dir(tmp_path):
    from bf_bert.analysis.store import TableWriter
    sentences, tokens, branches = tables()
    writer = TableWriter(tmp_path, config={"model": "label from run.json", "dtype": "float64", "data": "tiny"})
    writer.write({"sentences": sentences, "tokens": tokens, "branches": branches})
    path = F.figure_top_path_by_layer(str(tmp_path), tmp_path / "top.png", LABEL)
    assert path.stat().st_size > 10_000
    report = write_report(tmp_path, figures=[path])
    text = report.read_text(encoding="utf-8")
    assert "label from run.json" in text and "float64" in text and "](top.png)" in text
    assert not (tmp_path / "figures").exists()            # figures given: none drawn


def test_markdown_table_without_tabulate():
    frame = pd.DataFrame({"name": ["a|b", None], "x": [1.23456, math.nan]})
    text = markdown_table(frame, {"x": ".2f"})
    assert text.splitlines() == ["| name | x |", "|:---|---:|", "| a\\|b | 1.23 |", "| – | – |"]


def test_the_subject_comparison_is_the_papers_value_ratio_when_values_are_there():
    # two subjects at the last layer: key credited with value 3, then value credited with value 1:
    # the paper's statistic is 3 / (3 + 1) = 75% key, not one subject in two
    rows = []
    for sid, (winner, value) in {"s1": ("key", 3.0), "s2": ("value", 1.0)}.items():
        for br in ("query", "key", "value", "skip"):
            rows.append({"sentence_id": sid, "token_index": 1, "layer": 0, "branch": br, "oplus": int(br == winner),
                         "oplus_value": value if br == winner else 0.0, "bucket_sum": 0.0, "abs_share": 0.25,
                         "entropy": 0.0})
    branches = pd.DataFrame(rows)
    sentences = pd.DataFrame({"sentence_id": ["s1", "s2"], "subject_position": [1, 1], "attractor_positions": [[], []],
                              "n_attractors": [0, 0], "mask_position": [2, 2]})
    table = paper_comparison(branches, sentences).set_index(["what", "branch"])
    assert table.loc[("subject, last layer", "key"), "ours_pct"] == pytest.approx(75.0)
    assert table.loc[("subject, last layer", "key"), "ours_share_pct"] == pytest.approx(50.0)
