# %% [markdown]
# # Explaining subject–verb agreement: "The keys to the cabinet [MASK] on the table."
#
# The verb must agree with *keys* (plural), not with the nearer *cabinet* (singular, an
# "attractor"). We ask the embedded default model (the real all-MiniLM-L6-v2 encoder with an
# MLM head this project fitted on agreement sentences — not BERT-base) how it scores
# logit(are) − logit(is), and `bf_bert.explain` answers with one forward and one backprop over
# every semiring: saliency per token, how gradient mass crosses each layer's branches, and the
# exact top gradient path from the output down to one input embedding unit.
#
# Path sums of |partials| grow ~1e6 per layer on a real model, past float32's range (3e38):
# brunoflow keeps them as mantissa · 2**exponent, so the model runs in float32 and the
# summary shows their log10.

# %%
import itertools
import os
import tempfile

import numpy as np
from transformers import AutoTokenizer, BFBertForMaskedLM

from bf_bert.default_model import default_model_path
from bf_bert.explain import explain

TEXT = "The keys to the cabinet [MASK] on the table."
path = default_model_path()
model = BFBertForMaskedLM.from_pretrained(path)
tokenizer = AutoTokenizer.from_pretrained(path)
explanation = explain(model, tokenizer, TEXT, target="are", contrast="is")

# %% [markdown]
# ## The summary: tokens, then layers
# Per token: grad·input, the gradient norm, log10 of its abs-gradient mass (saliency), the entropy of its
# paths, and the value of its best single path. Per layer: each branch's share of the
# abs-gradient mass entering the attention sub-block (query/key/value/skip) and the MLP
# sub-block, and where the top path enters the layer.

# %%
print(explanation.summary())

# %% [markdown]
# ## Reading it
# Which tokens carry the most gradient mass, and does the top path stay on the mask?

# %%
tokens = explanation.tokens
saliency = explanation.tokens_attribution.log10_abs_grad
order = np.argsort(-saliency)
print("most salient tokens:", [tokens[i] for i in order[:4]])
for layer in explanation.layers:
    share = layer.attention_share
    print(f"layer {layer.layer}: top path enters at {tokens[layer.top_path_token]!r} via {layer.top_path_branch}; "
          f"largest attention branch by mass: {max(share, key=share.get)}")

# %% [markdown]
# ## The top path, hop by hop
# `explanation.top_path` lists the exact top path from the output down to one unit of one
# input embedding; each hop is one edge and carries the best path value from there to the
# output. Eighty-odd hops, so we fold consecutive hops inside the same sub-block into one line
# (the value shown is the one on leaving that block towards the input). Hops with no module
# are made by `explain` itself (picking the mask row, the target − contrast difference) or are
# the input embeddings.

# %%
hops = explanation.top_path


def block(module_path):
    parts = module_path.split(".")
    return ".".join(parts[:5] if parts[:2] == ["bert", "encoder"] else parts[:3]) or "(no module)"


def where(position):
    return f"{tokens[position[1]]!r} unit {position[2]}" if len(position) == 3 else \
        f"head unit {position[-1]}" if position else "the output"


print(f"{'block':<34} {'hops':>4}  {'element':<20} {'value':>9}")
for name, run in itertools.groupby(hops, key=lambda hop: block(hop.module_path)):
    run = list(run)
    print(f"{name:<34} {len(run):>4}  {where(run[-1].position):<20} {run[-1].value:>9.3g}")
# explain decodes only q's words (the other logits never reach q): the decoder's positions
# index [target, contrast], not the vocabulary
word = ("are", "is")[next(hop for hop in hops if hop.module_path == "cls.predictions.decoder").position[-1]]
print(f"the path leaves the output through the logit of {word!r}")
print(f"top path: {len(hops)} hops, from the output ({hops[0].value:.3g}) to "
      f"{tokens[hops[-1].position[1]]!r} embedding unit {hops[-1].position[2]} (value {hops[-1].value:.3g})")
assert explanation.mask_position == tokens.index("[MASK]")
assert all(abs(sum(layer.attention_share.values()) - 1) < 1e-5 for layer in explanation.layers)  # float32
assert hops[0].module_path == "" and hops[-1].op == "inputs_embeds"
# the walk starts at the embedding unit with the largest top-path value, which the token table reports
assert np.isclose(hops[-1].value, explanation.tokens_attribution.top_path.max())
assert all(layer.top_path_token is not None for layer in explanation.layers)

# %% [markdown]
# Mass and the top path can tell different stories. The skip branches carry a tiny share of
# the abs-gradient *mass* (attention mixes every token with every other, so there are vastly
# more paths through query/key/value, each weak), yet the single strongest path may still run
# down the residual stream of one token. Both are true at once: they answer different
# questions ("where does most of the gradient flow?" vs "what is the one strongest route?").

# %% [markdown]
# ## Plots
# Token saliency, the layer × branch heat map of gradient mass, and the top path drawn
# through the layers.

# %%
out_dir = os.environ.get("PLAYGROUND_OUT") or tempfile.mkdtemp(prefix="playground_")
os.makedirs(out_dir, exist_ok=True)
png = explanation.plot(os.path.join(out_dir, "explain_agreement.png"))
explanation.to_json(os.path.join(out_dir, "explain_agreement.json"))
print("wrote", png)
print("explain playground: all checks passed")
