"""Train the synthetic tasks' small BERT: with bf.opt on brunoflow's gradients (one jitted
step: forward, grad backprop, Adam update), or with torch as a user would elsewhere.

The jitted step takes the weights, the optimizer state and a dropout key as arguments
(`Network.using_parameters`, `bf.net.using_dropout_key`), so one compile serves every step;
brunoflow Nodes hold tracers inside it (docs/architecture.md §2).
"""

import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

import brunoflow as bf

# The paper's model (Du et al. 2023, §5.1): 1 layer, hidden 16, 2 heads, dropout 0.2 (trained with Adam at
# 1e-3, batches of 32: synthetic.DEFAULTS). Its code applies the 0.2 to hidden states and keeps attention
# dropout at 0 (a separate setting); its intermediate width is not given: 4 × hidden, as BERT's ratio.
MODEL = dict(num_hidden_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=64,
             hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.0)


def bert_config(task, **overrides):
    """A BertConfig for `task`: its vocabulary, positions for exactly its length, two labels."""
    from transformers import BertConfig
    settings = {**MODEL, **overrides}
    return BertConfig(vocab_size=task.vocab_size, max_position_embeddings=task.seq_len, type_vocab_size=1,
                      pad_token_id=0, num_labels=task.num_labels, **settings)


@dataclass
class History:
    losses: list = field(default_factory=list)   # mean training loss per epoch
    seconds: float = 0.0                          # wall time of the epochs (compiles included)


def batches(n, batch_size, rng):
    """Index arrays of one shuffled epoch; a last short batch is dropped, so one shape compiles."""
    order = rng.permutation(n)
    return [order[k:k + batch_size] for k in range(0, n - batch_size + 1, batch_size)]


def make_train_step(model, optimizer):
    """jit(step)(values, state, ids, labels, key) → (values, state, loss), with values in
    `model.parameters()` order and state from `optimizer.init_state()`."""
    params = list(model.parameters())
    if [id(p) for p in params] != [id(p) for p in optimizer.params]:
        raise ValueError("the optimizer must hold model.parameters(), in their order")

    def step(values, state, ids, labels, key):
        with model.using_parameters(values), bf.net.using_dropout_key(model, key):
            model.zero_gradients()
            loss = model(input_ids=ids, attention_mask=jnp.ones_like(ids), labels=labels).loss
            loss.backprop(values_to_compute=("grad",))
            grads = [p.grad for p in params]
            model.zero_gradients()  # the tracers must not outlive the trace
        values, state = optimizer.update(values, grads, state)
        return values, state, loss.val

    return jax.jit(step)


def train_bf(model, split, epochs, batch_size, learning_rate, seed, progress=None):
    """Train `model` in place with bf.opt.Adam; returns its History. `progress(epoch, loss)` is
    called after each epoch."""
    model.train()
    optimizer = bf.opt.Adam(model.parameters(), step_size=learning_rate)
    step = make_train_step(model, optimizer)
    values, state = [p.val for p in model.parameters()], optimizer.init_state()
    rng, key = np.random.default_rng(seed), jax.random.PRNGKey(seed)
    history, start = History(), time.perf_counter()
    for epoch in range(epochs):
        losses = []
        for k, rows in enumerate(batches(len(split), batch_size, rng)):
            values, state, loss = step(values, state, split.ids[rows], split.labels[rows],
                                       jax.random.fold_in(key, epoch * 1_000_000 + k))
            losses.append(loss)
        history.losses.append(float(np.mean(jax.device_get(losses))))
        if progress:
            progress(epoch, history.losses[-1])
    for p, v in zip(model.parameters(), values):
        p.val = v
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


def train_torch(config, split, epochs, batch_size, learning_rate, seed, progress=None):
    """The same training in torch (transformers.BertForSequenceClassification, torch.optim.Adam);
    returns (model in eval mode, History)."""
    import torch
    from transformers import BertForSequenceClassification
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    ids, labels = torch.from_numpy(split.ids.astype(np.int64)), torch.from_numpy(split.labels.astype(np.int64))
    rng, history, start = np.random.default_rng(seed), History(), time.perf_counter()
    for epoch in range(epochs):
        losses = []
        for rows in batches(len(split), batch_size, rng):
            rows = torch.from_numpy(rows)
            loss = model(input_ids=ids[rows], attention_mask=torch.ones_like(ids[rows]), labels=labels[rows]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.losses.append(float(np.mean(losses)))
        if progress:
            progress(epoch, history.losses[-1])
    history.seconds = time.perf_counter() - start
    model.eval()
    return model, history


def predict_torch(model, ids):
    import torch
    with torch.no_grad():
        batch = torch.from_numpy(ids.astype(np.int64))
        return model(input_ids=batch, attention_mask=torch.ones_like(batch)).logits.argmax(-1).numpy()
