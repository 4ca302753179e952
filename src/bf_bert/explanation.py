"""Explanation: what one forward and one all-semiring backprop say about one prediction.

Plain data (numpy arrays, lists, dicts), so it serialises, tabulates and plots without the
graph; the computation lives in `explain.py`.
"""

import json
from dataclasses import dataclass, field

import numpy as np

ATTENTION_BRANCHES = ("query", "key", "value", "skip")
MLP_BRANCHES = ("mlp", "skip")


@dataclass
class TokenAttribution:
    """Per input token, from its embedding (the `inputs_embeds` row) to the quantity."""

    grad_norm: np.ndarray        # (S,) ‖∂q/∂e_t‖₂
    grad_x_input: np.ndarray     # (S,) ∂q/∂e_t · e_t
    log10_abs_grad: np.ndarray   # (S,) log10 Σ_units abs_val_grad: gradient mass over all paths (saliency)
    entropy: np.ndarray          # (S,) Shannon entropy of the paths from e_t to the quantity
    max_grad: np.ndarray         # (S,) operation-granular max-product (as the original), max over units
    top_path: np.ndarray         # (S,) the exact top path value from the token: max over its units and paths


@dataclass
class LayerAttribution:
    """One encoder layer: how gradient mass and the top path cross its two sub-blocks.

    `*_share` and `*_entropy` are per branch (names in ATTENTION_BRANCHES / MLP_BRANCHES):
    the branch's share of abs-gradient mass reaching the sub-block's input, and the entropy
    of the paths through it. `oplus[t]` / `bucket_sum[t]` credit a branch for token t: the
    unit with the largest max-product value decides (oplus), or each unit's value goes to
    its winning branch's bucket and the biggest bucket wins (`buckets[t]` holds them).
    """

    layer: int
    module_path: str
    attention_share: dict
    attention_entropy: dict
    mlp_share: dict
    mlp_entropy: dict
    oplus: list
    bucket_sum: list
    buckets: list
    top_path_token: int | None = None     # where the top path enters this layer
    top_path_branch: str | None = None    # and the attention branch it takes


@dataclass
class Hop:
    """One element of the top path: the module that made its tensor, the op, its index in that
    tensor, and the best path value from it to the output. For a logit quantity the decoder
    computes only q's words, so its tensors index [target, contrast], not the vocabulary."""

    module_path: str
    op: str
    position: tuple
    value: float


@dataclass
class Explanation:
    text: str
    tokens: list
    mask_position: int
    target: str
    contrast: str | None
    quantity: str                      # "logit" or "log_prob"
    value: float                       # the quantity: q(target) − q(contrast)
    tokens_attribution: TokenAttribution
    layers: list = field(default_factory=list)
    top_path: list = field(default_factory=list)   # Hops from the output back to an input embedding

    # -- export ---------------------------------------------------------------------------
    def to_dict(self):
        t = self.tokens_attribution
        return {
            "text": self.text, "tokens": self.tokens, "mask_position": self.mask_position,
            "target": self.target, "contrast": self.contrast, "quantity": self.quantity,
            "value": self.value,
            "tokens_attribution": {k: np.asarray(getattr(t, k)).tolist() for k in t.__dataclass_fields__},
            "layers": [{k: getattr(layer, k) for k in layer.__dataclass_fields__} for layer in self.layers],
            "top_path": [{"module_path": h.module_path, "op": h.op, "position": list(h.position),
                          "value": h.value} for h in self.top_path],
        }

    def to_json(self, path=None, indent=2):
        text = json.dumps(self.to_dict(), indent=indent, default=_json_default)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    def to_dataframe(self):
        """One row per token × layer × branch (pandas; `pip install brunoflow[dataframe]`)."""
        return rows_to_dataframe(self.rows())

    def rows(self):
        """token × layer × branch records: the long table explain_batch concatenates."""
        t = self.tokens_attribution
        rows = []
        for layer in self.layers:
            for pos, token in enumerate(self.tokens):
                for branch in ATTENTION_BRANCHES:
                    rows.append({
                        "text": self.text, "token_index": pos, "token": token, "layer": layer.layer,
                        "branch": branch, "share": layer.attention_share[branch],
                        "entropy": layer.attention_entropy[branch],
                        "bucket": layer.buckets[pos][branch], "oplus": layer.oplus[pos] == branch,
                        "bucket_sum": layer.bucket_sum[pos] == branch,
                        "token_log10_abs_grad": float(t.log10_abs_grad[pos]), "token_entropy": float(t.entropy[pos]),
                        "token_top_path": float(t.top_path[pos]),
                    })
        return rows

    def plot(self, path):
        """Write a PNG: token saliency, branch shares per layer, the top path through the layers."""
        from .plots import plot_explanation
        return plot_explanation(self, path)

    def summary(self):
        """A readable table: tokens with their attributions, then the branches per layer."""
        t = self.tokens_attribution
        quantity = f"{self.quantity}({self.target})" + (f" − {self.quantity}({self.contrast})" if self.contrast else "")
        lines = [f"{quantity} at position {self.mask_position} = {self.value:.4f}", "",
                 f"{'token':>14} {'grad·x':>10} {'|grad|':>10} {'log10 abs-grad':>14} {'entropy':>8} {'top path':>10}"]
        for pos, token in enumerate(self.tokens):
            lines.append(f"{token:>14} {t.grad_x_input[pos]:>10.4f} {t.grad_norm[pos]:>10.4f} "
                         f"{t.log10_abs_grad[pos]:>14.3f} {t.entropy[pos]:>8.3f} {t.top_path[pos]:>10.3e}")
        lines += ["", f"{'layer':>5} {'query':>7} {'key':>7} {'value':>7} {'skip':>7} | {'mlp':>7} {'skip':>7} "
                  f"| top path enters at"]
        for layer in self.layers:
            a, m = layer.attention_share, layer.mlp_share
            where = (f"{self.tokens[layer.top_path_token]} via {layer.top_path_branch}"
                     if layer.top_path_token is not None else "-")
            lines.append(f"{layer.layer:>5} {a['query']:>7.3f} {a['key']:>7.3f} {a['value']:>7.3f} "
                         f"{a['skip']:>7.3f} | {m['mlp']:>7.3f} {m['skip']:>7.3f} | {where}")
        return "\n".join(lines)


def rows_to_dataframe(rows):
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError("to_dataframe needs pandas: pip install 'brunoflow[dataframe]'") from err
    return pd.DataFrame(rows)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")
