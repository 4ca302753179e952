# %% [markdown]
# # BF BERT, one module at a time: the attention sub-block with its skip connection
#
# `BFBertAttention` = self-attention, an output projection, and LayerNorm of the sum with the
# block's input. That sum is the *skip* (residual) branch: the input reaches the output both
# through attention (query, key, value) and directly. How much gradient mass takes each road?

# %%
import tempfile

import numpy as np
import torch
from transformers import BertConfig, BertModel, BFBertModel

import brunoflow as bf

torch.manual_seed(0)
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                    attn_implementation="eager")
torch_model = BertModel(config).eval()
with torch.no_grad():
    for param in torch_model.parameters():
        param.add_(0.1 * torch.randn_like(param))
with tempfile.TemporaryDirectory() as folder:
    torch_model.save_pretrained(folder)
    bf_model = BFBertModel.from_pretrained(folder)
bf_block = bf_model.encoder.layer[0].attention
torch_block = torch_model.encoder.layer[0].attention

# %% [markdown]
# ## Forward against torch

# %%
hidden = np.random.default_rng(0).normal(size=(1, 6, config.hidden_size)).astype(np.float32)
x = bf.Node(hidden, name="block input")
out, _ = bf_block(x)
x_torch = torch.tensor(hidden, requires_grad=True)
out_torch = torch_block(x_torch)[0]
diff = np.abs(np.asarray(out.val) - out_torch.detach().numpy()).max()
print(f"attention block output: max |Δ| vs torch = {diff:.1e}")
assert diff <= 1e-5

# %% [markdown]
# ## Backward: one position's output, all semirings
# We explain output position 2 (a weighted sum of its features) and split what reaches the
# block input by the consumer that carried it: the three projections, or the skip branch (the
# residual add inside `attention.output`). With the entropy semiring each consumer hands
# back a pair (a, h): a = Σ |P| and h = Σ −|P| log|P| over its paths (P: a path's product of
# partials), so the entropy of the paths through one branch is h/a + log a of its pooled
# pair: low when a few paths carry that branch's mass. Expect query and skip mass only at
# position 2 (its output reads its own query and its own residual), key and value mass at
# every position.

# %%
weights = np.zeros(out.shape, np.float32)
weights[0, 2] = np.random.default_rng(1).normal(size=config.hidden_size)
scalar = (out * weights).sum()  # keep it: nodes hold their consumers weakly, and top_path walks to it
scalar.backprop(values_to_compute=("grad", "abs_val_grad", "entropy", "max_grad", "max_path"))
(out_torch * torch.tensor(weights)).sum().backward()
diff = np.abs(np.asarray(x.grad) - x_torch.grad.numpy()).max()
print(f"grad w.r.t. the block input: max |Δ| vs torch autograd = {diff:.1e}")
assert diff <= 1e-5

BRANCH = {"self.query": "query", "self.key": "key", "self.value": "value", "output": "skip"}
mass, entropy_sum = {}, {}
for consumer, (a, h) in bf.consumer_flows(x, "entropy"):
    branch = BRANCH[consumer.module_path]  # paths are relative to the block we called
    mass[branch] = mass.get(branch, 0.0) + np.asarray(a)
    entropy_sum[branch] = entropy_sum.get(branch, 0.0) + np.asarray(h)
total = sum(m.sum() for m in mass.values())
print(f"{'branch':>6} {'share':>7} {'entropy':>8}   share at each input position")
for branch in ("query", "key", "value", "skip"):
    per_position = mass[branch][0].sum(-1) / total
    a, h = mass[branch].sum(), entropy_sum[branch].sum()
    pooled_entropy = h / a + np.log(a)  # entropy of all paths through the branch, pooled over x
    print(f"{branch:>6} {a / total:7.1%} {pooled_entropy:>8.3f}   {np.round(per_position, 3)}")
assert abs(sum(m.sum() for m in mass.values()) - np.asarray(x.abs_val_grad).sum()) <= 1e-4 * total
# position 2's output reads only its own query and its own residual; keys and values come from everywhere
for branch in ("query", "skip"):
    assert np.all(mass[branch][0, [0, 1, 3, 4, 5]] == 0) and mass[branch][0, 2].sum() > 0
assert np.all(mass["key"][0].sum(-1) > 0) and np.all(mass["value"][0].sum(-1) > 0)

# %% [markdown]
# ## The single best path
# `max_path` keeps, per element, the best single path to the output with back-pointers;
# `bf.top_path` walks it. Each hop is one edge; the hops' partials multiply to the value.
# Module paths are relative to the module we called (`output` is `attention.output`);
# nodes made outside any module (the block input, our weighting) have none.

# %%
top = np.asarray(x.max_path_of_output_wrt_node[0])
start = np.unravel_index(top.argmax(), top.shape)
hops = bf.top_path(x, start)
print(f"  {'module path':<18} {'op':<12} {'element':<14} {'value':>9}")
for hop in hops:
    made_by = hop.node.op.name if hop.node.op else "input"
    print(f"  {hop.module_path or '(no module)':<18} {made_by:<12} {str(hop.index):<14} {hop.value:9.4f}")
print("the top path enters through", "the skip branch" if hops[1].module_path == "output" else hops[1].module_path)
assert hops[0].value == top.max() and hops[-1].node is scalar and hops[-1].value == 1.0
print("attention playground: all checks passed")
