"""Model outputs of the BF models: transformers' `ModelOutput` dataclasses whose fields are bf Nodes.

They index, unpack and `to_tuple()` like every HF output (`out.logits`, `out["logits"]`,
`out[0]`). Shapes below use B = batch, S = sequence length, H = hidden size, V = vocabulary,
C = choices or labels, L = layers, N = heads. Fields left as None are absent from the tuple.
"""

from dataclasses import dataclass, fields

from brunoflow import Node
from transformers.utils import ModelOutput


class BFModelOutput(ModelOutput):
    """ModelOutput for Node fields.

    transformers' own `__post_init__` treats a lone first field that is not a torch/numpy
    tensor as an iterable of (key, value) pairs; a Node is neither, so store fields as given.
    """

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                self[field.name] = value


@dataclass
class BFBaseModelOutputWithPoolingAndCrossAttentions(BFModelOutput):
    """What `BFBertModel` returns.

    last_hidden_state: Node (B, S, H), the last layer's output.
    pooler_output: Node (B, H), tanh(dense(first token)); None without a pooler.
    hidden_states: tuple of L + 1 Nodes (B, S, H): the embeddings, then each layer's output.
    attentions: tuple of L Nodes (B, N, S, S): each layer's attention probabilities.
    cross_attentions: () with output_attentions (an encoder has no cross-attention layers), as
    torch's BertModel; else None.
    cache: always None (BERT as an encoder). transformers 5 calls the field
    `cache` as its own BertModel output does; the old name `past_key_values` still reads it,
    but setting or reading that name logs a deprecation warning.
    """

    last_hidden_state: Node = None
    pooler_output: Node | None = None
    hidden_states: tuple[Node, ...] | None = None
    cache: None = None
    attentions: tuple[Node, ...] | None = None
    cross_attentions: tuple[()] | None = None


@dataclass
class BFBertForPreTrainingOutput(BFModelOutput):
    """What `BFBertForPreTraining` returns.

    loss: Node (), masked-LM loss + next-sentence loss, when both labels are given.
    prediction_logits: Node (B, S, V); seq_relationship_logits: Node (B, 2).
    hidden_states, attentions: as in `BFBaseModelOutputWithPoolingAndCrossAttentions`.
    """

    loss: Node | None = None
    prediction_logits: Node = None
    seq_relationship_logits: Node = None
    hidden_states: tuple[Node, ...] | None = None
    attentions: tuple[Node, ...] | None = None


@dataclass
class BFMaskedLMOutput(BFModelOutput):
    """loss: Node (), cross-entropy over positions whose label is not -100; logits: Node (B, S, V)."""

    loss: Node | None = None
    logits: Node = None
    hidden_states: tuple[Node, ...] | None = None
    attentions: tuple[Node, ...] | None = None


@dataclass
class BFNextSentencePredictorOutput(BFModelOutput):
    """loss: Node (); logits: Node (B, 2), index 0 = "B follows A"."""

    loss: Node | None = None
    logits: Node = None
    hidden_states: tuple[Node, ...] | None = None
    attentions: tuple[Node, ...] | None = None


@dataclass
class BFSequenceClassifierOutput(BFModelOutput):
    """loss: Node () (MSE, cross-entropy or BCE-with-logits by `config.problem_type`); logits: Node (B, C)."""

    loss: Node | None = None
    logits: Node = None
    hidden_states: tuple[Node, ...] | None = None
    attentions: tuple[Node, ...] | None = None


@dataclass
class BFMultipleChoiceModelOutput(BFModelOutput):
    """loss: Node (); logits: Node (B, C), one score per choice."""

    loss: Node | None = None
    logits: Node = None
    hidden_states: tuple[Node, ...] | None = None
    attentions: tuple[Node, ...] | None = None


@dataclass
class BFTokenClassifierOutput(BFModelOutput):
    """loss: Node (), cross-entropy over tokens whose label is not -100; logits: Node (B, S, C)."""

    loss: Node | None = None
    logits: Node = None
    hidden_states: tuple[Node, ...] | None = None
    attentions: tuple[Node, ...] | None = None


@dataclass
class BFQuestionAnsweringModelOutput(BFModelOutput):
    """loss: Node (), mean of the start and end cross-entropies; start_logits, end_logits: Node (B, S)."""

    loss: Node | None = None
    start_logits: Node = None
    end_logits: Node = None
    hidden_states: tuple[Node, ...] | None = None
    attentions: tuple[Node, ...] | None = None


__all__ = [
    "BFModelOutput",
    "BFBaseModelOutputWithPoolingAndCrossAttentions",
    "BFBertForPreTrainingOutput",
    "BFMaskedLMOutput",
    "BFNextSentencePredictorOutput",
    "BFSequenceClassifierOutput",
    "BFMultipleChoiceModelOutput",
    "BFTokenClassifierOutput",
    "BFQuestionAnsweringModelOutput",
]
