"""Figures of an Explanation: token saliency, branch shares per layer, the top path (matplotlib, PNG)."""

import numpy as np

from .explanation import ATTENTION_BRANCHES, MLP_BRANCHES


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: no display is needed or assumed
    import matplotlib.pyplot as plt
    return plt


def plot_explanation(explanation, path):
    """One PNG with three panels; returns the path written."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1.3, 1.0, 1.3]})
    _saliency(axes[0], explanation)
    _branch_heatmap(fig, axes[1], explanation)
    _top_path(axes[2], explanation)
    quantity = f"{explanation.quantity}({explanation.target})"
    if explanation.contrast:
        quantity += f" − {explanation.quantity}({explanation.contrast})"
    fig.suptitle(f"{explanation.text}\n{quantity} = {explanation.value:.3f}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _saliency(ax, explanation):
    attribution = explanation.tokens_attribution
    positions = np.arange(len(explanation.tokens))
    share = attribution.abs_grad / attribution.abs_grad.sum()
    colors = ["#d62728" if p == explanation.mask_position else "#1f77b4" for p in positions]
    ax.barh(positions, share, color=colors)
    ax.set_yticks(positions, explanation.tokens)
    ax.invert_yaxis()
    ax.set_xlabel("share of abs-gradient mass (saliency)")
    ax.set_title("Tokens (red: the mask)")
    for p, (s, h) in enumerate(zip(share, attribution.entropy)):
        ax.text(s, p, f"  H={h:.1f}", va="center", fontsize=8)
    ax.set_xlim(0, share.max() * 1.35)


def _branch_heatmap(fig, ax, explanation):
    columns = [f"attn {b}" for b in ATTENTION_BRANCHES] + [f"ffn {b}" for b in MLP_BRANCHES]
    shares = np.array([[layer.attention_share[b] for b in ATTENTION_BRANCHES]
                       + [layer.mlp_share[b] for b in MLP_BRANCHES] for layer in explanation.layers])
    image = ax.imshow(shares, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=40, ha="right")
    ax.set_yticks(range(len(explanation.layers)), [f"layer {layer.layer}" for layer in explanation.layers])
    for (i, j), value in np.ndenumerate(shares):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black",
                fontsize=8)
    ax.set_title("Share of abs-gradient mass per branch")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def _top_path(ax, explanation):
    """Layers bottom to top, tokens left to right: where the top path enters each layer and by which branch."""
    tokens, layers = explanation.tokens, explanation.layers
    xs, ys = [], []
    for layer in layers:
        if layer.top_path_token is not None:
            xs.append(layer.top_path_token)
            ys.append(layer.layer)
    ax.set_xlim(-0.5, len(tokens) - 0.5)
    ax.set_ylim(-0.7, len(layers) - 0.3)
    ax.set_xticks(range(len(tokens)), tokens, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(layers)), [f"layer {layer.layer}" for layer in layers])
    ax.grid(True, alpha=0.25)
    ax.plot(xs, ys, "-o", color="#d62728", lw=2, ms=7)
    for layer in layers:
        if layer.top_path_token is not None:
            ax.annotate(layer.top_path_branch, (layer.top_path_token, layer.layer), textcoords="offset points",
                        xytext=(8, 6), fontsize=9)
    ax.axvline(explanation.mask_position, color="grey", ls="--", lw=1)
    ax.set_title("Top gradient path: token and branch entering each layer")
