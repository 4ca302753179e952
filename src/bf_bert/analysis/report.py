"""A markdown report of one subject–verb agreement run: our numbers beside Du et al.'s (ACL 2023).

    write_report("runs/lgd", "all-MiniLM-L6-v2 + tuned top layers and MLM head (embedded default), not BERT-base")

reads the run's tables (`store.read_table`), draws the figures (`figures.py`) unless given
them, and writes runs/lgd/report.md. Like the figures, it needs the tables only: no model.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .aggregates import (BRANCHES, CREDITS, GROUP_TITLES, GROUPS, RULE_NAMES, accuracy_and_entropy_by_attractors,
                         top_path_by_layer)
from .figures import write_figures

# The paper's §5.2 numbers, as our issue quotes them. Subject: share (%) of the top-path value
# at the last layer through each branch (the ratio of mean ⊕ top-path values, per the authors'
# notebook); [MASK]: sentences whose top path takes skip at layers 0–4, of 1000.
PAPER_SUBJECT_LAST_LAYER = {"key": 76.1, "value": 23.9, "query": 0.0, "skip": 0.0}
PAPER_MASK_SKIP = {layer: (1000, 1000) for layer in range(5)}
PAPER = "Du et al., ACL 2023, §5.2"
PAPER_SUBJECT_STATISTIC = "share of the subject's mean top-path value (⊕) through the branch"
PAPER_MASK_STATISTIC = "sentences whose [MASK] top path takes skip"

COMPARISON_COLUMNS = ["what", "layer", "branch", "paper_pct", "ours_pct", "difference_pp", "ours_low_pct",
                      "ours_high_pct", "ours_count", "n", "paper_count", "paper_n", "ours_bucket_value_pct",
                      "ours_share_pct", "paper_statistic", "our_statistic"]


def paper_comparison(branches, sentences, *, rule="oplus", top=None):
    """The paper's headline numbers beside ours, one row each.

    Rows: the subject at the last layer, per branch (key, value, query, skip), and the [MASK]
    token's skip at layers 0–4 (those the run has). Columns: what, layer, branch, paper_pct,
    ours_pct, difference_pp (ours − paper, percentage points), ours_low_pct / ours_high_pct (95%
    Wilson), ours_count, n (our tokens: subjects with a known position, or sentences),
    paper_count / paper_n ([MASK] rows), ours_bucket_value_pct (subject rows: the branch's share
    of the summed bucket values, a value-weighted figure nearer the paper's statistic),
    paper_statistic, our_statistic.

    The subject numbers are not the same statistic: the paper's is a ratio of mean top-path
    *values*, ours the share of subjects whose top path the `rule` credits to the branch
    (`branches` keeps which branch wins, not the winning unit's value). `top`: a ready
    `top_path_by_layer` table for the same rule, to skip recomputing it."""
    top = top_path_by_layer(branches, sentences, rule=rule) if top is None else top
    last = int(top["layer"].max())
    rows = []
    subject = top[(top["group"] == "subject") & (top["layer"] == last)].set_index("branch")
    bucket_total = subject.loc[list(BRANCHES), "mean_bucket"].sum() if len(subject) else math.nan
    value_total = subject.loc[list(BRANCHES), "mean_value"].sum() if len(subject) else math.nan
    for branch in ("key", "value", "query", "skip"):
        r = subject.loc[branch]
        # the paper's statistic when the table has the credited values, else the share of subjects
        by_value = bool(value_total) and np.isfinite(value_total)
        ours = 100 * float(r["mean_value"]) / value_total if by_value else 100 * float(r["share"])
        rows.append({"what": "subject, last layer", "layer": last, "branch": branch,
                     "paper_pct": PAPER_SUBJECT_LAST_LAYER[branch], "ours_pct": ours,
                     "difference_pp": ours - PAPER_SUBJECT_LAST_LAYER[branch],
                     "ours_low_pct": math.nan if by_value else 100 * float(r["share_low"]),
                     "ours_high_pct": math.nan if by_value else 100 * float(r["share_high"]),
                     "ours_count": int(r["count"]), "n": int(r["n"]), "paper_count": math.nan, "paper_n": math.nan,
                     "ours_bucket_value_pct": 100 * float(r["mean_bucket"]) / bucket_total
                     if bucket_total and np.isfinite(bucket_total) else math.nan,
                     "paper_statistic": PAPER_SUBJECT_STATISTIC,
                     "our_statistic": ("the branch's share of the mean top-path value credited by ⊕ (as the paper)"
                                       if by_value else f"share of subjects whose top path takes the branch ({rule})"),
                     "ours_share_pct": 100 * float(r["share"])})
    mask = top[(top["group"] == "mask") & (top["branch"] == "skip")].set_index("layer")
    for layer, (paper_count, paper_n) in PAPER_MASK_SKIP.items():
        if layer not in mask.index:
            continue
        r = mask.loc[layer]
        paper = 100 * paper_count / paper_n
        ours = 100 * float(r["share"])
        rows.append({"what": "[MASK], skip", "layer": layer, "branch": "skip", "paper_pct": paper, "ours_pct": ours,
                     "difference_pp": ours - paper, "ours_low_pct": 100 * float(r["share_low"]),
                     "ours_high_pct": 100 * float(r["share_high"]), "ours_count": int(r["count"]), "n": int(r["n"]),
                     "paper_count": paper_count, "paper_n": paper_n, "ours_bucket_value_pct": math.nan,
                     "ours_share_pct": ours,
                     "paper_statistic": PAPER_MASK_STATISTIC,
                     "our_statistic": f"sentences whose [MASK] top path takes skip ({rule})"})
    out = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    out.attrs["rule"] = rule
    return out


# -- markdown --------------------------------------------------------------------------------------

def markdown_table(frame, formats=None, index=False):
    """A GitHub-flavoured markdown table of `frame` (no `tabulate` needed). formats: {column:
    format spec or callable}; NaN and None print as "–"; "|" in cells is escaped."""
    formats = formats or {}
    frame = frame.reset_index() if index else frame
    header = [str(c) for c in frame.columns]

    def cell(column, value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        fmt = formats.get(column)
        text = fmt(value) if callable(fmt) else format(value, fmt) if fmt else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
             "|" + "|".join("---:" if isnum else ":---" for isnum in numeric) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(c, v) for c, v in zip(frame.columns, row)) + " |")
    return "\n".join(lines)


def _pct(value):
    return f"{value:.1f}%"


def _signed(value):
    return f"{value:+.1f}"


def _read_config(out_dir):
    path = Path(out_dir) / "run.json"
    try:
        return json.loads(path.read_text())["config"]
    except (OSError, ValueError, KeyError):
        return {}


def _load_tables(out_dir, tables):
    from .store import StoreError, read_table
    got = dict(tables or {})
    for name in ("sentences", "tokens", "branches", "skipped"):
        if name not in got:
            try:
                got[name] = read_table(out_dir, name)
            except StoreError:
                if name != "skipped":
                    raise
    return got


def _figure_links(figures, report_dir):
    if isinstance(figures, dict):
        items = list(figures.items())
    else:
        items = [(Path(p).stem, p) for p in figures]
    lines = []
    for name, path in items:
        relative = os.path.relpath(Path(path).resolve(), Path(report_dir).resolve()).replace(os.sep, "/")
        lines += [f"**{name.replace('_', ' ')}** — [{relative}]({relative})", "", f"![{name}]({relative})", ""]
    return lines


def _timing_lines(timings):
    if timings is None:
        return []
    if not isinstance(timings, dict):  # the runner's Summary, or anything with these attributes
        timings = {k: getattr(timings, k) for k in ("explained", "seconds", "compiles", "sentences_per_second")
                   if hasattr(timings, k)}
    frame = pd.DataFrame({"what": list(timings), "value": [_plain(v) for v in timings.values()]})
    return ["## Timings", "", markdown_table(frame), ""]


def _plain(value):
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return str(value)


def _group_table(top, group):
    rows = top[top["group"] == group]
    shares = rows.pivot(index="layer", columns="branch", values="share").reindex(columns=list(CREDITS)) * 100
    n = rows.groupby("layer")["n"].max()
    frame = pd.concat([n.rename("n tokens"), shares], axis=1).reset_index()
    if not (frame["other"].fillna(0) > 0).any():
        frame = frame.drop(columns="other")
    return markdown_table(frame, {b: ".1f" for b in CREDITS} | {"n tokens": ","})


def write_report(out_dir, model_label=None, figures=None, timings=None, *, rule="oplus", path=None, tables=None):
    """Write the run's markdown report; returns its path (default out_dir/report.md).

    out_dir: the run's folder (tables read with `store.read_table` unless `tables` gives them as
    {"sentences", "tokens", "branches"[, "skipped"]} DataFrames). model_label: which model made
    the tables, said in the title and every section (default: run.json's config "model").
    figures: None draws both figures into out_dir/figures/; else a list of PNG paths or
    {name: path} to link (empty: none). timings: a dict, or the runner's Summary."""
    out_dir = Path(out_dir)
    config = _read_config(out_dir)
    model_label = model_label or config.get("model") or "unknown model (not recorded in run.json)"
    got = _load_tables(out_dir, tables)
    sentences, tokens, branches = got["sentences"], got["tokens"], got["branches"]
    report = Path(path) if path is not None else out_dir / "report.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    if figures is None:
        figures = write_figures({"sentences": sentences, "tokens": tokens, "branches": branches},
                                out_dir / "figures", model_label, rule=rule)
    top = top_path_by_layer(branches, sentences, rule=rule)
    comparison = paper_comparison(branches, sentences, rule=rule, top=top)
    attractors = accuracy_and_entropy_by_attractors(sentences, tokens)
    n_layers = int(top["layer"].max()) + 1 if len(top) else 0
    skipped = got.get("skipped")
    scored = sentences["correct"].dropna().astype(bool)

    lines = ["# Subject–verb agreement: top gradient paths and path entropy", "",
             f"**Model: {model_label}.** Every table and figure below comes from this model's run; none is from "
             f"the paper's model.", "",
             "## Run", ""]
    run = {"model": model_label, "tables": str(out_dir), "sentences explained": f"{len(sentences):,}",
           "sentences skipped": f"{0 if skipped is None else len(skipped):,}",
           "tokens": f"{len(tokens):,}", "encoder layers": f"{n_layers}",
           "overall accuracy (q > 0)": (f"{scored.mean():.1%} of {len(scored):,} with a contrast" if len(scored)
                                        else "– (no contrasts)"),
           "credit rule": RULE_NAMES[rule]}
    for key in ("data", "format", "dtype", "quantity", "top_path"):
        if key in config:
            run[f"config: {key}"] = str(config[key])
    lines += [markdown_table(pd.DataFrame({"what": list(run), "value": list(run.values())})), ""]

    shown = comparison.copy()
    shown["paper"] = [f"{p:.1f}%" + (f" ({int(c):,}/{int(n):,})" if np.isfinite(c) else "")
                      for p, c, n in zip(shown["paper_pct"], shown["paper_count"], shown["paper_n"])]
    shown["ours"] = [f"{o:.1f}% ({c:,}/{n:,} {'top' if what.startswith('subject') else 'skip'})" if n
                     else "– (no tokens)"
                     for o, c, n, what in zip(shown["ours_pct"], shown["ours_count"], shown["n"], shown["what"])]
    shown["ours 95% CI"] = [f"{lo:.1f}–{hi:.1f}%" if np.isfinite(lo) else "–"
                            for lo, hi in zip(shown["ours_low_pct"], shown["ours_high_pct"])]
    shown = shown.rename(columns={"difference_pp": "ours − paper (pp)",
                                  "ours_bucket_value_pct": "ours, bucket-value share"})
    lines += [f"## Beside the paper ({PAPER})", "",
              f"Model: {model_label}. Paper: the numbers our issue quotes from §5.2. Layers count from 0; "
              f"\"last layer\" is layer {n_layers - 1} here (layer 5 in the paper's 6-layer model).", "",
              markdown_table(shown[["what", "layer", "branch", "paper", "ours", "ours 95% CI", "ours − paper (pp)",
                                    "ours, bucket-value share"]],
                             {"ours − paper (pp)": _signed, "ours, bucket-value share": _pct}), "",
              "What each number is:", "",
              f"- **paper, subject rows**: the {PAPER_SUBJECT_STATISTIC}: for every subject token, the value of its "
              "top unit's best path goes to the branch that path takes (0 to the others); the means over sentences "
              "are divided by their sum. So it weighs each win by how large the winning path is.",
              "- **ours, subject rows**: the same statistic from our `branches` table (`oplus_value`), over the "
              "subjects with a known position; in brackets, how many subjects' top path the ⊕ rule credits to the "
              "branch (a count, not value-weighted).",
              "- **ours, bucket-value share**: each branch's mean `bucket_sum` (every unit's top-path value summed "
              "into the bucket of the branch its path takes) over the sum of the four: value-weighted like the "
              "paper's number, but summing all units instead of keeping only the top one.",
              f"- **[MASK] rows**: {PAPER_MASK_STATISTIC}; the paper's 1000 sentences against ours.", ""]

    lines += ["## Top path by layer", "",
              f"Model: {model_label}. Percent of each group's tokens whose top path takes each branch at the input "
              f"of each layer ({RULE_NAMES[rule]}). Groups with unknown positions leave those sentences out.", ""]
    for group in GROUPS:
        rows = top[top["group"] == group]
        n_unknown = int(rows["n_unknown"].max()) if len(rows) else 0
        n_sentences = int(rows["n_sentences"].max()) if len(rows) else 0
        extra = f"; {n_unknown:,} sentences left out (position unknown)" if group in ("subject", "attractors") else ""
        lines += [f"### {GROUP_TITLES[group]} — {n_sentences:,} sentences{extra}", "", _group_table(top, group), ""]

    unknown = int(attractors.attrs.get("n_unknown", 0))
    lines += ["## Accuracy and path entropy by number of attractors", "",
              f"Model: {model_label}. Accuracy: q > 0 among sentences with a contrast, 95% Wilson interval. "
              "Path entropy (nats) of each token's input embedding, aggregated per sentence — summed over its tokens "
              "(Σ) or averaged over them (per token, as the authors' notebook plots it) — then averaged over "
              "sentences, with 95% t intervals. Every token counts, [CLS], [SEP] and [MASK] included."
              + (f" {unknown:,} sentences with an unknown number of attractors are left out." if unknown else ""), ""]
    if len(attractors):
        a = attractors
        frame = pd.DataFrame({
            "attractors": a["n_attractors"], "sentences": a["n"],
            "accuracy": [f"{x:.1%} ({k:,}/{m:,})" if m else "–" for x, k, m in zip(a["accuracy"], a["n_correct"],
                                                                                     a["n_scored"])],
            "accuracy 95% CI": [f"{lo:.1%}–{hi:.1%}" if np.isfinite(lo) else "–"
                                for lo, hi in zip(a["accuracy_low"], a["accuracy_high"])],
            "mean tokens": a["mean_n_tokens"],
            "entropy Σ": [_mean_ci(m, lo, hi) for m, lo, hi in zip(a["entropy_sum"], a["entropy_sum_low"],
                                                                    a["entropy_sum_high"])],
            "entropy per token": [_mean_ci(m, lo, hi) for m, lo, hi in zip(a["entropy_per_token"],
                                                                           a["entropy_per_token_low"],
                                                                           a["entropy_per_token_high"])]})
        lines += [markdown_table(frame, {"mean tokens": ".1f"}), ""]
    else:
        lines += ["No sentence has a known number of attractors.", ""]

    links = _figure_links(figures, report.parent) if figures else []
    if links:
        lines += ["## Figures", "", f"Model: {model_label}. Made from the tables above by "
                  "`bf_bert.analysis.figures` (no model needed to redraw them).", ""] + links
    lines += _timing_lines(timings)
    lines += ["## Why these numbers may differ from the paper's", "",
              f"- **Model.** The paper analyses BERT (the authors' public notebook names a brunoflow port of "
              f"`google/bert_uncased_L-6_H-512_A-8`, a 6-layer uncased BERT: hence \"layers 0–4\" and \"the last "
              f"layer\" = 5); this run is {model_label}, with {n_layers} layers. Different weights route gradients "
              "differently, and a small model (such as the embedded default, trained here on 1.35M words) agrees worse "
              "than BERT and may route differently.",
              "- **Dataset.** The paper uses 1000 sentences sampled from the LGD agreement data (Linzen et al.); "
              f"this run read {config.get('data', 'its own data')!s} ({len(sentences):,} sentences). The mix of "
              "constructions, lengths and attractor counts changes every share. LGD-style data do not say where "
              "the subject and attractors are, so those groups may be small or empty here.",
              "- **Statistic.** The subject percentages are ratios of mean top-path values in both (ours from "
              "`oplus_value`; tables without that column fall back to shares of sentences, and the row says so); "
              "the [MASK] rows count sentences in both.",
              "- **Op-granular vs neuron-granular max.** The ⊕ and bucket-sum credits use the operation-granular "
              "max-product (`max_grad`), as the original brunoflow does: inside one op the routes are summed, and "
              "only across the ops that read a node does the max pick a winner, so a \"top path\" there is not a "
              "single path. The exact, neuron-granular top path (`tokens.top_path`, `max_path`) can take another "
              "branch. Details of the op-granular rule (ties go to the earliest-made consumer; a min track lets a "
              "negative partial turn the most negative product into the max) may differ from the original code.",
              f"- **Float dtype.** This run computed in {config.get('dtype', 'an unrecorded dtype')}. Near-ties "
              "between branches can break differently in float32 and float64. Path sums (|grad|, entropy) are kept "
              "scaled, so they stay finite in float32 where they pass 1e38.",
              "- **Tokenisation.** A subject or attractor word split into several word pieces is represented by its "
              "first piece; \"all tokens\" includes [CLS], [SEP] and [MASK], as the paper's panel does.",
              "- **Sampling.** With n sentences, a share has a 95% interval of about ±1/√n (±3 points at "
              "n = 1000); "
              "intervals for groups with several tokens per sentence treat tokens as independent and are too "
              "narrow.", ""]
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def _mean_ci(mean, low, high):
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.2f} ({low:.2f}–{high:.2f})"
