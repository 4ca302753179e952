"""Task difficulty as an online (prequential) codelength (Voita & Titov 2020, "Information-Theoretic
Probing with Minimum Description Length", §3.2).

The training labels are sent in blocks, in order. The first block goes by a uniform code over the
task's classes; every later block is coded by a model trained from scratch on all the blocks
before it. The total number of bits is the task's MDL: a task that a model learns from few
examples compresses well; one it learns slowly, or not at all, costs up to N·log2(classes).

Codes use the model's distribution over the task's own classes (the first `classes` logits,
renormalised): every §5.3 model has as many outputs as a sequence has tokens, so that all tasks
share one graph, and the receiver knows which labels a task can have.

`BlockTrainer` trains those models with bf.opt on brunoflow's gradients: one jitted step per
architecture (`train.make_train_step`), fresh weights per block drawn with transformers' BERT
scheme from the block's own seed.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

import brunoflow as bf

from . import train

# Block boundaries as fractions of the training set: Voita & Titov's 0.1, 0.2, 0.4, ..., 50, 100 %.
FRACTIONS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)


def block_ends(n, fractions=FRACTIONS):
    """Increasing prefix lengths, the last n: each block is [ends[k], ends[k+1])."""
    if n < 2:
        raise ValueError(f"online codelength needs at least 2 training examples, got {n}")
    ends = sorted({min(n, max(1, math.ceil(f * n))) for f in fractions} | {n})
    return ends


def codelength_bits(logits, labels, classes):
    """Bits to send each label with the model's distribution over the first `classes` logits."""
    logits = np.asarray(logits, np.float64)[:, :classes]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    log_p = shifted[np.arange(len(labels)), np.asarray(labels)] - log_norm
    return -log_p / np.log(2.0)


def online_codelength(n, classes, score, fractions=FRACTIONS):
    """Rows, one per block: its range, the size of the prefix its code was trained on (0: the
    uniform code) and its bits. score(start, stop) → bits of labels[start:stop] under a model
    trained on labels[:start]; it is called once per block after the first."""
    ends = block_ends(n, fractions)
    rows = [{"block": 0, "start": 0, "stop": ends[0], "train_size": 0, "bits": ends[0] * math.log2(classes)}]
    for k, (start, stop) in enumerate(zip(ends, ends[1:]), start=1):
        rows.append({"block": k, "start": start, "stop": stop, "train_size": start,
                     "bits": float(score(start, stop))})
    return rows


def summary(rows, classes):
    """Total online codelength, the uniform codelength of the same labels, and their ratio."""
    total = float(sum(r["bits"] for r in rows))
    uniform = rows[-1]["stop"] * math.log2(classes)
    return {"mdl_bits": total, "uniform_bits": uniform, "compression": uniform / total if total else math.inf}


def epoch_batches(n, batch_size, rng):
    """One epoch's index batches, all of batch_size rows: a prefix shorter than a batch fills it
    by cycling fresh permutations, so that every block runs the one compiled step."""
    if n >= batch_size:
        return train.batches(n, batch_size, rng)
    reps = -(-batch_size // n)
    return [np.concatenate([rng.permutation(n) for _ in range(reps)])[:batch_size]]


class BlockTrainer:
    """Trains and evaluates models of one architecture; the model object is only a template (its
    weights are arguments of the compiled step), so every block and task reuses one compile."""

    def __init__(self, config, learning_rate, batch_size, chunk=256):
        from transformers import BFBertForSequenceClassification
        self.model = BFBertForSequenceClassification(config)
        self.optimizer = bf.opt.Adam(self.model.parameters(), step_size=learning_rate)
        self.model.train()
        self.step = train.make_train_step(self.model, self.optimizer)
        self.batch_size, self.chunk = batch_size, chunk
        self._logits = jax.jit(self._forward)

    def initial_values(self, seed):
        """Fresh weights with transformers' BERT init (N(0, 0.02), zero bias, unit LayerNorm),
        drawn from `seed`: a BF model's own init always draws from seed 0."""
        rng = np.random.default_rng(seed)
        for module in self.model.modules():
            self.model._init_weights(module, rng)
        self.model.tie_weights()
        return [p.val for p in self.model.parameters()]

    def fit(self, ids, labels, epochs, seed, progress=None):
        """Weights trained from scratch on (ids, labels) for `epochs` epochs; returns (values, mean
        loss per epoch)."""
        values, state = self.initial_values(seed), self.optimizer.init_state()
        rng, key = np.random.default_rng(seed), jax.random.PRNGKey(seed)
        self.model.train()
        losses = []
        for epoch in range(epochs):
            epoch_losses = []
            for k, rows in enumerate(epoch_batches(len(labels), self.batch_size, rng)):
                values, state, loss = self.step(values, state, ids[rows], labels[rows],
                                                jax.random.fold_in(key, epoch * 1_000_000 + k))
                epoch_losses.append(loss)
            losses.append(float(np.mean(jax.device_get(epoch_losses))))
            if progress:
                progress(epoch, losses[-1])
        return values, losses

    def _forward(self, values, ids):
        training = self.model.training
        self.model.eval()  # at trace time: no dropout in a code or an evaluation
        try:
            with self.model.using_parameters(values):
                return self.model(input_ids=ids, attention_mask=jnp.ones_like(ids)).logits.val
        finally:
            self.model.train(training)

    def logits(self, values, ids):
        """(N, num_labels) logits in eval mode, run in fixed-size chunks (one compile for any N)."""
        parts = []
        for start in range(0, len(ids), self.chunk):
            rows = ids[start:start + self.chunk]
            padded = np.concatenate([rows, np.repeat(rows[-1:], self.chunk - len(rows), axis=0)])
            parts.append(np.asarray(self._logits(values, jnp.asarray(padded, jnp.int32)))[:len(rows)])
        return np.concatenate(parts)

    def load(self, values):
        """The template model holding `values` (to save it, or to analyse it)."""
        for p, v in zip(self.model.parameters(), values):
            p.val = v
        self.model.eval()
        return self.model
