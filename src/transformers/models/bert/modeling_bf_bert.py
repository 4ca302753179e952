"""BERT on brunoflow: every BERT head, with transformers' names, configs and checkpoints.

Read top to bottom like `modeling_bert.py`: embeddings, attention, the layer, the encoder,
the pooler and heads, then one class per task. Attribute paths are checkpoint keys, and the
module that makes a Node stamps its path on it (`bert.encoder.layer.3.attention.self.query`),
so an analysis finds a layer's query/key/value/skip branches by path after one backprop.
Infrastructure (loading, saving, masks, init) lives in `modeling_bf_utils.py`.
"""

import jax.numpy as jnp
import numpy as np

from brunoflow import Node, Parameter
from brunoflow import func as F
from brunoflow.ad.node import as_array, value_of
from brunoflow.net import Dropout, Embedding, LayerNorm, Linear, ModuleList, Network
from brunoflow.net.ids import check_in_range
from transformers import BertConfig

from ...bf_activations import get_activation
from ...modeling_bf_outputs import (BFBaseModelOutputWithPoolingAndCrossAttentions, BFBertForPreTrainingOutput,
                                    BFMaskedLMOutput, BFMultipleChoiceModelOutput, BFNextSentencePredictorOutput,
                                    BFQuestionAnsweringModelOutput, BFSequenceClassifierOutput,
                                    BFTokenClassifierOutput)
from ...modeling_bf_utils import BFPreTrainedModel, host_int_array

IGNORE_INDEX = -100  # labels that carry no loss, as torch's CrossEntropyLoss default


class BFBertEmbeddings(Network):
    """word + token-type + absolute position embeddings, then LayerNorm and dropout."""

    def __init__(self, config):
        super().__init__()
        if getattr(config, "position_embedding_type", "absolute") != "absolute":
            raise NotImplementedError(f"position_embedding_type={config.position_embedding_type!r}: "
                                      "BF BERT implements 'absolute' position embeddings only")
        self.word_embeddings = Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class BFBertSelfAttention(Network):
    """Scaled dot-product attention over N heads, written with einsum so no transposes enter the graph."""

    def __init__(self, config):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f"hidden_size ({config.hidden_size}) must be a multiple of num_attention_heads "
                             f"({config.num_attention_heads})")
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.scaling = self.attention_head_size ** -0.5
        self.query = Linear(config.hidden_size, self.all_head_size)
        self.key = Linear(config.hidden_size, self.all_head_size)
        self.value = Linear(config.hidden_size, self.all_head_size)
        self.dropout = Dropout(config.attention_probs_dropout_prob)

    def _split_heads(self, x):
        batch, seq, _ = x.shape
        return F.reshape(x, (batch, seq, self.num_attention_heads, self.attention_head_size))

    def forward(self, hidden_states, attention_mask=None, head_mask=None):
        query = self._split_heads(self.query(hidden_states))
        key = self._split_heads(self.key(hidden_states))
        value = self._split_heads(self.value(hidden_states))
        scores = F.einsum("bqnd,bknd->bnqk", query, key) * self.scaling
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = self.dropout(F.softmax(scores, axis=-1))
        if head_mask is not None:
            probs = probs * head_mask
        context = F.einsum("bnqk,bknd->bqnd", probs, value)
        batch, seq = hidden_states.shape[:2]
        return F.reshape(context, (batch, seq, self.all_head_size)), probs


class BFBertSelfOutput(Network):
    """dense, dropout, then LayerNorm of the sum with the sub-block's input (the skip branch)."""

    def __init__(self, config, in_features=None):
        super().__init__()
        self.dense = Linear(in_features or config.hidden_size, config.hidden_size)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class BFBertAttention(Network):
    def __init__(self, config):
        super().__init__()
        self.self = BFBertSelfAttention(config)
        self.output = BFBertSelfOutput(config)

    def forward(self, hidden_states, attention_mask=None, head_mask=None):
        context, probs = self.self(hidden_states, attention_mask, head_mask)
        return self.output(context, hidden_states), probs


class BFBertIntermediate(Network):
    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def forward(self, hidden_states):
        return self.intermediate_act_fn(self.dense(hidden_states))


class BFBertOutput(BFBertSelfOutput):
    """The MLP's closing step: the same residual LayerNorm, from the intermediate width."""

    def __init__(self, config):
        super().__init__(config, in_features=config.intermediate_size)


class BFBertLayer(Network):
    def __init__(self, config):
        super().__init__()
        if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
            raise NotImplementedError("BF BERT is an encoder: is_decoder / add_cross_attention are not supported")
        self.attention = BFBertAttention(config)
        self.intermediate = BFBertIntermediate(config)
        self.output = BFBertOutput(config)

    def forward(self, hidden_states, attention_mask=None, head_mask=None):
        attention_output, probs = self.attention(hidden_states, attention_mask, head_mask)
        return self.output(self.intermediate(attention_output), attention_output), probs


class BFBertEncoder(Network):
    def __init__(self, config):
        super().__init__()
        self.layer = ModuleList([BFBertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states, attention_mask=None, head_masks=None, output_attentions=False,
                output_hidden_states=False):
        all_hidden, all_attentions = [hidden_states], []
        for layer, head_mask in zip(self.layer, head_masks or [None] * len(self.layer)):
            hidden_states, probs = layer(hidden_states, attention_mask, head_mask)
            all_hidden.append(hidden_states)
            all_attentions.append(probs)
        return (hidden_states, tuple(all_hidden) if output_hidden_states else None,
                tuple(all_attentions) if output_attentions else None)


class BFBertPooler(Network):
    """tanh(dense(hidden state of the first token))."""

    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states):
        return F.tanh(self.dense(hidden_states[:, 0]))


class BFBertPredictionHeadTransform(Network):
    def __init__(self, config):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = get_activation(config.hidden_act)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BFBertLMPredictionHead(Network):
    """transform, then the decoder: its weight is tied to the word embeddings, its bias is `bias`."""

    def __init__(self, config):
        super().__init__()
        self.bias = Parameter(jnp.zeros(config.vocab_size))
        self.transform = BFBertPredictionHeadTransform(config)
        self.decoder = Linear(config.hidden_size, config.vocab_size)
        self.decoder.bias = self.bias  # one parameter under both checkpoint names, as in transformers

    def forward(self, hidden_states):
        return self.decoder(self.transform(hidden_states))


class BFBertOnlyMLMHead(Network):
    def __init__(self, config):
        super().__init__()
        self.predictions = BFBertLMPredictionHead(config)

    def forward(self, sequence_output):
        return self.predictions(sequence_output)


class BFBertOnlyNSPHead(Network):
    def __init__(self, config):
        super().__init__()
        self.seq_relationship = Linear(config.hidden_size, 2)

    def forward(self, pooled_output):
        return self.seq_relationship(pooled_output)


class BFBertPreTrainingHeads(Network):
    def __init__(self, config):
        super().__init__()
        self.predictions = BFBertLMPredictionHead(config)
        self.seq_relationship = Linear(config.hidden_size, 2)

    def forward(self, sequence_output, pooled_output):
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


class BFBertPreTrainedModel(BFPreTrainedModel):
    config_class = BertConfig
    base_model_prefix = "bert"


class BFBertModel(BFBertPreTrainedModel):
    """The encoder: embeddings, N layers, and (optionally) the pooler. Inputs are checked on the
    host before any kernel runs (skipped for values traced by jax.jit)."""

    def __init__(self, config, add_pooling_layer=True):
        super().__init__(config)
        self.embeddings = BFBertEmbeddings(config)
        self.encoder = BFBertEncoder(config)
        self.pooler = BFBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        config = self.config
        batch, seq = self._check_inputs(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        if attention_mask is None:
            attention_mask = np.ones((batch, seq), np.int32)
        if token_type_ids is None:
            token_type_ids = np.zeros((batch, seq), np.int32)
        if position_ids is None:
            position_ids = np.arange(seq, dtype=np.int32)[None]
        embedding_output = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids,
                                           position_ids=position_ids, inputs_embeds=inputs_embeds)
        extended_mask = self.get_extended_attention_mask(value_of(attention_mask), self.dtype)
        head_masks = self.get_head_mask(head_mask, config.num_hidden_layers, config.num_attention_heads)
        output_attentions = _flag(output_attentions, config.output_attentions)
        sequence_output, hidden_states, attentions = self.encoder(
            embedding_output, extended_mask, head_masks, output_attentions=output_attentions,
            output_hidden_states=_flag(output_hidden_states, config.output_hidden_states))
        pooled_output = self.pooler(sequence_output) if self.pooler is not None else None
        # an encoder has no cross-attention layers: torch's BertModel then returns an empty tuple
        return _pack(BFBaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output, pooler_output=pooled_output, hidden_states=hidden_states,
            attentions=attentions, cross_attentions=() if output_attentions else None), return_dict, config)

    def _check_inputs(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds):
        """(batch, seq) of the inputs, after checking every rule a kernel would otherwise break silently."""
        config = self.config
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds (got "
                             f"{'both' if input_ids is not None else 'neither'})")
        if input_ids is not None:
            ids, shape = host_int_array(input_ids, "input_ids", ndim=2, hint="(batch, seq); add a batch axis "
                                        "with ids[None] for one sentence")
            if ids is not None:  # traced by jax.jit: no values to check
                check_in_range(ids, config.vocab_size, "input_ids", "vocab_size")
        else:
            shape = tuple(np.shape(value_of(inputs_embeds)))
            if len(shape) != 3 or shape[2] != config.hidden_size:
                raise ValueError(f"inputs_embeds must have shape (batch, seq, hidden_size={config.hidden_size}), "
                                 f"got {shape}")
            shape = shape[:2]
        if shape[1] > config.max_position_embeddings:
            raise ValueError(f"sequence length {shape[1]} exceeds max_position_embeddings "
                             f"({config.max_position_embeddings}): truncate the input (tokenizer(..., "
                             "truncation=True))")
        for name, value, limit, limit_name in (
                ("attention_mask", attention_mask, None, None),
                ("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size"),
                ("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings")):
            if value is not None:
                values, got = host_int_array(value, name, ndim=None)
                if got != shape and not (name == "position_ids" and got in ((1, shape[1]), (shape[1],))):
                    raise ValueError(f"{name} must have the shape of the input ids {shape}, got {got}")
                if limit is not None and values is not None:
                    check_in_range(values, limit, name, limit_name)
        return shape


class BFBertForPreTraining(BFBertPreTrainedModel):
    _label_padding = {"labels": IGNORE_INDEX, "next_sentence_label": None}
    _tied_weights_keys = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}

    def __init__(self, config):
        super().__init__(config)
        self.bert = BFBertModel(config)
        self.cls = BFBertPreTrainingHeads(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, next_sentence_label=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        outputs = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                            output_attentions, output_hidden_states, return_dict=True)
        prediction_scores, seq_relationship_score = self.cls(outputs.last_hidden_state, outputs.pooler_output)
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = (_token_cross_entropy(prediction_scores, labels, "labels")
                    + _token_cross_entropy(seq_relationship_score, next_sentence_label, "next_sentence_label"))
        return _pack(BFBertForPreTrainingOutput(
            loss=loss, prediction_logits=prediction_scores, seq_relationship_logits=seq_relationship_score,
            hidden_states=outputs.hidden_states, attentions=outputs.attentions), return_dict, self.config)


class BFBertForMaskedLM(BFBertPreTrainedModel):
    _label_padding = {"labels": IGNORE_INDEX}
    _tied_weights_keys = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}

    def __init__(self, config):
        super().__init__(config)
        self.bert = BFBertModel(config, add_pooling_layer=False)
        self.cls = BFBertOnlyMLMHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        outputs = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                            output_attentions, output_hidden_states, return_dict=True)
        prediction_scores = self.cls(outputs.last_hidden_state)
        loss = _token_cross_entropy(prediction_scores, labels, "labels") if labels is not None else None
        return _pack(BFMaskedLMOutput(loss=loss, logits=prediction_scores, hidden_states=outputs.hidden_states,
                                      attentions=outputs.attentions), return_dict, self.config)


class BFBertForNextSentencePrediction(BFBertPreTrainedModel):
    _label_padding = {"labels": None}

    def __init__(self, config):
        super().__init__(config)
        self.bert = BFBertModel(config)
        self.cls = BFBertOnlyNSPHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        outputs = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                            output_attentions, output_hidden_states, return_dict=True)
        logits = self.cls(outputs.pooler_output)
        loss = _token_cross_entropy(logits, labels, "labels") if labels is not None else None
        return _pack(BFNextSentencePredictorOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                                   attentions=outputs.attentions), return_dict, self.config)


def _classifier_dropout(config):
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


class BFBertForSequenceClassification(BFBertPreTrainedModel):
    """Pooled output → dropout → classifier; the loss follows `config.problem_type` as transformers'."""

    _label_padding = {"labels": None}

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BFBertModel(config)
        self.dropout = Dropout(_classifier_dropout(config))
        self.classifier = Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        outputs = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                            output_attentions, output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = self._loss(logits, labels) if labels is not None else None
        return _pack(BFSequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                                attentions=outputs.attentions), return_dict, self.config)

    def _loss(self, logits, labels):
        labels = as_array(labels)
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif jnp.issubdtype(labels.dtype, jnp.integer):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        problem = self.config.problem_type
        if problem == "regression":
            if self.num_labels == 1:
                return F.mse_loss(F.reshape(logits, (-1,)), labels.reshape(-1).astype(logits.dtype))
            return F.mse_loss(logits, labels.astype(logits.dtype))
        if problem == "single_label_classification":
            return _token_cross_entropy(logits, labels, "labels")
        if problem == "multi_label_classification":
            return F.binary_cross_entropy_with_logits(logits, labels.astype(logits.dtype))
        raise ValueError(f"config.problem_type must be 'regression', 'single_label_classification' or "
                         f"'multi_label_classification', got {problem!r}")


class BFBertForMultipleChoice(BFBertPreTrainedModel):
    """Inputs (batch, choices, seq) are flattened to (batch·choices, seq); one score per choice."""

    _label_padding = {"labels": None}
    _input_rank = 3  # (batch, choices, seq)

    def __init__(self, config):
        super().__init__(config)
        self.bert = BFBertModel(config)
        self.dropout = Dropout(_classifier_dropout(config))
        self.classifier = Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None:
            raise ValueError("pass exactly one of input_ids or inputs_embeds (got neither)")
        shape = tuple(np.shape(value_of(reference)))
        if len(shape) < 3:
            raise ValueError(f"multiple choice inputs must have shape (batch, num_choices, seq), got {shape}")
        num_choices = shape[1]
        flat = [_flatten_choices(x) for x in (input_ids, attention_mask, token_type_ids, position_ids)]
        embeds = None
        if inputs_embeds is not None:
            embeds = (F.reshape(inputs_embeds, (-1, *shape[2:])) if isinstance(inputs_embeds, Node)
                      else as_array(inputs_embeds).reshape(-1, *shape[2:]))
        outputs = self.bert(*flat, head_mask=head_mask, inputs_embeds=embeds, output_attentions=output_attentions,
                            output_hidden_states=output_hidden_states, return_dict=True)
        logits = F.reshape(self.classifier(self.dropout(outputs.pooler_output)), (-1, num_choices))
        loss = _token_cross_entropy(logits, labels, "labels") if labels is not None else None
        return _pack(BFMultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                                 attentions=outputs.attentions), return_dict, self.config)


class BFBertForTokenClassification(BFBertPreTrainedModel):
    _label_padding = {"labels": IGNORE_INDEX}

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BFBertModel(config, add_pooling_layer=False)
        self.dropout = Dropout(_classifier_dropout(config))
        self.classifier = Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        outputs = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                            output_attentions, output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = _token_cross_entropy(logits, labels, "labels") if labels is not None else None
        return _pack(BFTokenClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                             attentions=outputs.attentions), return_dict, self.config)


class BFBertForQuestionAnswering(BFBertPreTrainedModel):
    """One linear layer gives (start, end) logits per token; positions outside the sequence carry no loss."""

    # start/end positions pick from a softmax over the whole sequence, padding included: a call
    # that passes them runs unpadded (modeling_bf_buckets)
    _label_padding = {}

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BFBertModel(config, add_pooling_layer=False)
        self.qa_outputs = Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, start_positions=None, end_positions=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        outputs = self.bert(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                            output_attentions, output_hidden_states, return_dict=True)
        logits = self.qa_outputs(outputs.last_hidden_state)
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]  # clamped out-of-range positions land here and are ignored
            start = jnp.clip(as_array(start_positions).reshape(-1), 0, ignored)
            end = jnp.clip(as_array(end_positions).reshape(-1), 0, ignored)
            loss = (F.cross_entropy(start_logits, start, ignore_index=ignored)
                    + F.cross_entropy(end_logits, end, ignore_index=ignored)) / 2
        return _pack(BFQuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions), return_dict, self.config)


# -- small helpers the heads share ------------------------------------------------------------

def _flag(value, default):
    return default if value is None else value


def _pack(output, return_dict, config):
    """transformers' contract: a ModelOutput, or its tuple of non-None fields when return_dict=False."""
    use_dict = config.return_dict if return_dict is None else return_dict
    return output if use_dict else output.to_tuple()


def _flatten_choices(x):
    if x is None:
        return None
    x = as_array(x)
    return x.reshape(-1, x.shape[-1])


def _token_cross_entropy(logits, labels, name):
    """Mean cross-entropy over every position whose label is not -100 (torch's CrossEntropyLoss)."""
    labels = as_array(labels)
    num_classes = logits.shape[-1]
    if labels.size * num_classes != logits.size:
        raise ValueError(f"{name} of shape {tuple(labels.shape)} do not match logits of shape {logits.shape}")
    return F.cross_entropy(F.reshape(logits, (-1, num_classes)), labels.reshape(-1), ignore_index=IGNORE_INDEX)


# Names of the original brunoflow fork of transformers, for code written against it.
BfBertEmbeddings = BFBertEmbeddings
BfBertSelfAttention = BFBertSelfAttention
BfBertSelfOutput = BFBertSelfOutput
BfBertAttention = BFBertAttention
BfBertIntermediate = BFBertIntermediate
BfBertOutput = BFBertOutput
BfBertLayer = BFBertLayer
BfBertEncoder = BFBertEncoder
BfBertPooler = BFBertPooler
BfBertPredictionHeadTransform = BFBertPredictionHeadTransform
BfBertLMPredictionHead = BFBertLMPredictionHead
BfBertOnlyMLMHead = BFBertOnlyMLMHead
BfBertOnlyNSPHead = BFBertOnlyNSPHead
BfBertPreTrainingHeads = BFBertPreTrainingHeads
BfBertPreTrainedModel = BFBertPreTrainedModel
BfBertModel = BFBertModel
BfBertForPreTraining = BFBertForPreTraining
BfBertForMaskedLM = BFBertForMaskedLM
BfBertForNextSentencePrediction = BFBertForNextSentencePrediction
BfBertForSequenceClassification = BFBertForSequenceClassification
BfBertForMultipleChoice = BFBertForMultipleChoice
BfBertForTokenClassification = BFBertForTokenClassification
BfBertForQuestionAnswering = BFBertForQuestionAnswering

__all__ = [
    "BFBertEmbeddings",
    "BFBertSelfAttention",
    "BFBertSelfOutput",
    "BFBertAttention",
    "BFBertIntermediate",
    "BFBertOutput",
    "BFBertLayer",
    "BFBertEncoder",
    "BFBertPooler",
    "BFBertPredictionHeadTransform",
    "BFBertLMPredictionHead",
    "BFBertOnlyMLMHead",
    "BFBertOnlyNSPHead",
    "BFBertPreTrainingHeads",
    "BFBertPreTrainedModel",
    "BFBertModel",
    "BFBertForPreTraining",
    "BFBertForMaskedLM",
    "BFBertForNextSentencePrediction",
    "BFBertForSequenceClassification",
    "BFBertForMultipleChoice",
    "BFBertForTokenClassification",
    "BFBertForQuestionAnswering",
    "BfBertEmbeddings",
    "BfBertSelfAttention",
    "BfBertSelfOutput",
    "BfBertAttention",
    "BfBertIntermediate",
    "BfBertOutput",
    "BfBertLayer",
    "BfBertEncoder",
    "BfBertPooler",
    "BfBertPredictionHeadTransform",
    "BfBertLMPredictionHead",
    "BfBertOnlyMLMHead",
    "BfBertOnlyNSPHead",
    "BfBertPreTrainingHeads",
    "BfBertPreTrainedModel",
    "BfBertModel",
    "BfBertForPreTraining",
    "BfBertForMaskedLM",
    "BfBertForNextSentencePrediction",
    "BfBertForSequenceClassification",
    "BfBertForMultipleChoice",
    "BfBertForTokenClassification",
    "BfBertForQuestionAnswering",
]
