# %% [markdown]
# # BF BERT, one module at a time: self-attention
#
# `BFBertSelfAttention` computes queries, keys and values from the same hidden states, scores
# every query against every key, softmaxes, and mixes the values. We check it against
# transformers on the same weights (with a padding mask), backprop every semiring, and ask how
# the gradient mass reaching the input splits among the three projections that read it.
#
# Per head h, with d = hidden_size / num_heads:
# Q = X W_q + b_q, K = X W_k + b_k, V = X W_v + b_v (each sliced to the head's d columns),
# probs = softmax(Q Kᵀ / √d + mask) over the keys, context = probs · V; heads are concatenated.

# %%
import tempfile

import numpy as np
import torch
from transformers import BertConfig, BertModel, BFBertModel

import brunoflow as bf

torch.manual_seed(0)
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, attention_probs_dropout_prob=0.0, attn_implementation="eager")
torch_model = BertModel(config).eval()
with torch.no_grad():
    for param in torch_model.parameters():
        param.add_(0.1 * torch.randn_like(param))
with tempfile.TemporaryDirectory() as folder:
    torch_model.save_pretrained(folder)
    bf_model = BFBertModel.from_pretrained(folder)
bf_attention = bf_model.encoder.layer[0].attention.self
torch_attention = torch_model.encoder.layer[0].attention.self

# %% [markdown]
# ## Forward, with the last two positions padded
# The mask is additive: 0 where a key may be read, the dtype's minimum where it is padding.

# %%
hidden = np.random.default_rng(0).normal(size=(1, 5, config.hidden_size)).astype(np.float32)
keep = np.array([[1, 1, 1, 0, 0]])
additive = bf_model.get_extended_attention_mask(keep, np.float32)
x = bf.Node(hidden, name="hidden_states")
context, probs = bf_attention(x, additive)
x_torch = torch.tensor(hidden, requires_grad=True)
context_torch, probs_torch = torch_attention(x_torch, attention_mask=torch.tensor(np.asarray(additive)))[:2]
for name, ours, theirs in (("context", context, context_torch), ("attention probs", probs, probs_torch)):
    diff = np.abs(np.asarray(ours.val) - theirs.detach().numpy()).max()
    print(f"{name:<16} max |Δ| vs torch = {diff:.1e}")
    assert diff <= 1e-5
print("attention of head 0 (rows: queries, columns: keys; padded keys get 0):")
print(np.round(np.asarray(probs.val[0, 0]), 3))

# %% [markdown]
# ## Backward: gradients agree with torch, and the mass splits by consumer
# `bf.consumer_flows(node, "abs_val_grad")` returns what each consumer of `node` sent back in
# the sweep, before ⊕ merged it; consumers carry their module path, so the query/key/value
# projections are found by name of module, not by guessing node names.

# %%
weights = np.random.default_rng(1).normal(size=context.shape).astype(np.float32)
(context * weights).sum().backprop(values_to_compute=("grad", "abs_val_grad", "entropy", "max_grad"))
(context_torch * torch.tensor(weights)).sum().backward()
diff = np.abs(np.asarray(x.grad) - x_torch.grad.numpy()).max()
print(f"grad w.r.t. the hidden states: max |Δ| vs torch autograd = {diff:.1e}")
assert diff <= 1e-5
for name in ("query", "key", "value"):
    for part in ("weight", "bias"):
        ours = getattr(getattr(bf_attention, name), part).grad
        theirs = getattr(getattr(torch_attention, name), part).grad
        diff = np.abs(np.asarray(ours) - theirs.numpy()).max()
        print(f"grad of {name + '.' + part:<13}: max |Δ| vs torch autograd = {diff:.1e}")
        assert diff <= 1e-5

mass = {}
for consumer, (a,) in bf.consumer_flows(x, "abs_val_grad"):
    branch = consumer.module_path.rsplit(".", 1)[-1]  # query / key / value
    mass[branch] = mass.get(branch, 0.0) + np.asarray(a)[0].sum(-1)  # per input position
total = float(np.asarray(x.abs_val_grad).sum())
print(f"{'branch':>6} {'share':>7}   share at each input position")
for branch, per_position in mass.items():
    print(f"{branch:>6} {per_position.sum() / total:7.1%}   {np.round(per_position / total, 3)}")
assert set(mass) == {"query", "key", "value"}
assert abs(sum(m.sum() for m in mass.values()) - total) <= 1e-4 * total  # the split adds up to the whole

# %% [markdown]
# The padded positions (3 and 4) still act as *queries*: their own outputs exist and are part
# of what we backpropagated. But as keys they get probability 0, so no gradient, and no path
# at all, reaches them through the key or value projections.

# %%
assert np.all(mass["key"][3:] == 0) and np.all(mass["value"][3:] == 0)
assert np.all(mass["query"][3:] > 0)
print("self-attention playground: all checks passed")
