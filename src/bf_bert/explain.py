"""explain(): one forward and ONE all-semiring backprop → an Explanation of a masked prediction.

The quantity q is the logit (or log-probability) of `target` at the mask, minus that of
`contrast` when given ("is" vs "are"). Branches are found by module path — the consumers of
a layer's input made by `...attention.self.query/key/value` and `...attention.output` (the
skip connection) — never by node names. `run` is the graph; `analysis.program` compiles it
with the read-out and the top path into one XLA program per padded length, which `explain`,
`explain_batch` and the dataset analysis share.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

import brunoflow as bf
from brunoflow import func as F
from brunoflow.net import compiled

from .analysis.program import branch_of_path, compiled_program, parameters_of
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
    # eagerly (the top-path stage), the forward is one compiled program, not a kernel per op: one
    # compile for a new length, not ~90, and one program to load from the disk cache. The ids and
    # the position go in as arrays, so one program serves every word and mask position
    embeddings, (value, hidden_states) = _swept(model, masked_quantity, input_ids, attention_mask, token_type_ids,
                                                (position, target_id, contrast_id), quantity, values)
    return value, embeddings, hidden_states


def run_batch(model, input_ids, attention_mask, token_type_ids, positions, target_ids, contrast_ids, quantity,
              values=("max_path",), prepare=False):
    """`run` for a batch (B, L) of sentences, each with its own mask position and words, as one
    graph and one backprop: from the sentences' q stacked (B,), with every element seeded.
    Sentences share no path, so each one's states and top path are what `run` would give it
    alone, while the batch's ops dispatch once. Returns (the stacked q, the embeddings leaf
    (B, L, H), per sentence its (1, L, H) row of the encoder's output and its q, hidden states).
    The rows and the stack are the batch's own nodes: a sentence's graph as `run` builds it is
    the rest. `prepare`: only start compiling its forward (`compiled.forward`'s prepare); None."""
    swept = _swept(model, masked_quantities, input_ids, attention_mask, token_type_ids,
                   (positions, target_ids, contrast_ids), quantity, values, prepare)
    if prepare:
        return None
    embeddings, (stacked, rows, quantities, hidden_states) = swept
    return stacked, embeddings, rows, quantities, hidden_states


def _swept(model, function, input_ids, attention_mask, token_type_ids, words, quantity, values, prepare=False):
    """(the embeddings leaf, what `function` returned) after a backprop from its first item: the
    function runs as one compiled program, or eagerly when traced (a program's step) or training.
    `words` (mask positions, target and contrast ids, None for no contrast) go in as int32 arrays."""
    words = tuple(None if w is None else jnp.asarray(w, jnp.int32) for w in words)
    table = model.get_input_embeddings().weight.val
    embeddings = bf.Node(jnp.take(table, jnp.asarray(input_ids), axis=0), name="inputs_embeds")
    args = (embeddings, attention_mask, token_type_ids, *words)
    found = compiled.forward(model, args, {"quantity": quantity}, function=function, values_now=True,
                             prepare=prepare)
    if prepare:
        return None
    if found is compiled.EAGER:
        with model.as_root():
            found = function(model, *args, quantity)
    # weights are constants here: no kernel runs for them
    found[0].backprop(values_to_compute=values, inputs=[embeddings])
    return embeddings, found


def masked_quantities(model, embeddings, attention_mask, token_type_ids, positions, target_ids, contrast_ids,
                      quantity):
    """`masked_quantity` of each sentence of a batch: (the qs stacked, the rows, the qs, hidden states)."""
    out = model.bert(inputs_embeds=embeddings, attention_mask=attention_mask, token_type_ids=token_type_ids,
                     output_hidden_states=True)
    rows, quantities = [], []
    for b in range(embeddings.shape[0]):
        row = out.last_hidden_state[jnp.full((1,), b, jnp.int32)]  # an index array: one kernel for every row
        rows.append(row)
        quantities.append(quantity_at_mask(model, row, positions[b], target_ids[b],
                                           None if contrast_ids is None else contrast_ids[b], quantity))
    return F.stack(quantities), rows, quantities, out.hidden_states


def masked_quantity(model, embeddings, attention_mask, token_type_ids, position, target_id, contrast_id, quantity):
    """(q, the hidden states) from the input embeddings: the encoder, then the head at the mask
    (a root call of `model`: paths from it)."""
    out = model.bert(inputs_embeds=embeddings, attention_mask=attention_mask, token_type_ids=token_type_ids,
                     output_hidden_states=True)
    return quantity_at_mask(model, out.last_hidden_state, position, target_id, contrast_id, quantity), out.hidden_states


def quantity_at_mask(model, last_hidden_state, position, target_id, contrast_id, quantity):
    """q from the encoder's output (1, S, H): the head runs at the mask only, as other
    positions' logits never reach q. Called inside `model.as_root()`."""
    at_mask = last_hidden_state[jnp.zeros((1,), jnp.int32), jnp.asarray(position)[None]]
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
    return value


def _words(target_id, contrast_id):
    """The vocabulary rows a logit quantity reads: [target] or [target, contrast] (ids may be traced)."""
    ids = [target_id] if contrast_id is None else [target_id, contrast_id]
    return jnp.stack([jnp.asarray(i, jnp.int32) for i in ids])


def explain(model, tokenizer, text, target, contrast=None, quantity="logit", bucket=16):
    """Explain the prediction of `target` (vs `contrast`) at the one mask token of `text`.

    Runs the compiled program of `analysis.program` (forward, one all-semiring backprop,
    read-out and the exact top path in one XLA program) on the text padded to a multiple of
    `bucket` tokens: every text of a bucket reuses one compile. Any float dtype: |grad| and
    entropy path sums are kept scaled (brunoflow.Scaled), so they stay finite in float32 where
    their values pass 1e38; abs-grad is reported as its log10.
    """
    check_model(model, quantity)
    ids = encode(tokenizer, text)  # a bad text fails here, before any compile
    target_id = word_id(tokenizer, target)
    contrast_id = word_id(tokenizer, contrast, "contrast") if contrast is not None else None
    program = compiled_program(model, quantity, contrast_id is not None, VALUES)
    return explain_one(program, model, tokenizer, text, ids, (target, target_id), (contrast, contrast_id), bucket)


def encode(tokenizer, text):
    """The text's token ids (1-d), checked to hold exactly one mask."""
    ids = np.asarray(tokenizer(text, return_tensors="np")["input_ids"])
    mask_position(tokenizer, ids, text)
    return ids[0]


def explain_one(program, model, tokenizer, text, ids, target, contrast, bucket):
    """One encoded text through a compiled Program → Explanation; target/contrast are (word, id)
    pairs (contrast (None, None) without one). The top path is there when the program ran max_path."""
    (target, target_id), (contrast, contrast_id) = target, contrast
    position = mask_position(tokenizer, ids[None], text)
    padded, mask = pad_to_bucket(ids, bucket, model.config.max_position_embeddings, tokenizer.pad_token_id or 0)
    batch = program(parameters_of(model), padded[None], mask[None], np.zeros_like(mask)[None],
                    *(np.asarray([v], np.int32) for v in (position, target_id, contrast_id or 0)))
    output = jax.tree.map(lambda a: np.asarray(a)[0], batch)  # the one sentence, on the host
    readout = output.readout
    layout = program.layouts.get(len(padded))
    path = _path(layout, output) if layout is not None and len(output.path_positions) else []
    layers = []
    for layer in range(model.config.num_hidden_layers):
        layer_path = f"{model.base_model_prefix}.encoder.layer.{layer}"
        token, branch = None, None
        for (node, hop), (_, following) in zip(path, path[1:]):
            if node == layout.layer_inputs[layer]:
                token, branch = hop.position[1], branch_of_path(following.module_path, layer_path)
        layers.append(layer_attribution(readout, layer, layer_path, len(ids), top_path_token=token,
                                        top_path_branch=branch))
    return Explanation(text=text, tokens=tokenizer.convert_ids_to_tokens(ids.tolist()), mask_position=position,
                       target=target, contrast=contrast, quantity=program.quantity, value=float(readout.value),
                       tokens_attribution=token_attribution(readout, len(ids)), layers=layers,
                       top_path=[hop for _, hop in reversed(path)])


def _path(layout, output):
    """[(node number in the layout, Hop)] along the top path of one sentence's Output (host
    arrays), in creation order (embeddings first)."""
    positions, values = output.path_positions, output.path_values
    return [(k, Hop(module_path=path, op=op, value=float(values[k]),
                    position=tuple(int(i) for i in np.unravel_index(int(positions[k]), shape))))
            for k, (path, op, shape) in enumerate(layout.nodes) if positions[k] >= 0]


def pad_to_bucket(ids, bucket, limit, pad_id):
    """(ids padded to the next multiple of `bucket`, capped at `limit`; the attention mask)."""
    if bucket < 1:
        raise ValueError(f"bucket must be >= 1, got {bucket}")
    length = min(limit, bucket * math.ceil(len(ids) / bucket))
    if len(ids) > length:
        raise ValueError(f"the text has {len(ids)} tokens, more than max_position_embeddings ({limit})")
    padded = np.full(length, pad_id, np.int32)
    padded[:len(ids)] = ids
    return padded, (np.arange(length) < len(ids)).astype(np.int32)


def token_attribution(readout, length=None):
    """The per-token columns of one sentence's Readout (host arrays), cut to its first `length` tokens."""
    return TokenAttribution(
        grad_norm=readout.grad_norm[:length], grad_x_input=readout.grad_x_input[:length],
        log10_abs_grad=readout.log_abs_grad[:length] / np.log(10), entropy=readout.entropy[:length],
        max_grad=readout.max_grad[:length], top_path=readout.top_path[:length])


def layer_attribution(readout, layer, module_path, length=None, top_path_token=None, top_path_branch=None):
    """One layer's branches from one sentence's Readout (host arrays), its first `length` tokens."""
    names = list(ATTENTION_BRANCHES) + ["other"]
    oplus = [names[int(c)] for c in readout.oplus[layer][:length]]
    buckets = [dict(zip(ATTENTION_BRANCHES, map(float, row))) for row in readout.buckets[layer][:length]]
    return LayerAttribution(
        layer=layer, module_path=module_path,
        attention_share=dict(zip(ATTENTION_BRANCHES, map(float, readout.attention_share[layer]))),
        attention_entropy=dict(zip(ATTENTION_BRANCHES, map(float, readout.attention_entropy[layer]))),
        mlp_share=dict(zip(MLP_BRANCHES, map(float, readout.mlp_share[layer]))),
        mlp_entropy=dict(zip(MLP_BRANCHES, map(float, readout.mlp_entropy[layer]))),
        oplus=oplus, bucket_sum=[max(b, key=b.__getitem__) for b in buckets], buckets=buckets,
        top_path_token=top_path_token, top_path_branch=top_path_branch)
