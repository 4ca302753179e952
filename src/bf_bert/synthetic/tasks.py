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


# -- §5.3: tasks of graded difficulty (Du et al. 2023, Appendix A) ------------------------------
# Every generator draws tokens uniformly from 1 .. V-1 and then either forces the feature a class
# needs or conditions on the label by rejection, so the only difference between classes is the
# one the label names. Classes are balanced; `label` recomputes them from the definition alone.


def _balanced_labels(rng, n, classes):
    labels = np.arange(n, dtype=np.int32) % classes
    rng.shuffle(labels)
    return labels


def _uniform(rng, shape, low, vocab_size):
    return rng.integers(low, vocab_size, size=shape).astype(np.int32)


class _ByRejection(Task):
    """Balanced by drawing uniform sequences and keeping each until its class is full: exact
    conditioning on the label, for tasks whose classes both occur often under uniform draws."""

    def generate(self, n, seed):
        rng = np.random.default_rng(seed)
        labels = _balanced_labels(rng, n, 2)
        ids = np.zeros((n, self.seq_len), np.int32)
        for value in (0, 1):
            rows = np.flatnonzero(labels == value)
            kept = []
            while sum(len(k) for k in kept) < len(rows):
                draw = _uniform(rng, (max(64, 2 * len(rows)), self.seq_len), 1, self.vocab_size)
                kept.append(draw[self.label(draw) == value])
            ids[rows] = np.concatenate(kept)[:len(rows)]
        return Split(ids, labels)


class Contains1(_ByRejection):
    """Label 1 iff token 1 occurs anywhere."""

    name = "Contains1"
    token_types = ("One", "OtherToken")

    def label(self, ids):
        return (np.asarray(ids) == 1).any(axis=1).astype(np.int32)

    def token_type_of(self, ids):
        return (np.asarray(ids) != 1).astype(np.int32)


class AdjacentDuplicate(_ByRejection):
    """Label 1 iff two neighbouring positions hold the same token."""

    name = "AdjacentDuplicate"
    token_types = ("Duplicate", "OtherToken")

    def label(self, ids):
        ids = np.asarray(ids)
        return (ids[:, 1:] == ids[:, :-1]).any(axis=1).astype(np.int32)

    def token_type_of(self, ids):
        ids = np.asarray(ids)
        same = ids[:, 1:] == ids[:, :-1]
        duplicate = np.zeros(ids.shape, bool)
        duplicate[:, 1:] |= same
        duplicate[:, :-1] |= same
        return (~duplicate).astype(np.int32)


class _FirstTokenRepeatedAt(Task):
    """Label 1 iff the token at `position` equals the first token; the other positions are
    uniform (they may repeat the first token too: only `position` decides)."""

    position = 1
    token_types = ("FirstToken", "ComparedToken", "OtherToken")

    def generate(self, n, seed):
        rng = np.random.default_rng(seed)
        labels = _balanced_labels(rng, n, 2)
        ids = _uniform(rng, (n, self.seq_len), 1, self.vocab_size)
        first = ids[:, 0]
        other = _uniform(rng, n, 1, self.vocab_size - 1)
        other = other + (other >= first)  # uniform over the vocabulary without the first token
        ids[:, self.position] = np.where(labels == 1, first, other)
        return Split(ids, labels)

    def label(self, ids):
        ids = np.asarray(ids)
        return (ids[:, self.position] == ids[:, 0]).astype(np.int32)

    def token_type_of(self, ids):
        types = np.full(np.asarray(ids).shape, 2, np.int32)
        types[:, 0], types[:, self.position] = 0, 1
        return types


class FirstTokenRepeatedImmediately(_FirstTokenRepeatedAt):
    name = "FirstTokenRepeatedImmediately"
    position = 1


class FirstTokenRepeatedLast(_FirstTokenRepeatedAt):
    name = "FirstTokenRepeatedLast"
    position = -1


class BinCountOnes(Task):
    """`classes` bins of equal width over the count of token 1 (1 .. seq_len); the label is the
    bin of the sequence's count. Each class is equally likely; within it the count is uniform
    over the bin, the ones sit at uniform positions, the rest is uniform over 2 .. V-1."""

    token_types = ("One", "OtherToken")

    def __init__(self, classes=2, vocab_size=60, seq_len=36):
        super().__init__(vocab_size, seq_len)
        if classes < 2 or seq_len % classes:
            raise ValueError(f"BinCountOnes: classes must be >= 2 and divide seq_len {seq_len}, got {classes}")
        self.num_labels, self.width = classes, seq_len // classes
        self.name = f"BinCountOnes-{classes}"

    def generate(self, n, seed):
        rng = np.random.default_rng(seed)
        labels = _balanced_labels(rng, n, self.num_labels)
        counts = labels * self.width + rng.integers(1, self.width + 1, size=n)
        ids = _uniform(rng, (n, self.seq_len), 2, self.vocab_size)
        # the first `count` positions of a random order of the positions get the ones
        order = np.argsort(rng.random((n, self.seq_len)), axis=1)
        rank = np.argsort(order, axis=1)
        ids[rank < counts[:, None]] = 1
        return Split(ids, labels)

    def label(self, ids):
        counts = (np.asarray(ids) == 1).sum(axis=1)
        return np.clip((counts - 1) // self.width, 0, self.num_labels - 1).astype(np.int32)

    def token_type_of(self, ids):
        return (np.asarray(ids) != 1).astype(np.int32)


class ContainsTokenSet(Task):
    """Label 1 iff every token of {1, .., size} occurs. Positives put the set at distinct random
    positions over a uniform background; negatives are uniform sequences that miss at least one
    member (rejection), so they hold any proper part of the set."""

    token_types = ("InSet", "OtherToken")

    def __init__(self, size=2, vocab_size=60, seq_len=36):
        super().__init__(vocab_size, seq_len)
        if not 1 <= size <= min(seq_len, vocab_size - 1):
            raise ValueError(f"ContainsTokenSet: size must be in 1 .. {min(seq_len, vocab_size - 1)}, got {size}")
        self.size, self.name = size, f"ContainsTokenSet-{size}"

    def generate(self, n, seed):
        rng = np.random.default_rng(seed)
        labels = _balanced_labels(rng, n, 2)
        ids = _uniform(rng, (n, self.seq_len), 1, self.vocab_size)
        negatives = np.flatnonzero(labels == 0)
        while (bad := negatives[self.label(ids[negatives]) == 1]).size:
            ids[bad] = _uniform(rng, (len(bad), self.seq_len), 1, self.vocab_size)
        positives = np.flatnonzero(labels == 1)
        slots = np.argsort(rng.random((len(positives), self.seq_len)), axis=1)[:, :self.size]
        ids[positives[:, None], slots] = np.arange(1, self.size + 1, dtype=np.int32)
        return Split(ids, labels)

    def label(self, ids):
        ids = np.asarray(ids)
        present = np.stack([(ids == t).any(axis=1) for t in range(1, self.size + 1)], axis=1)
        return present.all(axis=1).astype(np.int32)

    def token_type_of(self, ids):
        ids = np.asarray(ids)
        return ((ids < 1) | (ids > self.size)).astype(np.int32)


DIFFICULTY_TASKS = {task.__name__: task for task in (Contains1, FirstTokenRepeatedImmediately, FirstTokenRepeatedLast,
                                                     AdjacentDuplicate, BinCountOnes, ContainsTokenSet)}
_PARAMETERISED = {"BinCountOnes": "classes", "ContainsTokenSet": "size"}


def difficulty_task(spec, vocab_size=60, seq_len=36):
    """A §5.3 task from its name: "Contains1", ..., "BinCountOnes-<classes>", "ContainsTokenSet-<size>"."""
    base, dash, value = spec.partition("-")
    known = ", ".join(f"{name}-N" if name in _PARAMETERISED else name for name in DIFFICULTY_TASKS)
    if base not in DIFFICULTY_TASKS or bool(dash) != (base in _PARAMETERISED):
        raise ValueError(f"unknown task {spec!r}; known: {known}")
    if base not in _PARAMETERISED:
        return DIFFICULTY_TASKS[base](vocab_size=vocab_size, seq_len=seq_len)
    if not value.isdigit():
        raise ValueError(f"task {spec!r}: {base}-N needs a whole number N, e.g. {base}-2")
    return DIFFICULTY_TASKS[base](int(value), vocab_size=vocab_size, seq_len=seq_len)


def get_task(name, **kwargs):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[name](**kwargs)
