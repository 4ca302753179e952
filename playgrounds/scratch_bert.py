"""BERT from scratch in plain PyTorch: the whole masked-language model in one readable file.

Nothing here comes from transformers' modeling code; `Bert.from_hf` only reads a
`BertForMaskedLM`'s config and state dict, through an explicit table of names, so every
weight's home is spelled out once. The playgrounds check each piece against transformers.

    Bert
    ├── embedding: BertEmbedding        token + position + token-type embeddings, LayerNorm
    ├── layers: BertLayer × L
    │   ├── attention: SelfAttentionLayer
    │   │   ├── self_attention: PureSelfAttentionLayer   project_query/key/value, softmax
    │   │   └── mlp, dropout, layer_norm                  output projection + residual
    │   └── feed_forward: NormedResidualLayer             mlp1 → GELU → mlp2 + residual
    └── lm_head: BertLMHead             mlp → GELU → layer_norm → unembedding (tied)
"""

import math

import torch
from torch import nn


class BertEmbedding(nn.Module):
    """A token's vector is the sum of what it is, where it is and which segment it is in."""

    def __init__(self, vocab_size, hidden_size, max_position_embeddings, type_vocab_size, layer_norm_eps, dropout):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, hidden_size)
        self.position_embedding = nn.Embedding(max_position_embeddings, hidden_size)
        self.token_type_embedding = nn.Embedding(type_vocab_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids, token_type_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        summed = self.token_embedding(input_ids) + self.position_embedding(positions) + \
            self.token_type_embedding(token_type_ids)
        return self.dropout(self.layer_norm(summed))


class PureSelfAttentionLayer(nn.Module):
    """Every position mixes the values of all positions, weighted by query·key similarity.

    Heads split the hidden vector into `num_heads` independent slices, each attending on
    its own; dividing by √head_size keeps the softmax from saturating as heads get wider.
    """

    def __init__(self, hidden_size, num_heads, dropout):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        self.num_heads, self.head_size = num_heads, hidden_size // num_heads
        self.project_query = nn.Linear(hidden_size, hidden_size)
        self.project_key = nn.Linear(hidden_size, hidden_size)
        self.project_value = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x):  # (batch, seq, hidden) -> (batch, heads, seq, head_size)
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, hidden, additive_mask=None):
        query, key, value = (self._heads(p(hidden)) for p in (self.project_query, self.project_key,
                                                                self.project_value))
        scores = query @ key.transpose(-1, -2) / math.sqrt(self.head_size)
        if additive_mask is not None:  # padded keys get a large negative score: ~0 after softmax
            scores = scores + additive_mask
        weights = self.dropout(scores.softmax(dim=-1))
        context = weights @ value                                  # (batch, heads, seq, head_size)
        return context.transpose(1, 2).reshape(hidden.shape)


class SelfAttentionLayer(nn.Module):
    """Attention, its output projection, and the residual ('skip') connection + LayerNorm."""

    def __init__(self, hidden_size, num_heads, layer_norm_eps, dropout):
        super().__init__()
        self.self_attention = PureSelfAttentionLayer(hidden_size, num_heads, dropout)
        self.mlp = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, hidden, additive_mask=None):
        attended = self.dropout(self.mlp(self.self_attention(hidden, additive_mask)))
        return self.layer_norm(hidden + attended)


class NormedResidualLayer(nn.Module):
    """The position-wise MLP: widen, GELU, narrow back, then residual + LayerNorm."""

    def __init__(self, hidden_size, intermediate_size, layer_norm_eps, dropout):
        super().__init__()
        self.mlp1 = nn.Linear(hidden_size, intermediate_size)
        self.mlp2 = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, hidden):
        # BERT's "gelu" is the exact erf form, not the tanh approximation
        widened = nn.functional.gelu(self.mlp1(hidden))
        return self.layer_norm(hidden + self.dropout(self.mlp2(widened)))


class BertLayer(nn.Module):
    def __init__(self, hidden_size, num_heads, intermediate_size, layer_norm_eps, dropout):
        super().__init__()
        self.attention = SelfAttentionLayer(hidden_size, num_heads, layer_norm_eps, dropout)
        self.feed_forward = NormedResidualLayer(hidden_size, intermediate_size, layer_norm_eps, dropout)

    def forward(self, hidden, additive_mask=None):
        return self.feed_forward(self.attention(hidden, additive_mask))


class BertLMHead(nn.Module):
    """Hidden vectors back to vocabulary scores; `unembedding` shares the token embedding matrix."""

    def __init__(self, hidden_size, vocab_size, layer_norm_eps):
        super().__init__()
        self.mlp = nn.Linear(hidden_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.unembedding = nn.Linear(hidden_size, vocab_size)

    def forward(self, hidden):
        return self.unembedding(self.layer_norm(nn.functional.gelu(self.mlp(hidden))))


class Bert(nn.Module):
    """(input_ids, token_type_ids, attention_mask) [batch, seq] -> logits [batch, seq, vocab]."""

    def __init__(self, vocab_size, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
                 max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12, dropout=0.1):
        super().__init__()
        self.vocab_size, self.max_position_embeddings = vocab_size, max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.embedding = BertEmbedding(vocab_size, hidden_size, max_position_embeddings, type_vocab_size,
                                       layer_norm_eps, dropout)
        self.layers = nn.ModuleList(BertLayer(hidden_size, num_heads, intermediate_size, layer_norm_eps, dropout)
                                    for _ in range(num_layers))
        self.lm_head = BertLMHead(hidden_size, vocab_size, layer_norm_eps)
        self.lm_head.unembedding.weight = self.embedding.token_embedding.weight  # tied, as in BERT

    @classmethod
    def from_config(cls, config):
        """From a transformers BertConfig (or anything with its attribute names)."""
        if getattr(config, "hidden_act", "gelu") != "gelu":
            raise ValueError(f"this Bert uses exact GELU; the config asks for {config.hidden_act!r}")
        return cls(config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                   config.intermediate_size, config.max_position_embeddings, config.type_vocab_size,
                   config.layer_norm_eps, config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, return_hidden_states=False):
        """Logits; with return_hidden_states, also [embedding output, layer 1 output, ...]."""
        self._check(input_ids, token_type_ids, attention_mask)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        additive_mask = None
        if attention_mask is not None:  # (batch, 1, 1, seq): the same keys hidden from every query and head
            additive_mask = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        hidden = self.embedding(input_ids, token_type_ids)
        hidden_states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden, additive_mask)
            hidden_states.append(hidden)
        logits = self.lm_head(hidden)
        return (logits, hidden_states) if return_hidden_states else logits

    def _check(self, input_ids, token_type_ids, attention_mask):
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            raise ValueError("input_ids must be an integer tensor of shape [batch, seq], got "
                             f"{getattr(input_ids, 'shape', type(input_ids).__name__)}")
        if input_ids.shape[1] > self.max_position_embeddings:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds max_position_embeddings "
                             f"{self.max_position_embeddings}")
        _check_range("input_ids", input_ids, self.vocab_size)
        for name, other in (("token_type_ids", token_type_ids), ("attention_mask", attention_mask)):
            if other is not None and tuple(other.shape) != tuple(input_ids.shape):
                raise ValueError(f"{name} must have the shape of input_ids {tuple(input_ids.shape)}, "
                                 f"got {tuple(other.shape)}")
        if token_type_ids is not None:
            _check_range("token_type_ids", token_type_ids, self.type_vocab_size)

    @classmethod
    def from_hf(cls, hf_model):
        """A Bert holding a transformers BertForMaskedLM's weights, copied by explicit names."""
        model = cls.from_config(hf_model.config)
        source = hf_model.state_dict()
        names = hf_names(len(model.layers))
        missing = sorted(hf for hf in [*names.values(), "cls.predictions.decoder.weight"] if hf not in source)
        if missing:
            raise ValueError(f"{type(hf_model).__name__} lacks {len(missing)} weights a BertForMaskedLM has, "
                             f"e.g. {missing[:3]}; pass a BertForMaskedLM")
        decoder = source["cls.predictions.decoder.weight"]
        if not torch.equal(decoder, source["bert.embeddings.word_embeddings.weight"]):  # a checkpoint that unties them
            model.lm_head.unembedding.weight = nn.Parameter(torch.empty_like(decoder))
            names["lm_head.unembedding.weight"] = "cls.predictions.decoder.weight"
        with torch.no_grad():
            own = model.state_dict()
            for ours, theirs in names.items():
                own[ours].copy_(source[theirs])
        return model.eval()

    @classmethod
    def from_pretrained(cls, folder):
        """Load a checkpoint folder with transformers' BertForMaskedLM, then copy its weights."""
        from transformers import BertForMaskedLM
        return cls.from_hf(BertForMaskedLM.from_pretrained(folder))


def _check_range(name, ids, size):
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= size):
        raise ValueError(f"{name} must lie in [0, {size}), got values in [{int(ids.min())}, {int(ids.max())}]")


def hf_names(num_layers):
    """Our parameter name -> transformers' BertForMaskedLM state-dict key."""
    names = {
        "embedding.token_embedding.weight": "bert.embeddings.word_embeddings.weight",
        "embedding.position_embedding.weight": "bert.embeddings.position_embeddings.weight",
        "embedding.token_type_embedding.weight": "bert.embeddings.token_type_embeddings.weight",
        "embedding.layer_norm.weight": "bert.embeddings.LayerNorm.weight",
        "embedding.layer_norm.bias": "bert.embeddings.LayerNorm.bias",
        "lm_head.mlp.weight": "cls.predictions.transform.dense.weight",
        "lm_head.mlp.bias": "cls.predictions.transform.dense.bias",
        "lm_head.layer_norm.weight": "cls.predictions.transform.LayerNorm.weight",
        "lm_head.layer_norm.bias": "cls.predictions.transform.LayerNorm.bias",
        "lm_head.unembedding.bias": "cls.predictions.decoder.bias",  # the bias the decoder adds
    }
    per_layer = {
        "attention.self_attention.project_query": "attention.self.query",
        "attention.self_attention.project_key": "attention.self.key",
        "attention.self_attention.project_value": "attention.self.value",
        "attention.mlp": "attention.output.dense",
        "attention.layer_norm": "attention.output.LayerNorm",
        "feed_forward.mlp1": "intermediate.dense",
        "feed_forward.mlp2": "output.dense",
        "feed_forward.layer_norm": "output.LayerNorm",
    }
    for i in range(num_layers):
        for ours, theirs in per_layer.items():
            for kind in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{kind}"] = f"bert.encoder.layer.{i}.{theirs}.{kind}"
    return names
