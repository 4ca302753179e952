# %% [markdown]
# # BF BERT, one module at a time: the embeddings
#
# `BFBertEmbeddings` is transformers' `BertEmbeddings` on brunoflow: the same checkpoint keys,
# the same numbers, but its backward pass runs over semirings. We save a tiny torch BERT,
# load it into BF, run the embeddings forward, then backprop every semiring and compare the
# gradient with torch autograd.

# %%
import tempfile

import numpy as np
import torch
from transformers import BertConfig, BertModel, BFBertModel

import brunoflow as bf

torch.manual_seed(0)
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, hidden_dropout_prob=0.0, attn_implementation="eager")
torch_model = BertModel(config).eval()
with torch.no_grad():  # every weight off its init, so a weight loaded into the wrong place shows
    for param in torch_model.parameters():
        param.add_(0.1 * torch.randn_like(param))
folder = tempfile.mkdtemp()
torch_model.save_pretrained(folder)
bf_model = BFBertModel.from_pretrained(folder)  # the same folder, the same keys

# %% [markdown]
# ## Forward: word + token-type + position embeddings, then LayerNorm

# %%
input_ids = np.array([[2, 7, 11, 3, 19, 4]])
token_type_ids = np.array([[0, 0, 0, 1, 1, 1]])
position_ids = np.arange(6)[None]
out = bf_model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids)
expected = torch_model.embeddings(input_ids=torch.tensor(input_ids), token_type_ids=torch.tensor(token_type_ids))
diff = np.abs(np.asarray(out.val) - expected.detach().numpy()).max()
print(f"embeddings output: shape {out.shape}, max |Δ| vs torch = {diff:.1e}")
assert diff <= 1e-5

# %% [markdown]
# ## Backward over every semiring
# The output is a tensor, so we backprop a scalar: a fixed random weighting of it. One sweep
# fills, on every node: `grad` (the gradient), `abs_val_grad` (the sum over paths of |product of
# partials|: gradient *mass*, no cancellation), `entropy_wrt_output` (how spread that mass is
# over paths), `max_grad` (operation-granular max-product) and, on request, `max_path` (the
# single best path).

# %%
weights = np.random.default_rng(0).normal(size=out.shape).astype(np.float32)
scalar = (out * weights).sum()
scalar.backprop(values_to_compute=("grad", "abs_val_grad", "entropy", "max_grad", "max_path"))

torch_table = torch_model.embeddings.word_embeddings.weight
torch_out = torch_model.embeddings(input_ids=torch.tensor(input_ids), token_type_ids=torch.tensor(token_type_ids))
(torch_out * torch.tensor(weights)).sum().backward()
bf_table = bf_model.embeddings.word_embeddings.weight
diff = np.abs(np.asarray(bf_table.grad) - torch_table.grad.numpy()).max()
print(f"grad of the word-embedding table: max |Δ| vs torch autograd = {diff:.1e}")
assert diff <= 1e-5

# %% [markdown]
# Rows of the table that no input token looked up get no gradient at all, and no path.
# For the rows that were used, compare the plain gradient with the path-based semirings:

# %%
entropy = np.asarray(bf_table.compute_entropy().val)
print(f"{'token id':>8} {'|grad|':>9} {'abs_val_grad':>13} {'entropy':>8} {'max path':>9}")
for token in input_ids[0]:
    row = slice(token, token + 1)
    print(f"{token:>8} {np.abs(np.asarray(bf_table.grad[row])).sum():>9.3f} "
          f"{np.asarray(bf_table.abs_val_grad[row]).sum():>13.3f} {entropy[token].mean():>8.3f} "
          f"{np.asarray(bf_table.max_path_of_output_wrt_node[0][row]).max():>9.3f}")
unused = np.setdiff1d(np.arange(config.vocab_size), input_ids)
assert np.all(np.asarray(bf_table.grad)[unused] == 0) and np.all(np.asarray(bf_table.abs_val_grad)[unused] == 0)
assert np.all(np.asarray(bf_table.max_path_of_output_wrt_node[1])[unused] == -2)  # -2: no path exists
# mass over paths bounds the net gradient: |Σ paths| ≤ Σ |paths|
assert np.all(np.asarray(bf_table.abs_val_grad) >= np.abs(np.asarray(bf_table.grad)) - 1e-6)
print("embeddings playground: all checks passed")
