"""`bf-bert reproduce entropy-vs-mdl` end to end on a tiny setting, its resume, its statistics on
hand-built tables, and its CLI errors."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from bf_bert.cli import main
from bf_bert.synthetic import entropy_mdl_report as report
from bf_bert.synthetic.entropy_mdl import run_all
from bf_bert.synthetic.reproduce import RunError

TINY = dict(tasks=("Contains1", "BinCountOnes-3", "FirstTokenRepeatedLast"), seeds=(0, 1), vocab_size=20,
            seq_len=12, train_size=120, val_size=10, test_size=10, epochs=1,
            model_overrides=dict(num_hidden_layers=1, hidden_size=8, num_attention_heads=2, intermediate_size=16))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("entropy_mdl")
    messages = []
    return out, run_all(out, log=messages.append, **TINY), messages


def test_tables_and_report(run):
    out, result, _ = run
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 6 and set(runs["task"]) == set(TINY["tasks"])
    # the online code adds up block by block, and its first block is the uniform code
    blocks = pd.read_parquet(out / "blocks.parquet")
    for (task, seed), rows in blocks.groupby(["task", "seed"]):
        row = runs[(runs["task"] == task) & (runs["seed"] == seed)].iloc[0]
        assert rows["bits"].sum() == pytest.approx(row["mdl_bits"])
        assert rows.iloc[0]["bits"] == pytest.approx(rows.iloc[0]["stop"] * math.log2(row["classes"]))
        assert rows["stop"].max() == 120 and (rows["start"].iloc[1:] == rows["stop"].iloc[:-1].to_numpy()).all()
    # an example's entropy is the sum of its tokens'; the run's is their mean
    examples = pd.read_parquet(out / "examples.parquet")
    assert len(examples) == 6 * 10
    mean = examples.groupby(["task", "seed"])["entropy"].mean()
    for _, row in runs.iterrows():
        assert mean[(row["task"], row["seed"])] == pytest.approx(row["entropy"], rel=1e-5)
        assert row["token_entropy"] == pytest.approx(row["entropy"] / 12, rel=1e-5)
    assert (examples["entropy"] > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["correlation"]["all"]["runs"] == 6
    text = (out / "report.md").read_text()
    for piece in ("Does entropy rise with task difficulty?", "## Correlation of MDL with entropy", "## Beside the paper",
                  "BinCountOnes-3", "entropy_vs_mdl.png"):
        assert piece in text
    assert (out / "entropy_vs_mdl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_keeps_finished_runs_and_blocks(run):
    out, result, _ = run
    messages = []
    again = run_all(out, log=messages.append, **TINY)
    assert sum("kept from an earlier run" in m for m in messages) == 6 and not any("block" in m for m in messages)
    pd.testing.assert_frame_equal(again["runs"], result["runs"])
    # a run killed after some blocks: only the missing blocks, the model and the entropies are redone
    folder = out / "runs" / "BinCountOnes-3" / "seed1"
    kept = json.loads((folder / "blocks.json").read_text())
    last = max(kept["bits"], key=int)
    del kept["bits"][last], kept["rows"]
    (folder / "blocks.json").write_text(json.dumps(kept))
    (folder / "run.json").unlink()
    messages.clear()
    resumed = run_all(out, log=messages.append, **TINY)
    assert [m for m in messages if "block" in m] == [m for m in messages if f"block {last}.." in m]
    assert len([m for m in messages if "block" in m]) == 1
    pd.testing.assert_frame_equal(resumed["runs"].drop(columns=["mdl_seconds", "entropy_seconds"]),
                                  result["runs"].drop(columns=["mdl_seconds", "entropy_seconds"]), rtol=1e-5)
    with pytest.raises(RunError, match="other settings.*epochs: 1 there, 2 here"):
        run_all(out, log=messages.append, **{**TINY, "epochs": 2})


def _table(entropy_of_mdl, seeds=(0, 1, 2), tasks=6):
    rows = []
    for seed in seeds:
        for t in range(tasks):
            bits = 1000.0 * (t + 1) + 37 * seed
            rows.append({"task": f"T{t}", "family": "T", "seed": seed, "mdl_bits": bits, "entropy": entropy_of_mdl(bits, seed),
                         "val_accuracy": 1.0 if t % 2 else 0.5})
    return pd.DataFrame(rows)


def test_statistics_on_hand_built_tables():
    rising = report.correlations(_table(lambda b, s: np.log(b) + 0.01 * s))
    assert rising["all"]["spearman"]["per_seed"] == {0: 1.0, 1: 1.0, 2: 1.0}
    assert rising["all"]["spearman"]["seed_ci95"] == pytest.approx([0.99, 0.99])  # ±1 counts as ±0.99
    assert rising["all"]["verdict"].startswith("yes: entropy rises with MDL, strongly")
    assert rising["learned"]["tasks"] == 3 and rising["learned"]["runs"] == 9 and "family T" in rising
    falling = report.correlations(_table(lambda b, s: -b))
    assert falling["all"]["verdict"].startswith("no: entropy falls as MDL rises")
    assert falling["all"]["spearman"]["task_bootstrap_ci95"] == [-1.0, -1.0]
    # seeds that disagree: the t interval over seeds (2 degrees of freedom) spans 0
    mixed = report.correlations(_table(lambda b, s: b if s < 2 else -b))
    assert mixed["all"]["verdict"].startswith("not shown")
    # the interval itself: Fisher z of the per-seed values, t with k-1 degrees of freedom
    mean, low, high = report._seed_interval([0.5, 0.7, 0.9])
    z = np.arctanh([0.5, 0.7, 0.9])
    half = 4.302652729911275 * z.std(ddof=1) / math.sqrt(3)
    np.testing.assert_allclose([mean, low, high], np.tanh([z.mean(), z.mean() - half, z.mean() + half]))
    # every model at the uniform code: MDLs differ by noise, which is no ranking of difficulty
    flat = _table(lambda b, s: b)
    flat["mdl_bits"] = 3600 + flat["mdl_bits"] / 1000
    assert report.correlations(flat)["all"]["verdict"].startswith("no difficulty ranking to test")
    one_seed = report.correlations(_table(lambda b, s: b, seeds=(0,)))
    assert one_seed["all"]["verdict"].startswith("not enough runs")


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    def error(*argv):
        assert main(["reproduce", "entropy-vs-mdl", "--out", str(tmp_path), *argv]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    assert error("--tasks", "Contains1,Nope").startswith("bf-bert: error: --tasks: unknown task 'Nope'; known: Contains1,")
    assert error("--tasks", "BinCountOnes-5") == ("bf-bert: error: --tasks: BinCountOnes: classes must be >= 2 and "
                                                 "divide seq_len 36, got 5")
    assert error("--seeds", "0,x") == "bf-bert: error: --seeds '0,x': pass whole numbers, e.g. --seeds 0,1,2"
    assert error("--seeds", "0,0") == "bf-bert: error: --tasks and --seeds: name each one once"
    assert error("--epochs", "0") == "bf-bert: error: --epochs must be at least 1"
    assert error("--train-size", "1") == "bf-bert: error: --train-size must be at least 2"
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(["reproduce", "entropy-vs-mdl", "--out", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
