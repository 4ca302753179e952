"""Damaged checkpoints, one clear error each: corrupt safetensors and .bin files, weights that
are not floats, configs that do not fit, folders this process may not read.

Complements test_loading_bf_bert.py (missing files and shards, code-running pickles, shape
mismatches, other model types). Nothing here compiles: loading builds the model on the host.
"""

import json
import os
import shutil
import re

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from transformers import BertConfig, BertForMaskedLM, BFBertForMaskedLM

CONFIG = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
              max_position_embeddings=64)
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("good")
    BertForMaskedLM(BertConfig(**CONFIG)).save_pretrained(folder)
    return folder


@pytest.fixture
def damaged(tmp_path, good):
    """A fresh copy of the good checkpoint for a test to damage."""
    return shutil.copytree(good, tmp_path / "damaged")


def _truncate(size):
    def damage(path):
        with open(path, "r+b") as f:
            f.truncate(size(os.path.getsize(path)))
    return damage


def _set_bytes(offset, value):
    def damage(path):
        data = bytearray(path.read_bytes())
        data[offset:offset + len(value)] = value
        path.write_bytes(bytes(data))
    return damage


@pytest.mark.parametrize("damage", [
    _truncate(lambda n: 0), _truncate(lambda n: 5), _truncate(lambda n: 8), _truncate(lambda n: 60),
    _truncate(lambda n: n // 2), _truncate(lambda n: n - 1),
    _set_bytes(0, (10 ** 12).to_bytes(8, "little")),  # a header length past the file's end
    _set_bytes(9, b"\xff\xfe"),  # the JSON header is no longer UTF-8
    _set_bytes(8, b"[" * 8),  # ... nor a JSON object
], ids=["empty", "5 bytes", "header length only", "mid header", "half", "last byte cut", "huge header length",
        "not utf-8", "not an object"])
def test_a_corrupt_safetensors_file_is_one_error_naming_it(damaged, damage):
    damage(damaged / WEIGHTS)
    with pytest.raises(OSError, match=r"model\.safetensors is not a readable safetensors file .*save the checkpoint"):
        BFBertForMaskedLM.from_pretrained(damaged)


def _as_bin(folder, state):
    os.remove(folder / WEIGHTS)
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, folder / "pytorch_model.bin")


@pytest.mark.parametrize("cut", [lambda n: n // 2, lambda n: n - 1, lambda n: 30], ids=["half", "last byte", "head"])
def test_a_truncated_bin_is_one_error_naming_it(damaged, cut):
    _as_bin(damaged, load_file(damaged / WEIGHTS))
    _truncate(cut)(damaged / "pytorch_model.bin")
    with pytest.raises(OSError, match=r"pytorch_model\.bin could not be read with torch\.load\(weights_only=True\)"):
        BFBertForMaskedLM.from_pretrained(damaged)


QUERY = "bert.encoder.layer.0.attention.self.query"


@pytest.mark.parametrize("layout", ["safetensors", "bin"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.uint8])
def test_weights_stored_as_integers_or_bools_are_refused_not_cast(damaged, layout, dtype):
    state = load_file(damaged / WEIGHTS)
    state[QUERY + ".weight"] = (state[QUERY + ".weight"] * 100).astype(dtype)
    if layout == "bin":
        _as_bin(damaged, state)
    else:
        save_file(state, damaged / WEIGHTS, metadata={"format": "pt"})
    name = np.dtype(dtype).name
    with pytest.raises(ValueError, match=rf"non-float data \(nothing was loaded\): {QUERY}\.weight \({name}\)"):
        BFBertForMaskedLM.from_pretrained(damaged)


def _edit_config(folder, text=None, **fields):
    path = folder / "config.json"
    if text is None:
        config = json.loads(path.read_text())
        config.update(fields)
        text = json.dumps(config)
    path.write_text(text)


@pytest.mark.parametrize("edit, error, message", [
    (dict(text=""), OSError, r"could not read config\.json of .*not a valid JSON file"),
    (dict(text="{ truncated"), OSError, r"could not read config\.json of .*not a valid JSON file"),
    (dict(text="[1, 2]"), ValueError, r"model_type"),
    (dict(vocab_size="many"), ValueError, r"config\.json of .* is not a valid config .*vocab_size"),
    (dict(num_attention_heads=5), ValueError, r"hidden_size \(32\) must be a multiple of num_attention_heads \(5\)"),
    (dict(hidden_size=64), ValueError, r"shape mismatch loading .*\(nothing was loaded\)"),
    (dict(vocab_size=98), ValueError, r"word_embeddings\.weight: checkpoint \(99, 32\), model \(98, 32\)"),
    (dict(hidden_act="swishy"), ValueError, r"hidden_act 'swishy' has no BF version"),
    (dict(position_embedding_type="relative_key"), NotImplementedError, r"'absolute' position embeddings only"),
], ids=["empty", "truncated", "a list", "field of the wrong type", "heads", "hidden size", "vocab size",
        "activation", "position embeddings"])
def test_a_config_that_does_not_fit_is_one_clear_error(damaged, edit, error, message):
    _edit_config(damaged, **edit)
    with pytest.raises(error, match=message):
        BFBertForMaskedLM.from_pretrained(damaged)


# -- folders and files this process may not read ---------------------------------------------------

@pytest.fixture
def unreadable(monkeypatch):
    """unreadable(path): chmod it to 0 and, when the suite runs as root (who reads everything), also
    make os.access refuse it as the kernel would refuse an unprivileged user."""
    denied = set()
    real_access = os.access

    def access(path, mode, **kwargs):
        return False if os.path.abspath(path) in denied else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)

    def make(path):
        path.chmod(0)
        denied.add(os.path.abspath(path))
    yield make
    for path in denied:
        os.chmod(path, 0o755)


@pytest.mark.parametrize("target", ["", "config.json", WEIGHTS])
def test_an_unreadable_folder_or_file_says_permission_denied(damaged, unreadable, target):
    unreadable(damaged / target if target else damaged)
    path = re.escape(str(damaged / target if target else damaged))
    with pytest.raises(PermissionError, match=rf"^{path}: permission denied .*chmod -R a\+rX"):
        BFBertForMaskedLM.from_pretrained(damaged)
