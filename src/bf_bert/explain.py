"""explain(): one forward and ONE all-semiring backprop → an Explanation of a masked prediction.

The quantity q is the logit (or log-probability) of `target` at the mask, minus that of
`contrast` when given ("is" vs "are"). Branches are found by module path — the consumers of
a layer's input made by `...attention.self.query/key/value` and `...attention.output` (the
skip connection) — never by node names. `analysis.program.read_out` computes every number
as device arrays with no host reads, so the same read-out runs inside the compiled programs of
`explain_batch` and the dataset analysis.
"""

import jax.numpy as jnp
import numpy as np

import brunoflow as bf
from brunoflow import func as F

from .analysis.program import branch_of, read_out
from .explanation import ATTENTION_BRANCHES, MLP_BRANCHES, Explanation, Hop, LayerAttribution, TokenAttribution

QUANTITIES = ("logit", "log_prob")
# max_grad (operation-granular, as the original) credits branches; max_path gives the exact top path
VALUES = ("grad", "abs_val_grad", "entropy", "max_grad", "max_path")


def word_id(tokenizer, word, role="target"):
    """The vocabulary id of a single-token word, or a ValueError that says what to pick instead."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise ValueError(f"{role} {word!r} is not a single token of the vocabulary (it becomes {pieces}); "
                         "pick a word the tokenizer keeps whole")
    return ids[0]


def mask_position(tokenizer, input_ids, text):
    positions = np.flatnonzero(np.asarray(input_ids)[0] == tokenizer.mask_token_id)
    if len(positions) != 1:
        raise ValueError(f"explain needs exactly one {tokenizer.mask_token} in the text, found {len(positions)}: "
                         f"{text!r}")
    return int(positions[0])


def check_model(model, quantity):
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    if not hasattr(model, "cls") or not hasattr(model, "bert"):
        raise TypeError(f"explain needs a BF masked-LM model (BFBertForMaskedLM), got {type(model).__name__}")
    random_head = [k for k in getattr(model, "newly_initialized", ()) if k.startswith("cls.")]
    if random_head:
        raise ValueError(f"the model's MLM head was not in its checkpoint ({', '.join(random_head[:3])}, ...): it is "
                         "randomly initialised, so explanations of its predictions mean nothing; load a masked-LM "
                         "checkpoint (or, for a head you fitted in memory, clear model.newly_initialized)")


def run(model, input_ids, attention_mask, token_type_ids, position, target_id, contrast_id, quantity,
        values=VALUES):
    """Forward + one all-semiring backprop from q; returns (q, the embeddings leaf, hidden states).

    Array arguments may be traced: the position and ids index through gathers, not Python ints.
    """
    table = model.get_input_embeddings().weight.val
    embeddings = bf.Node(jnp.take(table, jnp.asarray(input_ids), axis=0), name="inputs_embeds")
    with model.as_root():  # the head runs at the mask only: other positions' logits never reach q
        out = model.bert(inputs_embeds=embeddings, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         output_hidden_states=True)
        at_mask = out.last_hidden_state[jnp.zeros((1,), jnp.int32), jnp.asarray(position)[None]]
        if quantity == "logit":  # decode q's words only, in _words' order: no other logit reaches q
            predictions = model.cls.predictions
            scores = predictions.decoder(predictions.transform(at_mask), rows=_words(target_id, contrast_id))[0]
            target_at, contrast_at = 0, (None if contrast_id is None else 1)
        else:  # log-softmax reads every logit
            scores = F.log_softmax(model.cls(at_mask)[0], axis=-1)
            target_at, contrast_at = jnp.asarray(target_id), (None if contrast_id is None else jnp.asarray(contrast_id))
    value = scores[target_at]
    if contrast_at is not None:
        value = value - scores[contrast_at]
    # weights are constants here: no kernel runs for them
    value.backprop(values_to_compute=values, inputs=[embeddings])
    return value, embeddings, out.hidden_states


def _words(target_id, contrast_id):
    """The vocabulary rows a logit quantity reads: [target] or [target, contrast] (ids may be traced)."""
    ids = [target_id] if contrast_id is None else [target_id, contrast_id]
    return jnp.stack([jnp.asarray(i, jnp.int32) for i in ids])


def explain(model, tokenizer, text, target, contrast=None, quantity="logit"):
    """Explain the prediction of `target` (vs `contrast`) at the one mask token of `text`.

    For |grad| and entropy on real models, load the model in float64 (see README): their
    path sums pass float32's range within a few layers; a clear error says so if they do.
    """
    check_model(model, quantity)
    encoded = {k: np.asarray(v) for k, v in tokenizer(text, return_tensors="np").items()}
    position = mask_position(tokenizer, encoded["input_ids"], text)
    target_id = word_id(tokenizer, target)
    contrast_id = word_id(tokenizer, contrast, "contrast") if contrast is not None else None
    value, embeddings, hidden_states = run(model, encoded["input_ids"], encoded.get("attention_mask"),
                                           encoded.get("token_type_ids"), position, target_id, contrast_id,
                                           quantity)
    arrays = {k: np.asarray(v) for k, v in read_out(model, value, embeddings, hidden_states)._asdict().items()}
    check_finite(arrays, embeddings.dtype)
    hops, walk = _top_path(embeddings)
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())
    layers = [_layer_attribution(model, arrays, layer, hidden_states[layer], walk)
              for layer in range(model.config.num_hidden_layers)]
    return Explanation(text=text, tokens=tokens, mask_position=position, target=target, contrast=contrast,
                       quantity=quantity, value=float(arrays["value"]), tokens_attribution=token_attribution(arrays),
                       layers=layers, top_path=hops)


def check_finite(arrays, dtype):
    if not np.isfinite(arrays["abs_grad"]).all():
        raise ValueError(f"abs_val_grad overflowed {dtype} (path sums grow ~1e6 per layer on real models): load "
                         "the model with from_pretrained(..., dtype='float64') after "
                         "jax.config.update('jax_enable_x64', True)")


def token_attribution(arrays, length=None):
    return TokenAttribution(**{k: arrays[k][:length] for k in TokenAttribution.__dataclass_fields__})


def _top_path(embeddings):
    """(Hops listed output first, the raw walk from the embedding unit whose top path is largest)."""
    hi = np.asarray(embeddings.max_path_of_output_wrt_node[0])
    start = np.unravel_index(int(np.argmax(hi)), hi.shape)
    walk = bf.top_path(embeddings, start)
    return [Hop(module_path=h.node.module_path, op=h.node.op.name if h.node.op else "inputs_embeds",
                position=tuple(int(i) for i in h.index), value=h.value) for h in reversed(walk)], walk


def layer_attribution(arrays, layer, module_path, length=None, top_path_token=None, top_path_branch=None):
    names = list(ATTENTION_BRANCHES) + ["other"]
    oplus = [names[int(c)] for c in arrays["oplus"][layer][:length]]
    buckets = [dict(zip(ATTENTION_BRANCHES, map(float, row))) for row in arrays["buckets"][layer][:length]]
    return LayerAttribution(
        layer=layer, module_path=module_path,
        attention_share=dict(zip(ATTENTION_BRANCHES, map(float, arrays["attention_share"][layer]))),
        attention_entropy=dict(zip(ATTENTION_BRANCHES, map(float, arrays["attention_entropy"][layer]))),
        mlp_share=dict(zip(MLP_BRANCHES, map(float, arrays["mlp_share"][layer]))),
        mlp_entropy=dict(zip(MLP_BRANCHES, map(float, arrays["mlp_entropy"][layer]))),
        oplus=oplus, bucket_sum=[max(b, key=b.__getitem__) for b in buckets], buckets=buckets,
        top_path_token=top_path_token, top_path_branch=top_path_branch)


def _layer_attribution(model, arrays, layer, layer_input, walk):
    layer_path = f"{model.base_model_prefix}.encoder.layer.{layer}"
    token, branch = None, None
    for here, nxt in zip(walk, walk[1:]):
        if here.node is layer_input:
            token, branch = int(here.index[1]), branch_of(nxt.node, layer_path)
    return layer_attribution(arrays, layer, layer_path, top_path_token=token, top_path_branch=branch)
