"""Figures of an Explanation: token saliency, branch shares per layer, the top path (matplotlib, PNG).

Text is set in DejaVu Sans (matplotlib's own font: Latin, Greek, Cyrillic, Arabic, Hebrew, ...)
and falls back, glyph by glyph, to installed fonts that have what it lacks. Characters that no
installed font has (often Chinese, Japanese or Korean: DejaVu has no CJK, and a bare system may
have no CJK font) draw as boxes, with one warning that names them. Text is never read as
mathtext, so a `$` in a sentence is a dollar sign.
"""

import contextlib
import functools
import textwrap
import warnings

import numpy as np

from .explanation import ATTENTION_BRANCHES, MLP_BRANCHES

BASE_FONT = "DejaVu Sans"
# answers the question the two right panels raise side by side
SKIP_NOTE = ("Many paths vs one path: why skip can carry ~0 of the abs-gradient mass while the top path takes skip "
             "in every layer. A share sums |path products| over all paths; query, key and value fan out through dense "
             "weights to every token and head, so nearly all paths, and their mass, go through them. Skip is one "
             "identity edge per unit: few paths, but each multiplies by 1 where the others multiply by small "
             "weights, so the single largest path takes it.")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: no display is needed or assumed
    import matplotlib.pyplot as plt
    return plt


def plot_explanation(explanation, path):
    """One PNG with three panels and a footnote; returns the path written."""
    plt = _pyplot()
    figure = explanation_figure(explanation)
    with _glyph_warnings_said_once():
        figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def explanation_figure(explanation):
    """The matplotlib Figure that `plot_explanation` saves (to restyle before saving it yourself)."""
    plt = _pyplot()
    families, no_glyph = _font_families(_texts(explanation))
    if no_glyph:
        warnings.warn(f"no installed font has glyphs for {''.join(sorted(no_glyph))!r}: they show as boxes in the "
                      "plot; install a font that covers them (e.g. Noto Sans CJK for Chinese, Japanese, Korean)",
                      stacklevel=2)
    n_tokens = len(explanation.tokens)
    # text is created under these settings, and keeps its font when drawn later
    with plt.rc_context({"font.family": families, "text.parse_math": False}), _glyph_warnings_said_once():
        figure, axes = plt.subplots(1, 3, figsize=(17, max(5.6, 2.6 + 0.2 * n_tokens)),
                                    gridspec_kw={"width_ratios": [1.3, 1.0, 1.3]})
        _saliency(axes[0], explanation)
        _branch_heatmap(figure, axes[1], explanation)
        _top_path(axes[2], explanation)
        quantity = f"{explanation.quantity}({explanation.target})"
        if explanation.contrast:
            quantity += f" − {explanation.quantity}({explanation.contrast})"
        figure.suptitle(f"{textwrap.shorten(explanation.text, 160)}\n{quantity} = {explanation.value:.3f}",
                        fontsize=11)
        note = figure.text(0.01, 0.01, textwrap.fill(SKIP_NOTE, 210), fontsize=8.5, color="#444444", va="bottom")
        renderer = figure.canvas.get_renderer()
        figure.tight_layout(rect=(0, note.get_window_extent(renderer).y1 / figure.bbox.height + 0.01, 1, 1))
    return figure


@contextlib.contextmanager
def _glyph_warnings_said_once():
    """explanation_figure said which characters no font has; matplotlib says it per glyph, per layout and draw."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        yield


def _texts(explanation):
    return [explanation.text, explanation.target, explanation.contrast or "", *explanation.tokens]


def _font_families(texts):
    """[BASE_FONT, then installed fonts for the characters it lacks], and the characters no font has."""
    from matplotlib import font_manager

    missing = {c for text in texts for c in text if not c.isspace()} - _glyphs(font_manager.findfont(BASE_FONT))
    families = [BASE_FONT]
    for font in font_manager.fontManager.ttflist:
        if not missing:
            break
        # Last Resort draws a placeholder for every character: a box by another name
        if font.name in families or font.name.startswith("Last Resort"):
            continue
        found = missing & _glyphs(font.fname)
        if found:
            families.append(font.name)
            missing -= found
    return families, missing


@functools.lru_cache(maxsize=None)
def _glyphs(font_file):
    from matplotlib.ft2font import FT2Font
    return frozenset(map(chr, FT2Font(font_file).get_charmap()))


def _saliency(ax, explanation):
    attribution = explanation.tokens_attribution
    positions = np.arange(len(explanation.tokens))
    mass = 10.0 ** (attribution.log10_abs_grad - attribution.log10_abs_grad.max())  # the sums pass 1e38
    share = mass / mass.sum()
    colors = ["#d62728" if p == explanation.mask_position else "#1f77b4" for p in positions]
    ax.barh(positions, share, color=colors)
    ax.set_yticks(positions, explanation.tokens)
    ax.invert_yaxis()
    ax.set_xlabel("bar: share of abs-gradient mass (saliency)\nH: path entropy (nats) of the token's paths to "
                  "the quantity")
    ax.set_title("Tokens (red: the mask)")
    for p, (s, h) in enumerate(zip(share, attribution.entropy)):
        ax.text(s, p, f"  H={h:.1f}", va="center", fontsize=8)
    ax.set_xlim(0, share.max() * 1.35)


def _branch_heatmap(figure, ax, explanation):
    columns = [f"attn {b}" for b in ATTENTION_BRANCHES] + [f"ffn {b}" for b in MLP_BRANCHES]
    shares = np.array([[layer.attention_share[b] for b in ATTENTION_BRANCHES]
                       + [layer.mlp_share[b] for b in MLP_BRANCHES] for layer in explanation.layers])
    image = ax.imshow(shares, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.axvline(len(ATTENTION_BRANCHES) - 0.5, color="white", lw=3)  # the two groups that each sum to 1
    ax.set_xticks(range(len(columns)), columns, rotation=40, ha="right")
    ax.set_yticks(range(len(explanation.layers)), [f"layer {layer.layer}" for layer in explanation.layers])
    for (i, j), value in np.ndenumerate(shares):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black",
                fontsize=8)
    ax.set_title("Share of abs-gradient mass per branch\n(each layer: attn columns sum to 1, ffn too)")
    from mpl_toolkits.axes_grid1 import make_axes_locatable
    colorbar_axes = make_axes_locatable(ax).append_axes("right", size="5%", pad=0.1)  # as tall as the heatmap
    figure.colorbar(image, cax=colorbar_axes, label="share of the sub-block's abs-gradient mass")


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
    # the panel is ~350 pt wide: smaller labels for long texts, so that neighbours never touch
    ax.set_xticks(range(len(tokens)), tokens, rotation=60, ha="right", fontsize=min(8.0, 250 / len(tokens)))
    ax.set_yticks(range(len(layers)), [f"layer {layer.layer}" for layer in layers])
    ax.set_xlabel("token the path enters the layer at (dashed: the mask)")
    ax.set_ylabel("encoder layer (input)")
    ax.grid(True, alpha=0.25)
    ax.plot(xs, ys, "-o", color="#d62728", lw=2, ms=7)
    for layer in layers:
        if layer.top_path_token is not None:
            ax.annotate(layer.top_path_branch, (layer.top_path_token, layer.layer), textcoords="offset points",
                        xytext=(8, 6), fontsize=9)
    ax.axvline(explanation.mask_position, color="grey", ls="--", lw=1)
    ax.set_title("Top gradient path: the single largest path,\nand the attention branch it takes in each layer")
