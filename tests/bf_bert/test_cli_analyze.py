"""`bf-bert analyze sva|merge|figures` on a tiny checkpoint folder: tables, report and figures
written, the summary printed; bad input is one line on stderr and exit status 2, no traceback.

Everything runs in-process through main(), so the one compiled program (one padded length,
float64, every row with a contrast) is built once and shared by every test here.
"""

import contextlib
import io
import logging

import pytest

from bf_bert.analysis.shards import shard_of
from bf_bert.analysis.store import read_table
from bf_bert.cli import main

from .tiny import LGD_GOOD, tiny_masked_lm, write_lgd

GOOD = LGD_GOOD[:8]
BAD = [(0, "the dog is here .", "is", "are"),                      # no mask: skipped by the reader
       (0, "the dog ***mask*** here .", "is", "xylophonists")]     # two word pieces: skipped by the runner
# the file: GOOD[0] (LGD is detected from its first row, so a good one), BAD, the rest of GOOD
IDS = [f"lgd-{n:06d}" for n in range(len(BAD) + len(GOOD))]
SKIPPED = IDS[1:1 + len(BAD)]


SLURM = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP")


def isolate(monkeypatch, cache):
    # main() turns on JAX's persistent cache unless one is configured: keep it out of this process
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(cache))
    for name in SLURM:
        monkeypatch.delenv(name, raising=False)  # a test run inside a SLURM job would be sharded


@pytest.fixture(autouse=True)
def no_global_compilation_cache_and_no_slurm(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path / "jax-cache")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_masked_lm(tmp_path_factory.mktemp("cli-analyze-checkpoint"), seed=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-analyze-data") / "lgd.tsv"
    rows = GOOD[:1] + BAD + GOOD[1:]
    return str(write_lgd(path, rows))


def sva(data, out, model, *more):
    return main(["analyze", "sva", "--data", str(data), "--out", str(out), "--model", model, "--batch-size", "4",
                 *more])


@pytest.fixture(scope="module")
def finished(data, model, tmp_path_factory):
    """One whole run through the CLI: (its folder, exit status, stdout, stderr)."""
    out = tmp_path_factory.mktemp("cli-run") / "run"
    printed, errors = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        isolate(mp, out.parent / "jax-cache")
        status = sva(data, out, model)
    return out, status, printed.getvalue(), errors.getvalue()


FIGURES = ("top_path_by_layer_oplus.png", "top_path_share_by_layer_oplus.png", "accuracy_entropy_by_attractors.png")


def assert_report_and_figures(out):
    report = (out / "report.md").read_text()
    assert f"sentences explained | {len(GOOD)}" in report.replace("  ", " ")
    for name in FIGURES:
        assert (out / "figures" / name).stat().st_size > 5_000, name
        assert f"figures/{name}" in report


def test_sva_prints_the_summary_and_writes_tables_report_and_figures(finished):
    out, status, printed, errors = finished
    assert status == 0, errors
    lines = printed.splitlines()
    assert lines[0].startswith(f"{len(GOOD)} sentences explained in ") and lines[0].endswith(f"; {len(BAD)} skipped")
    assert "1 compiled shapes" in lines[0]
    assert any(line.startswith("  skipped 1: ") and "xylophonists" in line for line in lines)
    assert lines[-1].startswith(f"wrote {out / 'report.md'}")
    assert "Traceback" not in errors
    assert sorted(read_table(out, "sentences").sentence_id) == [i for i in IDS if i not in SKIPPED]
    assert sorted(read_table(out, "skipped").sentence_id) == SKIPPED
    assert_report_and_figures(out)


def test_merge_and_figures_work_on_the_run(finished, capsys):
    out = finished[0]
    for name in FIGURES:
        (out / "figures" / name).unlink()
    (out / "report.md").unlink()
    assert main(["analyze", "figures", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out / 'report.md'}")
    assert_report_and_figures(out)
    assert main(["analyze", "merge", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"merged branches, sentences, skipped, tokens into {out}"
    assert all((out / f"{name}.parquet").is_file() for name in ("sentences", "tokens", "branches", "skipped"))
    assert len(read_table(out, "sentences")) == len(GOOD)
    assert_report_and_figures(out)


def test_a_slurm_array_task_runs_its_shard_only(data, model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    out = tmp_path / "run"
    assert sva(data, out, model) == 0
    printed = capsys.readouterr().out
    assert f"bf-bert analyze merge {out}" in printed and not (out / "report.md").exists()
    mine = {i for i in IDS if shard_of(i, 2) == 1}
    assert 0 < len(mine) < len(IDS) and set(SKIPPED) & mine and set(SKIPPED) - mine  # the split is really tested
    done = set(read_table(out, "sentences").sentence_id) | set(read_table(out, "skipped").sentence_id)
    assert done == mine
    assert {p.name.split("-part-")[0] for p in (out / "parts" / "sentences").iterdir()} == {"shard-1-of-2"}


def one_line_error(capsys):
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bf-bert: error: "), captured.err
    assert "Traceback" not in captured.err
    return err[0]


@pytest.mark.parametrize("change, message", [
    ({"--data": "missing.tsv"}, "no such file"),
    ({"--batch-size": "0"}, "--batch-size"),
    ({"--shard": "5/3"}, "5/3"),
    ({"--format": "unknown"}, "invalid choice"),
    ({"--limit": "-1"}, "limit"),
    ({"--data": "data.xyz"}, "what kind of file"),
    ({"--data": "unknown.tsv"}, "cannot tell which format"),
    ({"--data": "broken.jsonl"}, "broken.jsonl"),
    ({"--data": "broken.parquet"}, "arquet"),
    ({"--format": "lgd", "--text-column": "sentence"}, "--text-column: options of --format columns"),
    ({"--model": "no-such-model-folder"}, "no-such-model-folder': no such folder"),
    ({"--model": "empty-folder"}, "empty-folder"),
])
def test_bad_input_is_one_line_and_exit_status_2(data, model, tmp_path, capsys, change, message):
    (tmp_path / "data.xyz").write_text("a\tb\n")
    (tmp_path / "unknown.tsv").write_text("one\ttwo\nx\ty\n")
    (tmp_path / "broken.jsonl").write_text('{"text": "the dog [MASK] here .", "target": "is"}\n{not json\n')
    (tmp_path / "broken.parquet").write_bytes(b"not a parquet file at all")
    (tmp_path / "empty-folder").mkdir()
    options = {"--data": data, "--model": model, **change}
    if options["--data"] != data:
        options["--data"] = str(tmp_path / options["--data"])
    if options["--model"] != model:
        options["--model"] = str(tmp_path / options["--model"])
    argv = ["analyze", "sva", "--out", str(tmp_path / "out"), *[x for kv in options.items() for x in kv]]
    records, logged = [], logging.Handler()  # datasets logs to the process's stderr: capsys does not see it
    logged.emit = records.append
    logging.getLogger("datasets").addHandler(logged)
    try:
        assert main(argv) == 2
    finally:
        logging.getLogger("datasets").removeHandler(logged)
    assert message in one_line_error(capsys)
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []
    assert not (tmp_path / "out" / "parts").exists()


@pytest.mark.parametrize("command", ["merge", "figures"])
def test_merge_and_figures_of_a_folder_that_is_not_a_run_are_one_line(tmp_path, capsys, command):
    assert main(["analyze", command, str(tmp_path)]) == 2
    assert str(tmp_path) in one_line_error(capsys)


def test_a_run_that_explained_nothing_ends_in_one_line_not_a_traceback(model, tmp_path, capsys):
    data = tmp_path / "lgd.tsv"
    data.write_text("0\tthe dog is here .\tthe dog ***mask*** here .\tis\txylophonists\n")
    assert sva(data, tmp_path / "out", model) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("0 sentences explained")  # the summary comes first
    assert captured.err.startswith("bf-bert: error: no row of --data") and len(captured.err.splitlines()) == 1


def test_existing_results_need_resume_and_the_same_config(finished, data, model, capsys):
    out = finished[0]
    assert sva(data, out, model) == 2
    assert "--resume" in one_line_error(capsys)
    assert sva(data, out, model, "--resume", "--top-path") == 2
    assert "top_path: False there, True here" in one_line_error(capsys)
    assert sva(data, out, model, "--resume", "--dtype", "float64") == 2
    assert "dtype" in one_line_error(capsys)
