"""Loading and saving BF BERT: every checkpoint layout transformers writes, the hub cache and
offline mode, errors that name the file and the fix, and round trips through torch.

One tiny seeded config and one input shape (batch 2, seq 7) throughout, so the jitted kernels
compile once; the checkpoints are built once per module. Torch is the oracle: outputs are
compared with `BertForMaskedLM` (eager attention, eval) on the same weights.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors import safe_open

from transformers import (BertConfig, BertForMaskedLM, BertForPreTraining, BertForSequenceClassification, BertModel,
                          BFBertForMaskedLM, BFBertForPreTraining, BFBertForSequenceClassification, BFBertModel,
                          RobertaConfig, RobertaForMaskedLM)

CONFIG = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
              max_position_embeddings=64)
HUB_ID, HUB_HASH = "org/tiny-bert", "0123456789abcdef0123456789abcdef01234567"


def tiny_config(**overrides):
    return BertConfig(**CONFIG, **overrides)


def inputs():
    """(input_ids, attention_mask) of shape (2, 7); the second sentence is padded."""
    ids = np.random.RandomState(0).randint(1, CONFIG["vocab_size"], (2, 7))
    mask = np.ones((2, 7), np.int64)
    mask[1, 5:] = 0
    return ids, mask


def torch_model(cls=BertForMaskedLM, **overrides):
    """Seeded, eager attention, eval; every parameter moved off its init, so one left unloaded shows."""
    torch.manual_seed(0)
    model = cls(tiny_config(attn_implementation="eager", **overrides)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.5 * torch.randn_like(param))
    return model


def torch_logits(model):
    ids, mask = inputs()
    with torch.no_grad():
        return model(torch.as_tensor(ids), attention_mask=torch.as_tensor(mask)).logits.double().numpy()


def bf_logits(model):
    ids, mask = inputs()
    return np.asarray(model(ids, attention_mask=mask).logits.val)


def assert_close(ours, theirs, tol=1e-4):
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol)


def save_legacy_bin(state, folder, config):
    """A pre-safetensors checkpoint: config.json + pytorch_model.bin, as transformers v4 wrote it."""
    os.makedirs(folder, exist_ok=True)
    config.save_pretrained(folder)
    torch.save(state, os.path.join(folder, "pytorch_model.bin"))


@pytest.fixture(scope="module")
def reference():
    model = torch_model()
    return model, torch_logits(model)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, reference):
    """Every layout of the same weights: name → folder."""
    model, _ = reference
    root = tmp_path_factory.mktemp("ckpt")
    folders = {name: str(root / name) for name in ("safetensors", "sharded", "legacy_bin", "sharded_bin")}
    model.save_pretrained(folders["safetensors"])
    model.save_pretrained(folders["sharded"], max_shard_size="20KB")
    # transformers 5 writes safetensors even with safe_serialization=False, so the legacy layouts are
    # written as v4 did: the full state dict (tied decoder included), TF-era gamma/beta LayerNorm names
    # and the position_ids buffer v4 kept in checkpoints.
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in model.state_dict().items()}
    state["bert.embeddings.position_ids"] = torch.arange(CONFIG["max_position_embeddings"])[None]
    save_legacy_bin(state, folders["legacy_bin"], model.config)
    os.makedirs(folders["sharded_bin"])
    model.config.save_pretrained(folders["sharded_bin"])
    keys = list(model.state_dict())
    halves = {"pytorch_model-00001-of-00002.bin": keys[: len(keys) // 2],
              "pytorch_model-00002-of-00002.bin": keys[len(keys) // 2:]}
    for name, part in halves.items():
        torch.save({k: model.state_dict()[k] for k in part}, os.path.join(folders["sharded_bin"], name))
    with open(os.path.join(folders["sharded_bin"], "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": {k: name for name, part in halves.items() for k in part}}, f)
    return folders


def build_hub_cache(cache, folder, repo_id=HUB_ID, commit=HUB_HASH):
    """Lay `folder` out as huggingface_hub downloads a repo: models--org--name/ with blobs/<sha256>,
    snapshots/<commit>/<file> → ../../blobs/<sha256>, and refs/main holding the commit."""
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    for sub in ("blobs", f"snapshots/{commit}", "refs"):
        (repo / sub).mkdir(parents=True)
    for path in Path(folder).iterdir():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copy(path, repo / "blobs" / digest)
        (repo / "snapshots" / commit / path.name).symlink_to(Path("..", "..", "blobs", digest))
    (repo / "refs" / "main").write_text(commit)
    return str(cache)


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, ckpt):
    return build_hub_cache(tmp_path_factory.mktemp("hub_cache"), ckpt["safetensors"])


@pytest.fixture
def broken(tmp_path, ckpt):
    """A fresh copy of the safetensors checkpoint, for a test to damage."""
    folder = tmp_path / "broken"
    shutil.copytree(ckpt["safetensors"], folder)
    return folder


@pytest.fixture
def warnings_of_transformers(caplog):
    """transformers' loggers do not propagate to the root logger, where caplog listens."""
    logger = logging.getLogger("transformers")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


# -- every layout -------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["safetensors", "sharded", "legacy_bin", "sharded_bin"])
def test_every_checkpoint_layout_loads_with_torch_outputs(ckpt, reference, layout):
    files = sorted(os.listdir(ckpt[layout]))
    if layout.startswith("sharded"):
        assert any(f.endswith(".index.json") for f in files) and len(files) >= 4  # config, index, ≥ 2 shards
    if layout.endswith("bin"):
        assert not any(f.endswith(".safetensors") for f in files)
    model, info = BFBertForMaskedLM.from_pretrained(ckpt[layout], output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    assert not model.training
    assert model.dtype == jnp.float32
    assert_close(bf_logits(model), reference[1])


def test_hub_cache_layout_loads_by_id(hub_cache, reference):
    model = BFBertForMaskedLM.from_pretrained(HUB_ID, cache_dir=hub_cache, local_files_only=True)
    assert model.name_or_path == HUB_ID
    assert_close(bf_logits(model), reference[1])


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to resolve or reach a host is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def test_hf_hub_offline_loads_from_the_cache_without_touching_the_network(hub_cache, reference, monkeypatch,
                                                                         no_network):
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; check that it does, then set what it sets.
    probe = subprocess.run([sys.executable, "-c", "import huggingface_hub.constants as c; print(c.HF_HUB_OFFLINE)"],
                           env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "True"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model = BFBertForMaskedLM.from_pretrained(HUB_ID, cache_dir=hub_cache)  # no local_files_only
    assert no_network == []
    assert_close(bf_logits(model), reference[1])


def test_hub_id_not_in_the_cache_names_the_id_and_what_to_do(tmp_path, no_network):
    with pytest.raises(OSError, match=r"'org/absent'(.|\n)*hf download"):
        BFBertForMaskedLM.from_pretrained("org/absent", cache_dir=str(tmp_path), local_files_only=True)
    assert no_network == []


# -- missing and corrupt files ----------------------------------------------------------------

def test_folder_without_weights_names_the_files_looked_for(broken):
    os.remove(broken / "model.safetensors")
    with pytest.raises(OSError, match=r"no weights for .*broken.*model\.safetensors.*pytorch_model\.bin"):
        BFBertForMaskedLM.from_pretrained(broken)


def test_folder_without_config_says_to_use_save_pretrained(broken):
    os.remove(broken / "config.json")
    with pytest.raises(OSError, match=r"broken has no config\.json(.|\n)*save_pretrained"):
        BFBertForMaskedLM.from_pretrained(broken)


def test_missing_folder_names_it(tmp_path):
    absent = str(tmp_path / "absent")
    with pytest.raises(OSError, match=rf"{re.escape(absent)}(.|\n)*pass a folder that save_pretrained wrote"):
        BFBertForMaskedLM.from_pretrained(absent)


def test_truncated_safetensors_names_the_file_and_the_fix(broken):
    path = broken / "model.safetensors"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(OSError, match=r"model\.safetensors is not a readable safetensors file.*save the checkpoint"):
        BFBertForMaskedLM.from_pretrained(broken)


def test_corrupt_bin_names_the_file(tmp_path):
    folder = tmp_path / "corrupt_bin"
    folder.mkdir()
    tiny_config().save_pretrained(folder)
    (folder / "pytorch_model.bin").write_bytes(b"not a zip archive nor a pickle")
    with pytest.raises(OSError, match=r"pytorch_model\.bin could not be read with torch\.load\(weights_only=True\)"):
        BFBertForMaskedLM.from_pretrained(folder)


class _RunsCode:
    """Unpickling this calls os.mkdir: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_a_bin_checkpoint_never_runs_code(tmp_path, reference):
    marker = tmp_path / "code_ran"
    folder = tmp_path / "malicious"
    state = dict(reference[0].state_dict())
    state["bert.embeddings.word_embeddings.weight"] = _RunsCode(str(marker))
    save_legacy_bin(state, folder, reference[0].config)
    with pytest.raises(OSError, match=r"pytorch_model\.bin could not be read with torch\.load\(weights_only=True\)"):
        BFBertForMaskedLM.from_pretrained(folder)
    assert not marker.exists()
    torch.load(folder / "pytorch_model.bin", weights_only=False)  # the payload is real: a free unpickle runs it
    assert marker.exists()


def test_a_training_checkpoint_that_is_not_a_state_dict_is_refused_by_name(tmp_path, reference):
    folder = tmp_path / "training_ckpt"
    save_legacy_bin({"state_dict": reference[0].state_dict(), "epoch": 3}, folder, reference[0].config)
    with pytest.raises(OSError, match=r"pytorch_model\.bin is not a state dict of tensors: its entry 'state_dict'"):
        BFBertForMaskedLM.from_pretrained(folder)


def test_shard_index_naming_a_missing_shard(tmp_path, ckpt):
    folder = tmp_path / "sharded"
    shutil.copytree(ckpt["sharded"], folder)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    lost = sorted(set(index["weight_map"].values()))[1]
    os.remove(folder / lost)
    with pytest.raises(OSError, match=rf"lists the shard '{lost}', which is missing(.|\n)*every shard"):
        BFBertForMaskedLM.from_pretrained(folder)


def test_shard_index_that_is_not_json(tmp_path, ckpt):
    folder = tmp_path / "sharded"
    shutil.copytree(ckpt["sharded"], folder)
    (folder / "model.safetensors.index.json").write_text("{ truncated")
    with pytest.raises(OSError, match=r"model\.safetensors\.index\.json is not a valid shard index"):
        BFBertForMaskedLM.from_pretrained(folder)


# -- checkpoints that do not fit the class --------------------------------------------------

@pytest.fixture(scope="module")
def roberta_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = RobertaForMaskedLM(RobertaConfig(**CONFIG))
    folder = tmp_path_factory.mktemp("roberta")
    model.save_pretrained(folder)
    return folder


def test_checkpoint_of_another_model_type_is_an_error(roberta_ckpt):
    with pytest.raises(TypeError, match=r"holds a 'roberta' config .*BFBertForMaskedLM loads 'bert' checkpoints only"):
        BFBertForMaskedLM.from_pretrained(roberta_ckpt)


def test_checkpoint_with_no_matching_parameter_is_an_error(tmp_path, roberta_ckpt):
    folder = tmp_path / "bert_config_roberta_weights"
    folder.mkdir()
    tiny_config().save_pretrained(folder)
    shutil.copy(roberta_ckpt / "model.safetensors", folder)
    with pytest.raises(ValueError, match=r"no parameter of BFBertForMaskedLM was found in .*model\.safetensors"):
        BFBertForMaskedLM.from_pretrained(folder)


def test_shape_mismatch_names_the_parameter_unless_ignored(ckpt, warnings_of_transformers):
    with pytest.raises(ValueError, match=r"token_type_embeddings\.weight: checkpoint \(2, 32\), model \(3, 32\)"
                                         r"(.|\n)*ignore_mismatched_sizes=True"):
        BFBertForMaskedLM.from_pretrained(ckpt["safetensors"], type_vocab_size=3)
    _, info = BFBertForMaskedLM.from_pretrained(ckpt["safetensors"], type_vocab_size=3, ignore_mismatched_sizes=True,
                                                output_loading_info=True)
    _, theirs = BertForMaskedLM.from_pretrained(ckpt["safetensors"], type_vocab_size=3, ignore_mismatched_sizes=True,
                                                output_loading_info=True)
    assert info["mismatched_keys"] == [("bert.embeddings.token_type_embeddings.weight", (2, 32), (3, 32))]
    assert {k for k, _, _ in theirs["mismatched_keys"]} == {k for k, _, _ in info["mismatched_keys"]}
    assert set(info["missing_keys"]) == set(theirs["missing_keys"]) == set()
    assert any("newly initialized because their shapes" in r.getMessage() and "token_type_embeddings" in r.getMessage()
               for r in warnings_of_transformers.records)


# -- loading info, as transformers reports it ------------------------------------------------

@pytest.mark.parametrize("bf_class, torch_class", [(BFBertModel, BertModel),
                                                   (BFBertForSequenceClassification, BertForSequenceClassification),
                                                   (BFBertForPreTraining, BertForPreTraining),
                                                   (BFBertForMaskedLM, BertForMaskedLM)])
@pytest.mark.parametrize("layout", ["safetensors", "legacy_bin"])
def test_missing_and_unexpected_keys_are_those_transformers_reports(ckpt, bf_class, torch_class, layout):
    _, ours = bf_class.from_pretrained(ckpt[layout], output_loading_info=True)
    _, theirs = torch_class.from_pretrained(ckpt[layout], output_loading_info=True)
    for field in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert set(ours[field]) == set(theirs[field]), field


def test_missing_and_unexpected_keys_are_logged_as_warnings(ckpt, warnings_of_transformers):
    BFBertModel.from_pretrained(ckpt["safetensors"])
    messages = [r.getMessage() for r in warnings_of_transformers.records if r.levelno == logging.WARNING]
    assert any("newly initialized" in m and "pooler.dense.weight" in m for m in messages)
    assert any("were not used" in m and "cls.predictions.transform.dense.weight" in m for m in messages)


# -- tied weights ------------------------------------------------------------------------------

def test_decoder_is_the_word_embedding_parameter(ckpt):
    model = BFBertForMaskedLM.from_pretrained(ckpt["safetensors"])
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    with safe_open(os.path.join(ckpt["safetensors"], "model.safetensors"), "np") as f:
        assert "cls.predictions.decoder.weight" not in f.keys()  # so it can only come from the tie


def test_untied_decoder_loads_its_own_weight(tmp_path):
    reference = torch_model(tie_word_embeddings=False)
    assert reference.cls.predictions.decoder.weight is not reference.bert.embeddings.word_embeddings.weight
    reference.save_pretrained(tmp_path)
    model = BFBertForMaskedLM.from_pretrained(tmp_path)
    decoder = model.cls.predictions.decoder.weight
    assert decoder is not model.bert.embeddings.word_embeddings.weight
    np.testing.assert_array_equal(np.asarray(decoder.val), reference.cls.predictions.decoder.weight.detach().numpy())
    assert_close(bf_logits(model), torch_logits(reference))


# -- saving --------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"max_shard_size": "20KB"}, {"safe_serialization": False},
                                     {"safe_serialization": False, "max_shard_size": "20KB"}],
                         ids=["safetensors", "sharded", "bin", "sharded_bin"])
def test_save_pretrained_is_read_by_torch_with_identical_outputs(tmp_path, ckpt, reference, options):
    model = BFBertForMaskedLM.from_pretrained(ckpt["safetensors"])
    model.save_pretrained(tmp_path, **options)
    files = sorted(os.listdir(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    if "max_shard_size" in options:
        index = "model.safetensors.index.json" if options.get("safe_serialization", True) else \
            "pytorch_model.bin.index.json"
        assert index in files and len(files) >= 4  # config, index, ≥ 2 shards
    elif options.get("safe_serialization") is False:
        assert files == ["config.json", "pytorch_model.bin"]
        torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
    else:
        with safe_open(tmp_path / "model.safetensors", "np") as f:
            assert f.metadata() == {"format": "pt"}
            assert "cls.predictions.decoder.weight" not in f.keys()  # tied: written once, under its source
    theirs, info = BertForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"])
    np.testing.assert_array_equal(torch_logits(theirs.eval()), reference[1])


def test_save_then_load_round_trip_keeps_every_parameter(tmp_path, ckpt):
    model = BFBertForMaskedLM.from_pretrained(ckpt["safetensors"])
    model.save_pretrained(tmp_path)
    again = BFBertForMaskedLM.from_pretrained(tmp_path)
    ours, theirs = dict(model.named_parameters()), dict(again.named_parameters())
    assert list(ours) == list(theirs)
    for name in ours:
        np.testing.assert_array_equal(np.asarray(ours[name].val), np.asarray(theirs[name].val), err_msg=name)


# -- dtypes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", jnp.float64, torch.float64])
def test_float64_needs_x64_and_says_how_to_turn_it_on(ckpt, dtype):
    with jax.enable_x64(False), pytest.raises(
            ValueError, match=r"float64 needs 64-bit JAX: run jax\.config\.update\('jax_enable_x64', True\)"):
        BFBertForMaskedLM.from_pretrained(ckpt["safetensors"], dtype=dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", torch.float16, "int32"])
def test_half_and_integer_dtypes_are_refused(ckpt, dtype):
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        BFBertForMaskedLM.from_pretrained(ckpt["safetensors"], dtype=dtype)


def test_float64_under_x64_matches_torch_double(ckpt, reference):
    expected = torch_logits(torch_model().double())
    with jax.enable_x64(True):
        model = BFBertForMaskedLM.from_pretrained(ckpt["safetensors"], dtype="float64")
        assert {p.dtype for p in model.parameters()} == {jnp.dtype("float64")}
        logits = bf_logits(model)
    assert logits.dtype == np.float64
    assert_close(logits, expected, tol=1e-9)


@pytest.mark.parametrize("torch_dtype", [torch.float16, torch.bfloat16])
def test_half_precision_checkpoint_loads_as_float32(tmp_path, reference, torch_dtype):
    half = torch_model().to(torch_dtype)
    half.save_pretrained(tmp_path)
    model = BFBertForMaskedLM.from_pretrained(tmp_path)
    assert model.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(model.bert.embeddings.word_embeddings.weight.val),
                                  half.bert.embeddings.word_embeddings.weight.detach().float().numpy())


# -- bad input -----------------------------------------------------------------------------------

def test_a_config_of_the_wrong_type_is_a_type_error_naming_the_rule(ckpt):
    with pytest.raises(TypeError, match=r"BFBertModel needs a BertConfig, got RobertaConfig; build one with "
                                        r"BertConfig\(\.\.\.\)"):
        BFBertModel(RobertaConfig(**CONFIG))
    with pytest.raises(TypeError, match=r"needs a BertConfig, got dict"):
        BFBertForMaskedLM(dict(CONFIG))
    with pytest.raises(TypeError, match=r"the config passed is a 'roberta' config .*loads 'bert' checkpoints only "
                                        r"\(its config must be a BertConfig\)"):
        BFBertForMaskedLM.from_pretrained(ckpt["safetensors"], config=RobertaConfig(**CONFIG))


def test_unknown_keyword_and_positional_arguments_are_refused(ckpt):
    with pytest.raises(TypeError, match=r"neither loading options nor attributes of BertConfig: \['no_such_option'\]"):
        BFBertForMaskedLM.from_pretrained(ckpt["safetensors"], no_such_option=1)
    with pytest.raises(TypeError, match="takes the path and keyword arguments only"):
        BFBertForMaskedLM.from_pretrained(ckpt["safetensors"], tiny_config())


def test_config_keywords_override_without_changing_the_callers_config(ckpt):
    config = BertConfig(**CONFIG)
    model = BFBertForMaskedLM.from_pretrained(ckpt["safetensors"], config=config, output_hidden_states=True)
    assert model.config.output_hidden_states and model.config is not config
    assert not config.output_hidden_states and config.name_or_path == ""
    assert len(model(inputs()[0]).hidden_states) == CONFIG["num_hidden_layers"] + 1
    from_path = BFBertForMaskedLM.from_pretrained(ckpt["safetensors"], config=ckpt["safetensors"], hidden_dropout_prob=0.3)
    assert from_path.config.hidden_dropout_prob == 0.3
