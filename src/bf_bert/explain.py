"""explain(): one forward and ONE all-semiring backprop → an Explanation of a masked prediction.

The quantity q is the logit (or log-probability) of `target` at the mask, minus that of
`contrast` when given ("is" vs "are"). Branches are found by module path — the consumers of
a layer's input made by `...attention.self.query/key/value` and `...attention.output` (the
skip connection) — never by node names. Values are read once, after the backprop.
"""

import numpy as np

import brunoflow as bf
from brunoflow import func as F
from brunoflow.ad.backprop import ancestors

from .explanation import (ATTENTION_BRANCHES, MLP_BRANCHES, Explanation, Hop, LayerAttribution,
                          TokenAttribution)

QUANTITIES = ("logit", "log_prob")
# consumer module path, relative to its layer → the branch it is
_BRANCH_OF = {"attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
              "attention.output": "skip", "intermediate.dense": "mlp", "output": "skip"}


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


def explain(model, tokenizer, text, target, contrast=None, quantity="logit"):
    """Explain the prediction of `target` (vs `contrast`) at the one mask token of `text`.

    For |grad| and entropy on real models, load the model in float64 (see README): their
    path sums pass float32's range within a few layers; a clear error says so if they do.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    if not hasattr(model, "cls") or not hasattr(model, "bert"):
        raise TypeError(f"explain needs a BF masked-LM model (BFBertForMaskedLM), got {type(model).__name__}")
    encoded = {k: np.asarray(v) for k, v in tokenizer(text, return_tensors="np").items()}
    position = mask_position(tokenizer, encoded["input_ids"], text)
    target_id = word_id(tokenizer, target)
    contrast_id = word_id(tokenizer, contrast, "contrast") if contrast is not None else None

    table = np.asarray(model.get_input_embeddings().weight.val)
    embeddings = bf.Node(table[encoded["input_ids"]], name="inputs_embeds")
    out = model(inputs_embeds=embeddings, attention_mask=encoded.get("attention_mask"),
                token_type_ids=encoded.get("token_type_ids"), output_hidden_states=True)
    scores = out.logits[0, position]
    if quantity == "log_prob":
        scores = F.log_softmax(scores, axis=-1)
    value = scores[target_id] - scores[contrast_id] if contrast_id is not None else scores[target_id]
    value.backprop(inputs=[embeddings])  # weights are constants here: no kernel runs for them

    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())
    attribution = _token_attribution(embeddings)
    hops, walk = _top_path(embeddings)
    layer_outputs = _last_node_per_module(value)
    layers = [_layer_attribution(model, out.hidden_states[layer], layer, layer_outputs, walk)
              for layer in range(model.config.num_hidden_layers)]
    return Explanation(text=text, tokens=tokens, mask_position=position, target=target, contrast=contrast,
                       quantity=quantity, value=float(np.asarray(value.val)), tokens_attribution=attribution,
                       layers=layers, top_path=hops)


def _token_attribution(embeddings):
    grad = np.asarray(embeddings.grad)[0]
    a = np.asarray(embeddings.abs_val_grad)[0].sum(axis=-1)
    if not np.isfinite(a).all():
        raise ValueError(f"abs_val_grad overflowed {embeddings.dtype} (path sums grow ~1e6 per layer on real models): "
                         "load the model with from_pretrained(..., dtype='float64') after "
                         "jax.config.update('jax_enable_x64', True)")
    h = np.asarray(embeddings.entropy_wrt_output)[0].sum(axis=-1)
    return TokenAttribution(
        grad_norm=np.linalg.norm(grad, axis=-1), grad_x_input=(grad * np.asarray(embeddings.val)[0]).sum(axis=-1),
        abs_grad=a, entropy=_entropy(a, h),
        max_grad=np.asarray(embeddings.max_grad_of_output_wrt_node[0])[0].max(axis=-1))


def _entropy(a, h):
    """Entropy of pooled paths from the summed entropy-semiring pair (a, h): h/a + log a."""
    safe = np.where(a > 0, a, 1.0)
    return np.where(a > 0, h / safe + np.log(safe), 0.0)


def _top_path(embeddings):
    """(Hops listed output first, the raw walk from the embedding unit whose top path is largest)."""
    hi = np.asarray(embeddings.max_grad_of_output_wrt_node[0])
    start = np.unravel_index(int(np.argmax(hi)), hi.shape)
    hops = bf.top_path(embeddings, start)
    return [Hop(module_path=h.node.module_path, op=h.node.op.name if h.node.op else "inputs_embeds",
                position=tuple(int(i) for i in h.index), value=h.value) for h in reversed(hops)], hops


def _last_node_per_module(root):
    """module path → the last node made there (a module's output), over the whole graph."""
    last = {}
    for node in sorted(ancestors(root), key=lambda n: n._order):
        last[node.module_path] = node
    return last


def _branches(node, layer_path):
    """For each consumer of `node` (in get_parents order), the branch name it is in this layer."""
    names = []
    for consumer in node.get_parents():
        relative = consumer.module_path[len(layer_path) + 1:] if consumer.module_path.startswith(layer_path) else ""
        names.append(_BRANCH_OF.get(relative, "other"))
    return names


def _shares_and_entropy(node, layer_path, branches):
    names = _branches(node, layer_path)
    mass = {b: 0.0 for b in branches}
    pair = {b: np.zeros(2) for b in branches}
    for name, (_, (a, h)) in zip(names, bf.consumer_flows(node, "entropy")):
        if name in mass:
            mass[name] += float(np.asarray(a).sum())
            pair[name] += (float(np.asarray(a).sum()), float(np.asarray(h).sum()))
    total = sum(mass.values()) or 1.0
    return ({b: mass[b] / total for b in branches},
            {b: float(_entropy(np.array(pair[b][0]), np.array(pair[b][1]))) for b in branches})


def _credit(node, layer_path):
    """oplus and bucket_sum per token of a layer input (batch row 0)."""
    names = np.array(_branches(node, layer_path) + ["none"])  # index -1: nothing flowed
    hi, winner = (np.asarray(v)[0] for v in node.max_grad_of_output_wrt_node)
    branch = names[winner]
    oplus = [str(branch[t, int(np.argmax(hi[t]))]) for t in range(hi.shape[0])]
    buckets = [{b: float(hi[t][branch[t] == b].sum()) for b in ATTENTION_BRANCHES} for t in range(hi.shape[0])]
    bucket_sum = [max(ATTENTION_BRANCHES, key=bucket.__getitem__) for bucket in buckets]
    return oplus, bucket_sum, buckets


def _layer_attribution(model, layer_input, layer, layer_outputs, walk):
    layer_path = f"{model.base_model_prefix}.encoder.layer.{layer}"
    attention_output = layer_outputs[f"{layer_path}.attention.output.LayerNorm"]
    attention_share, attention_entropy = _shares_and_entropy(layer_input, layer_path, ATTENTION_BRANCHES)
    mlp_share, mlp_entropy = _shares_and_entropy(attention_output, layer_path, MLP_BRANCHES)
    oplus, bucket_sum, buckets = _credit(layer_input, layer_path)
    token, branch = None, None
    for here, nxt in zip(walk, walk[1:]):
        if here.node is layer_input:
            token = int(here.index[1])
            branch = _BRANCH_OF.get(nxt.node.module_path[len(layer_path) + 1:], "other")
    return LayerAttribution(layer=layer, module_path=layer_path, attention_share=attention_share,
                            attention_entropy=attention_entropy, mlp_share=mlp_share, mlp_entropy=mlp_entropy,
                            oplus=oplus, bucket_sum=bucket_sum, buckets=buckets, top_path_token=token,
                            top_path_branch=branch)
