"""Dropout with a PRNG key the layer owns and splits once per training call."""

import contextlib

import jax

from ..ad.node import Node
from ..func import dropout
from .module import Network, make_key


class Dropout(Network):
    """Inverted dropout in training mode; the identity (no node at all) in eval mode.

    `key` seeds the layer's own key stream (a JAX key or an int; None draws one from the
    stream `bf.net.manual_seed` seeds). Under jax.jit the split happens at trace time, so
    every run of one compiled function reuses its mask: pass `forward(x, key=...)` to vary it.
    """

    def __init__(self, p=0.5, key=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.key = make_key(key)

    def forward(self, x, key=None):
        if not self.training or self.p == 0:
            return x
        if key is None:
            # concrete even while tracing: a traced key stored on the layer would leak out of jit
            with jax.ensure_compile_time_eval():
                self.key, key = jax.random.split(self.key)
        # bf.func.dropout multiplies by a constant mask, so a plain-array input would give a plain array back
        return dropout(x if isinstance(x, Node) else Node(x), self.p, key, training=True)

    def extra_repr(self):
        return f"p={self.p}"


@contextlib.contextmanager
def using_dropout_key(network, key):
    """Inside, every Dropout of `network` draws its masks from `key` (the k-th Dropout in
    module order from fold_in(key, k)); their own key streams come back afterwards.

    For a jitted training step: a layer's own key is split at trace time, so every run of the
    compiled step would reuse one mask. With the step's key as an argument, each call draws
    new masks, and the same key gives the same masks."""
    layers = [m for m in network.modules() if isinstance(m, Dropout)]
    saved = [layer.key for layer in layers]
    try:
        for k, layer in enumerate(layers):
            layer.key = jax.random.fold_in(key, k)
        yield network
    finally:
        for layer, old in zip(layers, saved):
            layer.key = old
