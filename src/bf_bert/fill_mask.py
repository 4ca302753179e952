"""Fill-mask for BF models, with the output of transformers' `pipeline("fill-mask")`.

    >>> fill = bf_pipeline("fill-mask", model="path/to/checkpoint")
    >>> fill("the cat [MASK] on the mat.", top_k=2)
    [{'score': 0.41, 'token': 2938, 'token_str': 'sat', 'sequence': 'the cat sat on the mat.'}, ...]

Output nesting, as transformers (kept so code written for its pipeline runs unchanged):

* one text with one mask → `[candidate, ...]` (`top_k` dicts, best first);
* one text with several masks → `[[candidate, ...], ...]`, one list per mask, left to right;
  each mask is scored independently (the other masks stay masked), and `sequence` keeps the
  special tokens there, so the other `[MASK]`s stay visible;
* a list of texts → one such result per text; a list holding one text → that text's result.

A list of texts is right-padded into one batch (with its attention mask) and runs as one forward.
Scores are the softmax of the logits at the mask, computed on the host: nothing here needs backprop.
`encode_masked` gives the encoded inputs and mask positions, for analyses that then backprop.
`load_masked_lm` loads a checkpoint for these workflows, refusing one that lacks weights (such as
a BertModel's missing MLM head) instead of running it with made-up ones.
"""

import contextlib
import os
import warnings

import numpy as np

SUPPORTED_TASKS = ("fill-mask",)
HEAD_PREFIX = "cls.predictions."  # the MLM head's weights
HEAD_ARCHITECTURES = ("BertForMaskedLM", "BertForPreTraining", "BertLMHeadModel")  # checkpoints that have them


def encode_masked(tokenizer, text):
    """Encode one text for a masked LM → (encoding, mask_positions).

    `encoding`: dict of int64 numpy arrays of shape (1, seq) (`input_ids`, `attention_mask` and,
    if the tokenizer makes them, `token_type_ids`), ready for `model(**encoding)`.
    `mask_positions`: the sequence positions of the mask tokens, ascending (at least one).
    """
    encoding, positions = encode_masked_batch(tokenizer, [text])
    return encoding, positions[0]


def encode_masked_batch(tokenizer, texts, pad_to_multiple_of=None):
    """Encode texts into one right-padded batch → (encoding of (batch, seq) arrays, positions per text).

    `seq` is the longest text's length, rounded up to `pad_to_multiple_of` if given. Padding is
    `tokenizer.pad_token_id` with attention mask 0; BERT's absolute positions count from the
    first token, so right padding leaves every text's scores as when it runs alone.
    """
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("no texts given: pass a string with a mask token, or a non-empty list of them")
    mask_id = _mask_token_id(tokenizer)
    rows = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is a {type(text).__name__}, expected a string")
        if not text.strip():
            raise ValueError(f"text {i} is empty; a fill-mask text needs at least one {tokenizer.mask_token}")
        # verbose=False: a text longer than the model takes is an error below, not a logged warning
        row = tokenizer(text, return_attention_mask=True, verbose=False)
        if mask_id not in row["input_ids"]:
            raise ValueError(f"no mask token ({tokenizer.mask_token}) in text {i}: {text!r}; "
                             f"write {tokenizer.mask_token} where a token should be predicted")
        rows.append(row)
    longest = max(len(row["input_ids"]) for row in rows)
    if pad_to_multiple_of:
        longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    pad_values = {"input_ids": tokenizer.pad_token_id or 0, "attention_mask": 0, "token_type_ids": 0}
    encoding = {}
    for key, pad in pad_values.items():
        if key not in rows[0]:
            continue
        batch = np.full((len(rows), longest), pad, np.int64)
        for b, row in enumerate(rows):
            batch[b, :len(row[key])] = row[key]
        encoding[key] = batch
    positions = [np.flatnonzero(np.asarray(row["input_ids"]) == mask_id).tolist() for row in rows]
    return encoding, positions


def _mask_token_id(tokenizer):
    if tokenizer.mask_token_id is None:
        raise ValueError(f"the tokenizer {type(tokenizer).__name__} defines no mask token; fill-mask needs one")
    return tokenizer.mask_token_id


def _softmax(logits):
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class BFFillMaskPipeline:
    """`pipeline("fill-mask")` for a BF masked LM: same call, same output (see the module docstring).

    `model`: a BF model whose output has `.logits` (batch, seq, vocab), e.g. `BFBertForMaskedLM`.
    `tokenizer`: a transformers tokenizer with a mask token. `top_k`: default number of candidates.
    `pad_to_multiple_of`: round the batch's length up to this (None: exact). BF compiles its
    kernels once per input shape (seconds for a model); rounding lets texts of nearby lengths
    share them. The padding is masked, so scores do not change.
    """

    task = "fill-mask"

    def __init__(self, model, tokenizer, top_k=5, pad_to_multiple_of=8):
        from transformers.modeling_bf_utils import BFPreTrainedModel

        if not isinstance(model, BFPreTrainedModel):
            raise TypeError(f"BFFillMaskPipeline runs BF models; got {type(model).__name__}. Load one with "
                            f"BFBertForMaskedLM.from_pretrained(path) (the same checkpoints torch loads)")
        if tokenizer is None:
            raise ValueError("BFFillMaskPipeline needs a tokenizer: AutoTokenizer.from_pretrained(path)")
        _mask_token_id(tokenizer)
        self.model = model
        self.tokenizer = tokenizer
        self.top_k = _check_top_k(top_k)
        if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1):
            raise ValueError(f"pad_to_multiple_of must be a positive integer or None, got {pad_to_multiple_of!r}")
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, inputs, top_k=None, targets=None):
        """Fill the mask tokens of `inputs` (a string or a list of strings).

        `top_k`: number of candidates per mask (default: the pipeline's), clipped to the number of
        targets or the vocabulary size. `targets`: a string or list of strings; scores are then
        restricted to those tokens (softmax still over the whole vocabulary, as transformers).
        A target that is not one vocabulary token is replaced by its first sub-token, with a warning.
        """
        top_k = self.top_k if top_k is None else _check_top_k(top_k)
        target_ids = None if targets is None else self.target_ids(targets)
        texts = [inputs] if isinstance(inputs, str) else inputs
        encoding, positions = encode_masked_batch(self.tokenizer, texts, self.pad_to_multiple_of)
        probs = self.mask_probabilities(encoding, positions)
        lengths = encoding["attention_mask"].sum(axis=1)
        results = [self._candidates(encoding["input_ids"][b, :lengths[b]], positions[b], probs[b], top_k, target_ids)
                   for b in range(len(texts))]
        return results[0] if len(results) == 1 else results

    def mask_probabilities(self, encoding, positions):
        """One forward for the batch → per text, a (n_masks, vocab) float64 array of probabilities."""
        longest = int(encoding["attention_mask"].sum(axis=1).max())
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and longest > limit:
            raise ValueError(f"a text has {longest} tokens; the model takes at most {limit} "
                             f"(max_position_embeddings): shorten it")
        if limit is not None:
            encoding = {key: value[:, :limit] for key, value in encoding.items()}  # rounding past the limit
        logits = np.asarray(self.model(**encoding).logits.val)
        return [_softmax(logits[b, pos]) for b, pos in enumerate(positions)]

    def target_ids(self, targets):
        """Vocabulary ids of `targets`, first occurrence order, duplicates dropped."""
        if isinstance(targets, str):
            targets = [targets]
        if len(targets) == 0:
            raise ValueError("targets is empty: pass None to score the whole vocabulary, or at least one token")
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            id_ = vocab.get(target)
            if id_ is None:
                pieces = self.tokenizer(target, add_special_tokens=False)["input_ids"]
                # NB: transformers scores [UNK] here (with a warning) and drops a target that
                # tokenizes to nothing; either way the user asked for a word the model cannot say
                if not pieces or pieces[0] == self.tokenizer.unk_token_id:
                    raise ValueError(f"target {target!r} is not in the vocabulary of {type(self.tokenizer).__name__}"
                                     f" (it tokenizes to {self.tokenizer.convert_ids_to_tokens(pieces)})")
                id_ = pieces[0]
                # NB: as transformers, the first sub-token stands in for the whole word
                warnings.warn(f"target {target!r} is not one vocabulary token; scoring its first sub-token "
                              f"{self.tokenizer.convert_ids_to_tokens(id_)!r} instead", stacklevel=3)
            ids.append(id_)
        return np.array(list(dict.fromkeys(ids)), np.int64)

    def _candidates(self, input_ids, positions, probs, top_k, target_ids):
        """The transformers-format dicts for one text: a list, or one list per mask if it has several."""
        if target_ids is not None:
            probs = probs[:, target_ids]
        k = min(top_k, probs.shape[-1])
        single_mask = len(positions) == 1
        per_mask = []
        for position, row in zip(positions, probs):
            best = np.argsort(-row, kind="stable")[:k]
            candidates = []
            for index in best:
                token = int(index if target_ids is None else target_ids[index])
                filled = input_ids.copy()
                filled[position] = token
                filled = filled[filled != self.tokenizer.pad_token_id]
                # NB: with several masks transformers keeps special tokens, so the other masks show
                sequence = self.tokenizer.decode(filled, skip_special_tokens=single_mask)
                candidates.append({"score": float(row[index]), "token": token,
                                   "token_str": self.tokenizer.decode([token]), "sequence": sequence})
            per_mask.append(candidates)
        return per_mask[0] if single_mask else per_mask


def _check_top_k(top_k):
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    return int(top_k)


def bf_pipeline(task, model=None, tokenizer=None, **kwargs):
    """Build a BF pipeline, as `transformers.pipeline(task, model=..., tokenizer=...)`.

    `model`: a BF model, or a checkpoint folder (loaded with `BFBertForMaskedLM.from_pretrained`,
    and its tokenizer from the same folder unless `tokenizer` is given), or None for the project's
    embedded default (all-MiniLM-L6-v2 with top layers and an MLM head trained here; a small LM, not BERT-base).
    `tokenizer`: a tokenizer or a folder. Other keywords go to the pipeline (`top_k=`).
    """
    if task not in SUPPORTED_TASKS:
        raise ValueError(f"bf_pipeline has no task {task!r}; supported: {', '.join(SUPPORTED_TASKS)}")
    if model is None:
        model = _default_model_path()
    if isinstance(model, (str, os.PathLike)):
        if tokenizer is None:
            tokenizer = model
        model = load_masked_lm(model)
    elif tokenizer is None:
        tokenizer = model.name_or_path if os.path.isdir(getattr(model, "name_or_path", "") or "") else None
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    return BFFillMaskPipeline(model, tokenizer, **kwargs)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model")


def load_tokenizer(name_or_path, **from_pretrained_kwargs):
    """`AutoTokenizer.from_pretrained`, but a folder (or cached hub id) without tokenizer files is an OSError.

    transformers would build a tokenizer from config.json alone, whose vocabulary holds only the
    special tokens: every word would read as [UNK]. A file it cannot parse is an OSError naming the folder.
    """
    from transformers import AutoTokenizer
    from transformers.bf_checkpoint_io import check_readable
    from transformers.utils import cached_file

    if os.path.isdir(name_or_path):
        check_readable(name_or_path)
    hub = {k: v for k, v in from_pretrained_kwargs.items() if k in ("local_files_only", "cache_dir", "revision")}
    found = [name for name in TOKENIZER_FILES
             if cached_file(name_or_path, name, _raise_exceptions_for_missing_entries=False,
                            _raise_exceptions_for_connection_errors=False, **hub) is not None]
    if not found:
        raise OSError(f"no tokenizer in {str(name_or_path)!r} (looked for {', '.join(TOKENIZER_FILES)}): save the "
                      "tokenizer next to the model (tokenizer.save_pretrained(folder)), or pass tokenizer=")
    try:
        return AutoTokenizer.from_pretrained(name_or_path, **from_pretrained_kwargs)
    except Exception as err:  # the tokenizers library raises its own exception types for unreadable files
        raise OSError(f"cannot load the tokenizer in {str(name_or_path)!r} ({str(err).splitlines()[0]}): its files "
                      f"({', '.join(found)}) are damaged or incomplete; save the tokenizer again") from err


def load_masked_lm(name_or_path, dtype=None, **from_pretrained_kwargs):
    """`BFBertForMaskedLM.from_pretrained`, but a checkpoint that lacks weights is a ValueError.

    from_pretrained (as transformers) initialises missing weights at random and only logs a
    warning, so a BertModel checkpoint would predict through a random MLM head. The error names
    what is missing; the other loading warnings (e.g. unused pooler weights) are logged as usual.
    """
    from transformers import BFBertForMaskedLM

    with _loading_log_dropped_on_error():
        model, info = BFBertForMaskedLM.from_pretrained(name_or_path, dtype=dtype, output_loading_info=True,
                                                        **from_pretrained_kwargs)
        if info["missing_keys"]:
            raise ValueError(_missing_weights_message(name_or_path, model.config, info["missing_keys"]))
    return model


def _missing_weights_message(name_or_path, config, missing):
    checkpoint = f"checkpoint {str(name_or_path)!r}"
    saved_as = (config.architectures or [None])[0]  # what the checkpoint's writer says it is
    if saved_as and saved_as not in HEAD_ARCHITECTURES and all(key.startswith(HEAD_PREFIX) for key in missing):
        return (f"{checkpoint} has no MLM head weights ({HEAD_PREFIX}*): it is a {saved_as}, not a BertForMaskedLM; "
                "pass a masked-LM checkpoint")
    shown = ", ".join(missing[:4]) + (f", ... ({len(missing)} in all)" if len(missing) > 4 else "")
    return f"{checkpoint} lacks weights the model needs ({shown}): pass a complete BertForMaskedLM checkpoint"


@contextlib.contextmanager
def _loading_log_dropped_on_error():
    """Hold from_pretrained's log records and log them after the block, unless it raises: its error says it all."""
    from transformers.modeling_bf_utils import logger

    held = []

    def hold(record):
        held.append(record)
        return False

    logger.addFilter(hold)
    try:
        yield
    finally:
        logger.removeFilter(hold)
    for record in held:
        logger.handle(record)


def _default_model_path():
    from .default_model import default_model_path  # ships with bf_bert; builds its folder on first use
    return default_model_path()
