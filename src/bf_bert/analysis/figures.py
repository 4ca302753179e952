"""Aggregates and figures of the subject–verb agreement analysis, from the long tables alone.

Every function here takes the DataFrames that `store.read_table` gives (`sentences`, `tokens`,
`branches`; schemas in `tables.py`) and returns a DataFrame or writes a PNG: no model, no
backprop, so every number and figure can be made again from a finished run's tables.

The top-path figure (Du et al., ACL 2023, §5.2) — what it plots, and what this module plots
----------------------------------------------------------------------------------------------
The paper's figure has three panels (all tokens / the subject / the attractors before the verb),
x = layer and one line per branch of the self-attention block (key, query, value, skip). Its y
(per the authors' public notebook, kdu4108/semiring-backprop-exps, analysis/sva_max_grad.ipynb)
is the *mean top-path value* per branch: for each token and layer, the max-product value of the
token's top unit goes to the branch that unit's best path takes (the "⊕" rule) and 0 to the
others, then this is averaged over tokens and sentences. Its "76.1% key / 23.9% value" for the
subject at the last layer is the ratio of those mean values, not a count of sentences.

Our `branches` table keeps which branch the ⊕ rule credits (`oplus`, 0/1) and the winning unit's
value there (`oplus_value`), so `top_path_by_layer` gives the paper's y as `mean_value`, and
beside it the *proportion of tokens whose top path takes each branch* (`share`, for either credit
rule) and `mean_bucket`, the paper's y under its other rule (bucket_sum, where every unit's
top-path value goes to its branch's bucket). The proportion says how often a branch wins; the
mean value also weighs each win by how large the winning path is.
"""

import math
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from ..explanation import ATTENTION_BRANCHES

BRANCHES = tuple(ATTENTION_BRANCHES)            # query, key, value, skip
CREDITS = BRANCHES + ("other",)                 # "other": the top unit's path leaves by none of them
GROUPS = ("all", "subject", "attractors", "mask")
RULES = ("oplus", "bucket_sum")
STATISTICS = {"share": "share of tokens taking the branch", "mean_value": "mean top-path value (⊕ credit)",
              "mean_bucket": "mean bucket value"}
Z95 = 1.959963984540054                         # two-sided 95% normal quantile

GROUP_TITLES = {"all": "All tokens", "subject": "The subject", "attractors": "Attractors before the verb",
                "mask": "The [MASK] (verb) token"}
# Okabe–Ito colours (colour-blind safe); "other" is grey and dashed
BRANCH_STYLE = {"key": ("#0072B2", "o", "-"), "query": ("#E69F00", "s", "-"), "value": ("#009E73", "^", "-"),
                "skip": ("#CC79A7", "D", "-"), "other": ("#777777", "x", "--")}
RULE_NAMES = {"oplus": "⊕ rule: the token's top unit decides",
              "bucket_sum": "bucket-sum rule: the largest bucket of unit values decides"}


# -- intervals -------------------------------------------------------------------------------------

def wilson_interval(k, n, z=Z95):
    """95% Wilson score interval (low, high) for k successes in n trials; NaN where n == 0.
    Vectorised: k and n may be arrays."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denominator = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


def mean_interval(values, confidence=0.95):
    """(mean, low, high): the mean of the finite `values` with a Student-t interval
    (mean ± t·s/√n); low = high = mean for one value, all NaN for none."""
    x = np.asarray(values, float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) == 1:
        return mean, mean, mean
    try:
        from scipy import stats
        q = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1))
    except ImportError:  # scipy comes with jax; the normal quantile is close for n > 30
        q = Z95
    half = q * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


# -- which branch the top path takes ---------------------------------------------------------------

def credited_branches(branches, rule="oplus"):
    """One row per (sentence_id, token_index, layer): `credited`, the branch the rule credits
    ("other" when none), and the four bucket values as `bucket_<branch>`.

    oplus: the branch whose `oplus` is 1; "other" if no branch has it.
    bucket_sum: the branch with the largest `bucket_sum` (first of query, key, value, skip on a
    tie, as `Explanation` does); "other" when every bucket is 0 or missing (nothing flowed)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    keys = ["sentence_id", "token_index", "layer"]
    rows = branches[branches["branch"].isin(BRANCHES)]
    columns = ["oplus", "bucket_sum"] + (["oplus_value"] if "oplus_value" in rows else [])
    wide = rows.set_index(keys + ["branch"])[columns].unstack("branch")
    decide = wide["oplus" if rule == "oplus" else "bucket_sum"].reindex(columns=list(BRANCHES)).to_numpy(float)
    buckets = wide["bucket_sum"].reindex(columns=list(BRANCHES)).to_numpy(float)
    filled = np.where(np.isfinite(decide), decide, -np.inf)
    winner = filled.argmax(axis=1) if len(filled) else np.zeros(0, int)
    best = filled.max(axis=1) if len(filled) else np.zeros(0)
    credited = np.where(best > 0, np.asarray(BRANCHES, object)[winner], "other")
    out = wide.index.to_frame(index=False)
    out["credited"] = credited
    values = (wide["oplus_value"].reindex(columns=list(BRANCHES)).to_numpy(float) if "oplus_value" in rows
              else np.full_like(buckets, np.nan))
    for j, branch in enumerate(BRANCHES):
        out[f"bucket_{branch}"] = buckets[:, j]
        out[f"value_{branch}"] = values[:, j]
    return out


def group_tokens(sentences):
    """{group: (DataFrame of sentence_id, token_index — or None for every token — , number of
    sentences left out because their positions are unknown)}.

    subject: the token at subject_position; unknown where it is -1.
    attractors: the tokens at attractor_positions before mask_position. A sentence's attractors
    are known when every position is >= 0 and there are n_attractors of them (any number > 0 when
    n_attractors is -1); so a sentence with n_attractors = 0 is known and has none, and one with
    n_attractors > 0 but no positions (LGD, Gulordava: the data do not say where they are) is
    left out.
    mask: the token at mask_position."""
    s = sentences
    subject_known = s["subject_position"].astype(int) >= 0
    subject = pd.DataFrame({"sentence_id": s.loc[subject_known, "sentence_id"].to_numpy(),
                            "token_index": s.loc[subject_known, "subject_position"].astype(int).to_numpy()})
    picked, attractors_unknown = [], 0
    for sid, positions, n_att, mask in zip(s["sentence_id"], s["attractor_positions"], s["n_attractors"],
                                           s["mask_position"]):
        positions = [] if positions is None else [int(p) for p in positions]
        n_att = int(n_att)
        known = all(p >= 0 for p in positions) and (len(positions) == n_att if n_att >= 0 else len(positions) > 0)
        if not known:
            attractors_unknown += 1
            continue
        picked += [(sid, p) for p in sorted(set(positions)) if p < int(mask)]
    attractors = pd.DataFrame(picked, columns=["sentence_id", "token_index"])
    mask = pd.DataFrame({"sentence_id": s["sentence_id"].to_numpy(),
                         "token_index": s["mask_position"].astype(int).to_numpy()})
    return {"all": (None, 0), "subject": (subject, int((~subject_known).sum())),
            "attractors": (attractors, attractors_unknown), "mask": (mask, 0)}


def top_path_by_layer(branches, sentences, *, rule="oplus"):
    """Tidy DataFrame: per group (all, subject, attractors, mask), layer and branch (query, key,
    value, skip, other), how many of the group's tokens the rule credits to the branch.

    Columns: group, layer, branch, count, n (the group's tokens at that layer), share
    (count / n), share_low / share_high (95% Wilson interval; tokens of one sentence are counted
    as independent, so for `all` and `attractors` the interval is narrower than it should be),
    n_sentences (sentences with a token in the group), n_unknown (sentences left out for unknown
    positions, see `group_tokens`), mean_bucket (mean `bucket_sum` value of the branch over the
    group's tokens: the paper's y under the bucket-sum rule; NaN for "other"), mean_value (mean
    `oplus_value`: the top unit's value where ⊕ credits the branch, 0 elsewhere — the paper's y;
    NaN for "other" or tables without the column), rule.

    `all` is every token, [CLS], [SEP] and [MASK] included, as in the paper's first panel.
    A group with no tokens gets rows with n = 0 and NaN shares, so its n_unknown still shows."""
    credit = credited_branches(branches, rule)
    layers = sorted(int(layer) for layer in credit["layer"].unique())
    frames = []
    for group, (selection, n_unknown) in group_tokens(sentences).items():
        chosen = credit if selection is None else credit.merge(selection.drop_duplicates(),
                                                              on=["sentence_id", "token_index"])
        frames.append(_summarise(chosen, group, layers, n_unknown))
    out = pd.concat(frames, ignore_index=True)
    out["rule"] = rule
    return out


def _summarise(chosen, group, layers, n_unknown):
    by_layer = chosen.groupby("layer")
    n = by_layer.size().reindex(layers, fill_value=0)
    sentences = by_layer["sentence_id"].nunique().reindex(layers, fill_value=0)
    counts = chosen.groupby(["layer", "credited"]).size()
    buckets = by_layer[[f"bucket_{b}" for b in BRANCHES]].mean().reindex(layers)
    values = by_layer[[f"value_{b}" for b in BRANCHES]].mean().reindex(layers)
    rows = []
    for layer in layers:
        for branch in CREDITS:
            count = int(counts.get((layer, branch), 0))
            rows.append({"group": group, "layer": layer, "branch": branch, "count": count, "n": int(n[layer]),
                         "n_sentences": int(sentences[layer]), "n_unknown": int(n_unknown),
                         "mean_bucket": float(buckets.at[layer, f"bucket_{branch}"]) if branch in BRANCHES
                         else math.nan,
                         "mean_value": float(values.at[layer, f"value_{branch}"]) if branch in BRANCHES
                         else math.nan})
    frame = pd.DataFrame(rows, columns=["group", "layer", "branch", "count", "n", "n_sentences", "n_unknown",
                                        "mean_bucket", "mean_value"])
    with np.errstate(invalid="ignore", divide="ignore"):
        frame.insert(5, "share", np.where(frame["n"] > 0, frame["count"] / frame["n"].where(frame["n"] > 0), np.nan))
    low, high = wilson_interval(frame["count"], frame["n"])
    frame.insert(6, "share_low", low)
    frame.insert(7, "share_high", high)
    return frame


# -- accuracy and path entropy against the number of attractors -----------------------------------

def sentence_entropy(tokens):
    """Per sentence: n_tokens, entropy_sum (Σ over its tokens of `entropy`, nats) and
    entropy_per_token (their mean). A sentence with a non-finite token entropy gets NaN."""
    by = tokens.groupby("sentence_id")["entropy"]
    out = pd.DataFrame({"n_tokens": by.size(), "entropy_sum": by.sum(min_count=1),
                        "entropy_per_token": by.mean()})
    bad = tokens.loc[~np.isfinite(tokens["entropy"].astype(float)), "sentence_id"].unique()
    out.loc[out.index.isin(bad), ["entropy_sum", "entropy_per_token"]] = math.nan
    return out.reset_index()


def accuracy_and_entropy_by_attractors(sentences, tokens):
    """One row per n_attractors (>= 0; sentences with -1, unknown, are left out and counted in
    `.attrs["n_unknown"]`).

    Accuracy: correct (q > 0) over the sentences with a contrast (n_scored), with a 95% Wilson
    interval (accuracy_low, accuracy_high).

    Path entropy, aggregated per sentence first, then averaged over the sentences, each with a
    95% Student-t interval of that mean:
      entropy_sum        Σ over the sentence's tokens (every token, [CLS]/[SEP]/[MASK] included)
                         of the path entropy of the token's input embedding (`tokens.entropy`,
                         nats). It grows with sentence length, and more attractors mean longer
                         sentences: see mean_n_tokens.
      entropy_per_token  the mean over the sentence's tokens instead (the authors' notebook plots
                         this "mean sentence entropy").
    Columns: n_attractors, n, n_scored, n_correct, accuracy, accuracy_low, accuracy_high,
    mean_n_tokens, n_entropy (sentences with finite entropies), entropy_sum, entropy_sum_low,
    entropy_sum_high, entropy_per_token, entropy_per_token_low, entropy_per_token_high."""
    per = sentences[["sentence_id", "n_attractors", "correct"]].merge(sentence_entropy(tokens), on="sentence_id",
                                                                       how="left")
    per["n_attractors"] = per["n_attractors"].astype(int)
    unknown = int((per["n_attractors"] < 0).sum())
    rows = []
    for n_att, group in per[per["n_attractors"] >= 0].groupby("n_attractors", sort=True):
        scored = group["correct"].dropna().astype(bool)
        k, m = int(scored.sum()), len(scored)
        low, high = wilson_interval(k, m)
        row = {"n_attractors": int(n_att), "n": len(group), "n_scored": m, "n_correct": k,
               "accuracy": k / m if m else math.nan, "accuracy_low": float(low), "accuracy_high": float(high),
               "mean_n_tokens": float(group["n_tokens"].mean()),
               "n_entropy": int(np.isfinite(group["entropy_sum"].astype(float)).sum())}
        for column in ("entropy_sum", "entropy_per_token"):
            mean, lo, hi = mean_interval(group[column])
            row.update({column: mean, f"{column}_low": lo, f"{column}_high": hi})
        rows.append(row)
    columns = ["n_attractors", "n", "n_scored", "n_correct", "accuracy", "accuracy_low", "accuracy_high",
               "mean_n_tokens", "n_entropy", "entropy_sum", "entropy_sum_low", "entropy_sum_high",
               "entropy_per_token", "entropy_per_token_low", "entropy_per_token_high"]
    out = pd.DataFrame(rows, columns=columns)
    out.attrs["n_unknown"] = unknown
    return out


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


def _top_path_table(source, rule):
    if isinstance(source, pd.DataFrame) and "share" in source.columns:
        return source
    if _is_dir(source):
        branches, sentences = _read(source, "branches", "sentences")
    elif isinstance(source, (tuple, list)) and len(source) == 2:
        branches, sentences = source
    else:
        raise TypeError("source: top_path_by_layer()'s table, an out_dir, or (branches, sentences) DataFrames")
    return top_path_by_layer(branches, sentences, rule=rule)


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
    if isinstance(source, pd.DataFrame) and "accuracy" in source.columns:
        return source
    if _is_dir(source):
        sentences, tokens = _read(source, "sentences", "tokens")
    elif isinstance(source, (tuple, list)) and len(source) == 2:
        sentences, tokens = source
    else:
        raise TypeError("source: accuracy_and_entropy_by_attractors()'s table, an out_dir, or (sentences, tokens)")
    return accuracy_and_entropy_by_attractors(sentences, tokens)


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
