"""Synthetic tasks whose solution is known by construction (Du et al., ACL 2023, §5).

A task is a seeded generator of (ids, labels) plus a token-type function that says which
positions the solution must use; the top-path study then checks that the model's top
gradient paths go where the construction says. Add a task by subclassing `Task` and adding
it to TASKS: the training, analysis and report read only this interface.
"""

from dataclasses import dataclass

import numpy as np

PAD_ID = 0  # reserved: generated tokens are 1 .. vocab_size - 1, so padding never looks like data


@dataclass(frozen=True)
class Split:
    ids: np.ndarray      # (N, seq_len) int32
    labels: np.ndarray   # (N,) int32

    def __len__(self):
        return len(self.labels)


class Task:
    name = ""
    token_types = ()          # names of the token types `token_type_of` returns, in plot order
    num_labels = 2

    def __init__(self, vocab_size=20, seq_len=10):
        if vocab_size < 3 or seq_len < 2:
            raise ValueError(f"{self.name}: need vocab_size >= 3 and seq_len >= 2, got {vocab_size}, {seq_len}")
        self.vocab_size, self.seq_len = vocab_size, seq_len

    def generate(self, n, seed):
        """n seeded examples: the same (n, seed) always gives the same Split."""
        raise NotImplementedError

    def label(self, ids):
        """The true label of each row of ids (N, seq_len), computed from the definition alone."""
        raise NotImplementedError

    def token_type_of(self, ids):
        """(N, seq_len) int: index into `token_types` of each position."""
        raise NotImplementedError

    def splits(self, train_size, heldout_size, seed):
        """Train and held-out sets from two independent seeded streams (a row may occur in both by chance)."""
        return self.generate(train_size, seed), self.generate(heldout_size, seed + 1_000_003)


class FirstTokenRepeatedOnce(Task):
    """Label 1 iff the first token occurs again later in the sequence.

    Positives repeat it exactly once, at a uniform position; negatives never repeat it. Other
    positions are uniform over the remaining vocabulary (they may repeat among themselves).
    Classes are balanced (half of each, shuffled), as in the paper's generator: with uniform
    tokens only ~38% of sequences of 10 over 19 symbols would be positive.
    """

    name = "FirstTokenRepeatedOnce"
    token_types = ("FirstToken", "RepeatToken", "OtherToken")

    def generate(self, n, seed):
        rng = np.random.default_rng(seed)
        labels = np.zeros(n, np.int32)
        labels[: n // 2 + n % 2] = 1
        rng.shuffle(labels)
        first = rng.integers(1, self.vocab_size, size=n)
        # others: uniform over 1..V-1 without the first token (shift values at or above it by one)
        others = rng.integers(1, self.vocab_size - 1, size=(n, self.seq_len - 1))
        others = others + (others >= first[:, None])
        ids = np.concatenate([first[:, None], others], axis=1).astype(np.int32)
        where = rng.integers(1, self.seq_len, size=n)
        rows = np.flatnonzero(labels)
        ids[rows, where[rows]] = first[rows]
        return Split(ids, labels)

    def label(self, ids):
        ids = np.asarray(ids)
        return (ids[:, 1:] == ids[:, :1]).any(axis=1).astype(np.int32)

    def token_type_of(self, ids):
        ids = np.asarray(ids)
        types = np.full(ids.shape, 2, np.int32)
        types[:, 1:][ids[:, 1:] == ids[:, :1]] = 1
        types[:, 0] = 0
        return types


TASKS = {task.name: task for task in (FirstTokenRepeatedOnce,)}


def get_task(name, **kwargs):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[name](**kwargs)
