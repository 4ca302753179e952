# %% [markdown]
# # BF BERT, one module at a time: the embeddings
#
# BERT's first block turns token ids into vectors: it looks up a row of the word-embedding
# table for each token, adds a row of the position table (where the token sits) and a row of
# the token-type table (sentence A or B), then applies LayerNorm.
#
# `BFBertEmbeddings` is transformers' `BertEmbeddings` on brunoflow: the same checkpoint keys,
# the same numbers, but its backward pass runs over semirings. We save a tiny torch BERT,
# load that folder into BF, run the embeddings forward, then backprop every semiring and
# compare the gradient with torch autograd.

# %%
import tempfile

import numpy as np
import torch
from transformers import BertConfig, BertModel, BFBertModel

torch.manual_seed(0)
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
                    attn_implementation="eager")
torch_model = BertModel(config).eval()
with torch.no_grad():  # move every weight off its init, so a weight loaded into the wrong place shows
    for param in torch_model.parameters():
        param.add_(0.1 * torch.randn_like(param))
with tempfile.TemporaryDirectory() as folder:
    torch_model.save_pretrained(folder)
    bf_model = BFBertModel.from_pretrained(folder)  # the same folder, the same keys
print(bf_model.embeddings)

# %% [markdown]
# ## Forward: word + token-type + position embeddings, then LayerNorm
# Called on its own, `BFBertEmbeddings` wants explicit `token_type_ids` and `position_ids`
# (torch's module defaults them to zeros and 0..S-1; `BFBertModel` does the same for you).

# %%
input_ids = np.array([[2, 7, 11, 3, 19, 4]])
token_type_ids = np.array([[0, 0, 0, 1, 1, 1]])
position_ids = np.arange(6)[None]
out = bf_model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids)
torch_out = torch_model.embeddings(input_ids=torch.tensor(input_ids), token_type_ids=torch.tensor(token_type_ids))
diff = np.abs(np.asarray(out.val) - torch_out.detach().numpy()).max()
print(f"embeddings output: shape {out.shape}, max |Δ| vs torch = {diff:.1e}")
assert diff <= 1e-5

# %% [markdown]
# ## Backward over every semiring
# The output is a tensor, so we backprop a scalar: a fixed random weighting of it. One sweep
# fills, on every node:
#
# * `grad`: the gradient (what torch autograd computes);
# * `abs_val_grad`: the sum over paths of |product of partials|, gradient *mass* with no
#   cancellation between paths;
# * `entropy_wrt_output` (read with `compute_entropy()`): how evenly that mass spreads over
#   the paths, in nats;
# * `max_grad_of_output_wrt_node`: operation-granular max-product (as the original brunoflow);
# * `max_path_of_output_wrt_node` (on request): the value of the single best path.

# %%
weights = np.random.default_rng(0).normal(size=out.shape).astype(np.float32)
scalar = (out * weights).sum()
scalar.backprop(values_to_compute=("grad", "abs_val_grad", "entropy", "max_grad", "max_path"))
(torch_out * torch.tensor(weights)).sum().backward()

print(f"{'parameter':<32} {'max |Δ| of grad vs torch':>24}")
for name, param in torch_model.embeddings.named_parameters():
    ours = bf_model.embeddings
    for part in name.split("."):
        ours = getattr(ours, part)
    diff = np.abs(np.asarray(ours.grad) - param.grad.numpy()).max()
    print(f"{name:<32} {diff:>24.1e}")
    assert diff <= 1e-5, name

# %% [markdown]
# ## What the semirings say about each token
# Each token's row of the word table feeds exactly one position. Before LayerNorm the three
# lookups are simply added, and an addition passes the gradient on unchanged, so that row
# gets the same gradient, mass and paths as the position-table row of the same position.
#
# Columns: ‖grad‖₁ of the row; its abs-gradient mass (always ≥ ‖grad‖₁: equal only when no
# paths cancel); the mean entropy of the paths from one of its units; the row's best single
# path (`max_path`) and its operation-granular `max_grad`.

# %%
table = bf_model.embeddings.word_embeddings.weight
positions = bf_model.embeddings.position_embeddings.weight
entropy = np.asarray(table.compute_entropy().val)
print(f"{'pos':>3} {'token':>5} {'‖grad‖₁':>9} {'abs-grad':>9} {'entropy':>8} {'max path':>9} {'max_grad':>9}")
for pos, token in enumerate(input_ids[0]):
    print(f"{pos:>3} {token:>5} {np.abs(np.asarray(table.grad[token])).sum():>9.3f} "
          f"{np.asarray(table.abs_val_grad[token]).sum():>9.3f} {entropy[token].mean():>8.3f} "
          f"{np.asarray(table.max_path_of_output_wrt_node[0][token]).max():>9.3f} "
          f"{np.asarray(table.max_grad_of_output_wrt_node[0][token]).max():>9.3f}")
    for field in ("grad", "abs_val_grad"):
        assert np.allclose(getattr(table, field)[token], getattr(positions, field)[pos], rtol=1e-5, atol=1e-6)
# mass over paths bounds the net gradient: |Σ paths| ≤ Σ |paths|
assert np.all(np.asarray(table.abs_val_grad) >= np.abs(np.asarray(table.grad)) - 1e-5)

# %% [markdown]
# At each row's strongest unit the two max-products agree: that unit's best route runs
# through LayerNorm's elementwise ops, where every op has one edge per element, so summing
# inside an op changes nothing. Elsewhere the operation-granular value comes through
# LayerNorm's mean or variance (a reduction broadcast back to every unit: many edges inside
# one op, which `max_grad` sums), and the two disagree:

# %%
best_path = np.asarray(table.max_path_of_output_wrt_node[0])[input_ids[0]]
op_granular = np.asarray(table.max_grad_of_output_wrt_node[0])[input_ids[0]]
differ = ~np.isclose(best_path, op_granular, rtol=1e-4, atol=1e-6)
print(f"max_path and max_grad differ on {differ.sum()} of the {differ.size} used units "
      f"(largest gap {np.abs(best_path - op_granular).max():.3f})")
assert np.allclose(best_path.max(-1), op_granular.max(-1), rtol=1e-4)

# %% [markdown]
# Rows of the table that no token looked up get no gradient and no path at all: `max_path`'s
# back-pointer there is -2, "no path exists".

# %%
unused = np.setdiff1d(np.arange(config.vocab_size), input_ids)
assert np.all(np.asarray(table.grad)[unused] == 0) and np.all(np.asarray(table.abs_val_grad)[unused] == 0)
assert np.all(np.asarray(table.max_path_of_output_wrt_node[1])[unused] == -2)
print(f"{len(unused)} unused rows: zero gradient, zero mass, no path")
print("embeddings playground: all checks passed")
