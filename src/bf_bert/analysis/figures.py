"""Figures of the subject–verb agreement analysis: PNGs drawn from the long tables alone.

What the paper's top-path figure plots, and which statistic each of ours shows, is in
`aggregates.py`'s docstring; these functions take a run's out_dir, the tables, or an
aggregate's own table.
"""

import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from .aggregates import CREDITS, GROUP_TITLES, GROUPS, RULE_NAMES, accuracy_and_entropy_by_attractors, top_path_by_layer

STATISTICS = {"share": "share of tokens taking the branch", "mean_value": "mean top-path value (⊕ credit)",
              "mean_bucket": "mean bucket value"}
# Okabe–Ito colours (colour-blind safe); "other" is grey and dashed
BRANCH_STYLE = {"key": ("#0072B2", "o", "-"), "query": ("#E69F00", "s", "-"), "value": ("#009E73", "^", "-"),
                "skip": ("#CC79A7", "D", "-"), "other": ("#777777", "x", "--")}


# -- figures ---------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: no display is needed or assumed
    import matplotlib.pyplot as plt
    return plt


def _is_dir(source):
    return isinstance(source, (str, os.PathLike))


def _read(out_dir, *names):
    from .store import read_table
    return [read_table(out_dir, name) for name in names]


def _aggregated(source, ready_column, names, aggregate, what):
    """A figure's table from `source`: that table itself (it has `ready_column`), a run's
    out_dir, or the DataFrames `names` that `aggregate` takes."""
    if isinstance(source, pd.DataFrame) and ready_column in source.columns:
        return source
    if _is_dir(source):
        frames = _read(source, *names)
    elif isinstance(source, (tuple, list)) and len(source) == 2:
        frames = source
    else:
        raise TypeError(f"source: {what}'s table, an out_dir, or ({', '.join(names)}) DataFrames")
    return aggregate(*frames)


def _top_path_table(source, rule):
    return _aggregated(source, "share", ("branches", "sentences"),
                       lambda branches, sentences: top_path_by_layer(branches, sentences, rule=rule),
                       "top_path_by_layer()")


def figure_top_path_by_layer(source, path, model_label, *, rule="oplus", statistic="share", mask_panel=True,
                             dpi=120):
    """Write the §5.2 figure as a PNG; returns `path`.

    source: `top_path_by_layer`'s table, a run's out_dir, or (branches, sentences) DataFrames.
    Panels: all tokens, the subject, the attractors before the verb (+ the [MASK] token if
    `mask_panel`); x = layer, one line per branch. statistic "share": the proportion of the
    panel's tokens whose top path takes the branch, with 95% Wilson bands; "mean_value": the mean
    top-path value ⊕ credits to the branch (the paper's y); "mean_bucket": the mean bucket value
    per branch (the paper's y under the bucket-sum rule). Every panel says how
    many tokens and sentences it has, and how many sentences it left out for unknown positions."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {tuple(STATISTICS)}, got {statistic!r}")
    table = _top_path_table(source, rule)
    rule = str(table["rule"].iloc[0]) if len(table) and "rule" in table.columns else rule
    groups = [g for g in GROUPS if mask_panel or g != "mask"]
    plt = _pyplot()
    with plt.rc_context({"text.parse_math": False, "font.size": 10.5}):
        rows, cols = (2, 2) if len(groups) == 4 else (1, len(groups))
        # values differ by orders of magnitude between panels ([MASK] vs the rest): own y scales
        figure, grid = plt.subplots(rows, cols, figsize=(5.4 * cols, 3.9 * rows + 1.9), sharey=statistic == "share",
                                    squeeze=False)
        axes = grid.ravel()
        drawn = set()
        layers = sorted(int(layer) for layer in table["layer"].unique())
        for ax, group in zip(axes, groups):
            drawn |= _top_path_panel(ax, table[table["group"] == group], group, statistic, layers)
        for ax in (grid[:, 0] if statistic == "share" else axes):
            ax.set_ylabel(STATISTICS[statistic])
        handles = [h for h, label in zip(*axes[0].get_legend_handles_labels()) if label in drawn] or \
            axes[0].get_legend_handles_labels()[0]
        figure.legend(handles, [h.get_label() for h in handles], loc="lower center", ncol=len(handles),
                      frameon=False, bbox_to_anchor=(0.5, 0.62 / (3.9 * rows + 1.9)))
        what, how, note = _top_path_captions(statistic, rule)
        figure.suptitle(f"{what}\n{how}\nModel: {model_label}", fontsize=12)
        figure.text(0.01, 0.01, textwrap.fill(note, int(15 * 5.4 * cols)), fontsize=8.5, color="#444444",
                    va="bottom")
        height = 3.9 * rows + 1.9
        figure.tight_layout(rect=(0, 1.3 / height, 1, 1 - 0.3 / height))
        figure.savefig(path, dpi=dpi)
        plt.close(figure)
    return path


def _top_path_captions(statistic, rule):
    """(title, how branches are credited, footnote) of the top-path figure for one statistic."""
    where = "Layer l = the input of encoder layer l, where the residual stream branches into query, key, value and skip."
    if statistic == "share":
        return ("Which self-attention branch the top gradient path takes at each layer", RULE_NAMES[rule],
                f"{where} 'All tokens' includes [CLS], [SEP] and [MASK]. Bands: 95% Wilson intervals that treat "
                "tokens as independent (too narrow where one sentence gives several tokens). This figure counts how "
                "often each branch is credited; the paper's figure plots the mean credited value (mean_value).")
    if statistic == "mean_value":
        return ("Top-path value credited to each self-attention branch, per layer (the paper's y)",
                "the token's top unit's max-product value goes to the branch its best path takes (⊕ rule), 0 to the "
                "others", f"{where} Lines are the mean over the panel's tokens; [CLS], [SEP] and [MASK] count in "
                "'All tokens'.")
    return ("Top-path value credited to each self-attention branch, per layer",
            "every unit's top-path value goes to the bucket of the branch its best path takes",
            f"{where} Each unit of the token's embedding adds its top-path value to the bucket of the branch its "
            "best path takes; lines are the mean bucket over the panel's tokens (the paper's y under its "
            "bucket-sum rule).")


def _top_path_panel(ax, rows, group, statistic, layers):
    n = int(rows["n"].max()) if len(rows) else 0
    n_sentences = int(rows["n_sentences"].max()) if len(rows) else 0
    n_unknown = int(rows["n_unknown"].max()) if len(rows) else 0
    subtitle = f"n = {n:,} token{'s' if n != 1 else ''} from {n_sentences:,} sentence{'s' if n_sentences != 1 else ''}"
    if group in ("subject", "attractors"):
        subtitle += f"\n{n_unknown:,} sentence{'s' if n_unknown != 1 else ''} left out (position unknown)"
    ax.set_title(f"{GROUP_TITLES[group]}\n{subtitle}", fontsize=10.5)
    ax.set_xlabel("layer")
    ax.grid(True, alpha=0.3)
    if layers:
        if len(layers) <= 13:
            ax.set_xticks(layers)
        else:
            from matplotlib.ticker import MaxNLocator
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(layers[0] - 0.25, layers[-1] + 0.25)
    drawn = set()
    for branch in CREDITS:
        line = rows[rows["branch"] == branch].sort_values("layer")
        if statistic != "share" and branch == "other":
            continue
        y = line[statistic].to_numpy(float)
        colour, marker, style = BRANCH_STYLE[branch]
        if branch == "other" and not (np.nan_to_num(y) > 0).any():
            ax.plot([], [], color=colour, marker=marker, ls=style, label=branch)  # keeps the legend complete
            continue
        ax.plot(line["layer"], y, color=colour, marker=marker, ls=style, lw=2, ms=5, label=branch)
        drawn.add(branch)
        if statistic == "share":
            ax.fill_between(line["layer"], line["share_low"], line["share_high"], color=colour, alpha=0.12, lw=0)
    if statistic == "share":
        ax.set_ylim(-0.03, 1.03)
        ax.yaxis.set_major_formatter(_percent())
    if n == 0:
        ax.text(0.5, 0.5, "no tokens with known positions", transform=ax.transAxes, ha="center", va="center",
                color="#aa0000", fontsize=11)
    return drawn


def _percent():
    from matplotlib.ticker import PercentFormatter
    return PercentFormatter(1.0, decimals=0)


def _attractor_table(source):
    return _aggregated(source, "accuracy", ("sentences", "tokens"), accuracy_and_entropy_by_attractors,
                       "accuracy_and_entropy_by_attractors()")


def figure_accuracy_entropy_by_attractors(source, path, model_label, *, entropy="per_token", dpi=120):
    """Write accuracy (left) and path entropy (right) against the number of attractors as a PNG;
    returns `path`. source: `accuracy_and_entropy_by_attractors`'s table, a run's out_dir, or
    (sentences, tokens) DataFrames. entropy: "per_token" (mean over a sentence's tokens, as the
    authors plot it) or "sum" (summed over its tokens). Error bars are 95% intervals; each point
    is labelled with its number of sentences."""
    if entropy not in ("per_token", "sum"):
        raise ValueError(f"entropy must be 'per_token' or 'sum', got {entropy!r}")
    table = _attractor_table(source)
    column = "entropy_per_token" if entropy == "per_token" else "entropy_sum"
    plt = _pyplot()
    with plt.rc_context({"text.parse_math": False, "font.size": 10.5}):
        figure, (left, right) = plt.subplots(1, 2, figsize=(11.5, 5.0))
        x = table["n_attractors"].to_numpy(int)
        acc = table["accuracy"].to_numpy(float)
        left.errorbar(x, acc, yerr=_yerr(acc, table["accuracy_low"], table["accuracy_high"]), fmt="o-",
                      color="#0072B2", ecolor="#0072B2", capsize=4, lw=2, ms=6)
        for xi, yi, k, m in zip(x, acc, table["n_correct"], table["n_scored"]):
            if np.isfinite(yi):
                left.annotate(f"{k:,}/{m:,}", (xi, yi), textcoords="offset points", xytext=(7, -13), fontsize=8.5,
                              color="#333333")
        left.set_ylim(-0.03, 1.05)
        left.yaxis.set_major_formatter(_percent())
        left.axhline(0.5, color="grey", ls=":", lw=1)
        left.text(0.01, 0.5, " chance", transform=left.get_yaxis_transform(), va="bottom", fontsize=8.5, color="grey")
        left.set_title("Agreement accuracy (q > 0)\n95% Wilson intervals; labels: correct / scored", fontsize=10.5)
        left.set_ylabel("accuracy")
        y = table[column].to_numpy(float)
        right.errorbar(x, y, yerr=_yerr(y, table[f"{column}_low"], table[f"{column}_high"]), fmt="s-",
                       color="#D55E00", ecolor="#D55E00", capsize=4, lw=2, ms=6)
        for xi, yi, m in zip(x, y, table["n_entropy"]):
            if np.isfinite(yi):
                right.annotate(f"n = {m:,}", (xi, yi), textcoords="offset points", xytext=(7, -13), fontsize=8.5,
                               color="#333333")
        per_sentence = "mean over its tokens" if entropy == "per_token" else "summed over its tokens"
        right.set_title(f"Path entropy per sentence: {per_sentence}\nmean over sentences, 95% t intervals",
                        fontsize=10.5)
        right.set_ylabel("path entropy of the input embeddings (nats)")
        for ax in (left, right):
            ax.set_xlabel("number of attractors")
            ax.set_xticks(x)
            if len(x):
                ax.set_xlim(x.min() - 0.4, x.max() + 0.7)
            ax.grid(True, alpha=0.3)
        unknown = int(table.attrs.get("n_unknown", 0))
        figure.suptitle(f"Subject–verb agreement against the number of attractors\nModel: {model_label}", fontsize=12)
        note = (f"{int(table['n'].sum()):,} sentences with a known number of attractors"
                + (f"; {unknown:,} with an unknown number left out" if unknown else "")
                + ". Mean tokens per sentence by number of attractors: "
                + ", ".join(f"{a}: {t:.1f}" for a, t in zip(x, table["mean_n_tokens"])) + ".")
        figure.text(0.01, 0.01, textwrap.fill(note, 170), fontsize=8.5, color="#444444", va="bottom")
        figure.tight_layout(rect=(0, 0.06, 1, 0.96))
        figure.savefig(path, dpi=dpi)
        plt.close(figure)
    return path


def _yerr(y, low, high):
    y, low, high = (np.asarray(v, float) for v in (y, low, high))
    return np.vstack([np.nan_to_num(y - low), np.nan_to_num(high - y)])


def write_figures(source, folder, model_label, *, rule="oplus"):
    """Both figures of a run (source: an out_dir, or a dict with the three tables) into `folder`;
    returns {name: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if _is_dir(source):
        branches, sentences, tokens = _read(source, "branches", "sentences", "tokens")
    else:
        branches, sentences, tokens = source["branches"], source["sentences"], source["tokens"]
    top = top_path_by_layer(branches, sentences, rule=rule)
    value = "mean_value" if np.isfinite(top["mean_value"]).any() else "mean_bucket"
    return {"top_path_by_layer": figure_top_path_by_layer(top, folder / f"top_path_by_layer_{rule}.png", model_label,
                                                          statistic=value),
            "top_path_share_by_layer": figure_top_path_by_layer(top, folder / f"top_path_share_by_layer_{rule}.png",
                                                                model_label),
            "accuracy_entropy_by_attractors": figure_accuracy_entropy_by_attractors(
                accuracy_and_entropy_by_attractors(sentences, tokens),
                folder / "accuracy_entropy_by_attractors.png", model_label)}
