"""Every bad argument or input of `bf-bert`, run as a user runs it (the console script, stderr a
pipe): exit status 2, one `bf-bert: error:` line on stderr, no traceback, nothing on stdout.

test_cli.py checks the messages of the common mistakes in-process; this file covers each
subcommand and the damaged checkpoints a loader can meet, where an uncaught exception type would
otherwise print a traceback.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from .tiny import tiny_masked_lm

BF_BERT = os.path.join(os.path.dirname(sys.executable), "bf-bert")
TEXT = "The keys to the cabinet [MASK] on the table."


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name → a checkpoint folder: a good one and the damaged copies the tests load."""
    root = tmp_path_factory.mktemp("cli_errors")
    good = tiny_masked_lm(root / "good", seed=0)
    made = {"good": good}

    def copy(name):
        made[name] = shutil.copytree(good, root / name)
        return made[name]

    for f in os.listdir(copy("no_tokenizer")):
        if f not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(made["no_tokenizer"], f))
    (copy("bad_tokenizer") / "tokenizer.json").write_text("{ truncated")
    config = json.loads((copy("bad_config") / "config.json").read_text())
    (made["bad_config"] / "config.json").write_text(json.dumps({**config, "vocab_size": "many"}))
    weights = copy("int_weights") / "model.safetensors"
    state = load_file(weights)
    state["bert.encoder.layer.0.output.dense.weight"] = np.zeros((32, 37), np.int32)
    save_file(state, weights, metadata={"format": "pt"})
    return {name: str(path) for name, path in made.items()}


def run(*argv, cwd=None):
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cwd or ".") + "/jax-cache"}
    return subprocess.run([BF_BERT, *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bf-bert: error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("argv, fragment", [
    ([], "the following arguments are required: command"),
    (["nonsense"], "invalid choice: 'nonsense'"),
    (["fill-mask", TEXT, "--top-k", "-3"], "--top-k must be at least 1"),
    (["fill-mask", TEXT, "--bogus"], "unrecognized arguments: --bogus"),
    (["explain", TEXT, "--target", "is", "--quantity", "prob"], "argument --quantity: invalid choice"),
    (["analyze"], "the following arguments are required: analysis"),
    (["analyze", "sva", "--out", "o"], "the following arguments are required: --data"),
    (["analyze", "sva", "--data", "missing.tsv", "--out", "o"], "--data 'missing.tsv': no such file or folder"),
    (["analyze", "sva", "--data", "x", "--out", "o", "--batch-size", "0"], "--batch-size and --bucket must be"),
    (["analyze", "sva", "--data", "x", "--out", "o", "--limit", "ten"], "argument --limit: invalid int value"),
    (["analyze", "merge", "no_such_run"], "no_such_run"),
    (["analyze", "figures", "no_such_run"], "no_such_run"),
    (["reproduce", "synthetic-top-path"], "the following arguments are required: --out"),
    (["reproduce", "synthetic-top-path", "--out", "o", "--task", "Nope"], "--task 'Nope': unknown task"),
    (["reproduce", "synthetic-top-path", "--out", "o", "--epochs", "0"], "--epochs must be at least 1"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_arguments_are_one_line_and_exit_status_2(tmp_path, argv, fragment):
    assert_one_line_error(run(*argv, cwd=tmp_path), fragment)
    assert not (tmp_path / "o").exists()  # refused before anything was made


FILL, EXPLAIN = ["fill-mask", TEXT], ["explain", TEXT, "--target", "is"]


@pytest.mark.parametrize("command, model, fragments", [
    (FILL, "/nonexistent", ["--model '/nonexistent': no such folder"]),
    (FILL, "no_tokenizer", ["no tokenizer in", "tokenizer.save_pretrained"]),
    (EXPLAIN, "no_tokenizer", ["no tokenizer in", "tokenizer.save_pretrained"]),
    (FILL, "bad_tokenizer", ["cannot load the tokenizer in", "save the tokenizer again"]),
    (FILL, "bad_config", ["is not a valid config", "vocab_size"]),
    (EXPLAIN, "int_weights", ["non-float data (nothing was loaded)", "output.dense.weight (int32)"]),
], ids=lambda v: v[0] if isinstance(v, list) else None)
def test_a_model_that_cannot_load_is_one_line_and_exit_status_2(folders, tmp_path, command, model, fragments):
    path = folders.get(model, model)
    assert_one_line_error(run(*command, "--model", path, cwd=tmp_path), *fragments)


def test_the_good_checkpoint_runs(folders, tmp_path):
    # the damaged copies fail for their damage alone
    result = run("fill-mask", TEXT, "--model", folders["good"], "--top-k", "1", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    assert result.stdout.splitlines()[0] == TEXT
