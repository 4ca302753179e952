"""Embedding: rows of a (num_embeddings, embedding_dim) table picked by integer ids."""

import jax
import jax.numpy as jnp
import numpy as np

from ..ad.node import Parameter, value_of
from ..func import embedding
from .ids import check_in_range
from .module import Network, initial_value, make_key


class Embedding(Network):
    """Lookup table, initialised N(0, 1) as torch, with the padding_idx row zeroed.

    As torch's nn.Embedding, positions holding `padding_idx` read the padding row's value but
    give it no gradient: there the lookup copies nothing and the row's value enters as a constant,
    so no semiring finds a path from the padding row through the lookup either.
    Graph: one getitem (gather) of `weight`; with padding_idx, one lookup and an add of that constant
    (`bf.func.embedding`).
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, key=None, dtype=jnp.float32):
        super().__init__()
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"padding_idx must be in [-{self.num_embeddings}, {self.num_embeddings}), "
                                 f"got {padding_idx}")
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        shape, key = (self.num_embeddings, self.embedding_dim), make_key(key)
        table = initial_value(lambda: jax.random.normal(key, shape, dtype), shape, dtype)
        if padding_idx is not None and not isinstance(table, np.ndarray):  # skip_init's zeros need nothing
            table = table.at[padding_idx].set(0)
        self.weight = Parameter(table)

    def forward(self, ids):
        check_in_range(ids, self.num_embeddings, "ids", "num_embeddings", owner="Embedding")
        return embedding(value_of(ids), self.weight, self.padding_idx)

    def extra_repr(self):
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
