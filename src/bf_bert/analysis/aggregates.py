"""Aggregates of the subject–verb agreement analysis, from the long tables alone.

Every function here takes the DataFrames that `store.read_table` gives (`sentences`, `tokens`,
`branches`; schemas in `tables.py`) and returns a DataFrame: no model, no backprop, so every
number (and every figure, `figures.py`) can be made again from a finished run's tables.

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

import numpy as np
import pandas as pd

from ..explanation import ATTENTION_BRANCHES

BRANCHES = tuple(ATTENTION_BRANCHES)            # query, key, value, skip
CREDITS = BRANCHES + ("other",)                 # "other": the top unit's path leaves by none of them
GROUPS = ("all", "subject", "attractors", "mask")
RULES = ("oplus", "bucket_sum")
Z95 = 1.959963984540054                         # two-sided 95% normal quantile
GROUP_TITLES = {"all": "All tokens", "subject": "The subject", "attractors": "Attractors before the verb",
                "mask": "The [MASK] (verb) token"}
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
