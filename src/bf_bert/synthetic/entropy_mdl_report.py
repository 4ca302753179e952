"""The §5.3 report: does the gradient graph's entropy rise with task difficulty (online MDL)?

Everything here reads the runs table (one row per task × seed), never a model.

The statistic is the correlation, across tasks, of MDL (bits) with the mean entropy of a
validation example's gradient graph. With few tasks a rank correlation (Spearman) says "rises
with" most directly; Pearson's r is given beside it. Uncertainty, two ways:

* over seeds: the correlation within each seed (every task once), Fisher-z averaged, with a t
  interval over the seeds (3 seeds: 2 degrees of freedom, so the interval is wide by design);
* over tasks: a bootstrap that resamples tasks (with all their seeds) and recomputes the pooled
  correlation, which shows how much the answer rests on a few tasks.
"""

import math
import os

import numpy as np
import pandas as pd

from ..analysis.figures import _pyplot
from ..analysis.report import markdown_table

MIN_ACCURACY = 0.9   # the paper plots models that learned their task ("high accuracy only")
BOOTSTRAP = 2000
MIN_SPREAD = 0.01    # MDLs closer than this (relative) are noise around one codelength, not a ranking

# What the paper gives for §5.3: a figure of entropy against MDL over these task families, and the
# claim that entropy rises with difficulty; this reproduction has no correlation coefficient from it
# to set beside ours, so the comparison is qualitative.
PAPER = {"claim": "the entropy of the gradient graph rises with task difficulty (online-code MDL)",
         "numbers": None}


def _corr(x, y, kind):
    from scipy.stats import rankdata
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    if kind == "spearman":  # Pearson's r of the ranks (ties share their mean rank)
        x, y = rankdata(x), rankdata(y)
    return float(np.corrcoef(x, y)[0, 1])


def _seed_interval(values, level=0.95):
    """Fisher-z mean of per-seed correlations and its t interval over seeds (NaN below 2 seeds).
    A seed at exactly ±1 (common with 3-4 tasks) counts as ±0.99: Fisher's z is infinite there,
    and one such seed would otherwise decide both the mean and the width."""
    from scipy import stats
    z = np.arctanh(np.clip([v for v in values if not math.isnan(v)], -0.99, 0.99))
    if len(z) == 0:
        return math.nan, math.nan, math.nan
    mean = float(np.tanh(z.mean()))
    if len(z) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(z) - 1) * z.std(ddof=1) / math.sqrt(len(z))
    return mean, float(np.tanh(z.mean() - half)), float(np.tanh(z.mean() + half))


def _task_bootstrap(frame, kind, samples=BOOTSTRAP, seed=0):
    tasks = frame["task"].unique()
    if len(tasks) < 3:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    rows = [np.flatnonzero(frame["task"].to_numpy() == t) for t in tasks]
    x, y = frame["mdl_bits"].to_numpy(float), frame["entropy"].to_numpy(float)
    values = []
    for _ in range(samples):
        picked = np.concatenate([rows[k] for k in rng.integers(0, len(tasks), size=len(tasks))])
        values.append(_corr(x[picked], y[picked], kind))
    values = np.asarray(values)
    values = values[~np.isnan(values)]
    if len(values) < samples / 2:
        return math.nan, math.nan
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _stats(frame):
    out = {"runs": int(len(frame)), "tasks": int(frame["task"].nunique()), "seeds": int(frame["seed"].nunique()),
           "mdl_spread": float(np.ptp(frame["mdl_bits"]) / frame["mdl_bits"].mean()) if len(frame) else 0.0}
    means = frame.groupby("task")[["mdl_bits", "entropy"]].mean()
    for kind in ("spearman", "pearson"):
        per_seed = {int(s): _corr(g["mdl_bits"], g["entropy"], kind) for s, g in frame.groupby("seed")}
        mean, low, high = _seed_interval(list(per_seed.values()))
        boot_low, boot_high = _task_bootstrap(frame, kind)
        out[kind] = {"pooled": _corr(frame["mdl_bits"], frame["entropy"], kind),
                     "task_means": _corr(means["mdl_bits"], means["entropy"], kind),
                     "per_seed": per_seed, "seed_mean": mean, "seed_ci95": [low, high],
                     "task_bootstrap_ci95": [boot_low, boot_high]}
    out["verdict"] = verdict(out)
    return out


def correlations(runs, min_accuracy=MIN_ACCURACY):
    """{"all": stats, "learned": stats over runs whose validation accuracy ≥ min_accuracy, and one
    entry per task family of ≥ 3 tasks (BinCountOnes-N, ContainsTokenSet-N): difficulty graded
    within one kind of task, where tasks differ in one parameter only}."""
    learned = runs[runs["val_accuracy"] >= min_accuracy]
    out = {"all": _stats(runs), "learned": {**_stats(learned), "min_accuracy": min_accuracy}}
    for family, rows in runs.groupby("family", sort=False):
        if rows["task"].nunique() >= 3:
            out[f"family {family}"] = _stats(rows)
    return out


def verdict(stats):
    """One plain sentence from the Spearman correlation's interval over seeds."""
    rho = stats["spearman"]
    mean, (low, high) = rho["seed_mean"], rho["seed_ci95"]
    if stats["mdl_spread"] < MIN_SPREAD:
        return ("no difficulty ranking to test: every MDL is within "
                f"{MIN_SPREAD:.0%} of the others (the models stayed near the uniform code)")
    if math.isnan(mean) or math.isnan(low):
        return "not enough runs to say (needs ≥ 3 tasks and ≥ 2 seeds)"
    strength = "weakly" if abs(mean) < 0.3 else "moderately" if abs(mean) < 0.6 else "strongly"
    if low > 0:
        return f"yes: entropy rises with MDL, {strength} (Spearman {mean:+.2f}, 95% CI over seeds {low:+.2f} to {high:+.2f})"
    if high < 0:
        return (f"no: entropy falls as MDL rises, {strength}, the opposite of the paper's claim (Spearman {mean:+.2f}, "
                f"95% CI over seeds {low:+.2f} to {high:+.2f})")
    return (f"not shown: the correlation's 95% interval over seeds includes 0 (Spearman {mean:+.2f}, "
            f"{low:+.2f} to {high:+.2f})")


def per_task(runs):
    """Mean and standard deviation over seeds per task, easiest (least MDL) first."""
    table = runs.groupby(["task", "classes"], sort=False).agg(
        mdl_kbits=("mdl_bits", lambda v: v.mean() / 1000), mdl_sd=("mdl_bits", lambda v: v.std(ddof=0) / 1000),
        compression=("compression", "mean"), val_accuracy=("val_accuracy", "mean"),
        test_accuracy=("test_accuracy", "mean"), entropy=("entropy", "mean"), entropy_sd=("entropy", lambda v: v.std(ddof=0)),
        token_entropy=("token_entropy", "mean"),
        learned=("val_accuracy", lambda v: f"{int((v >= MIN_ACCURACY).sum())}/{len(v)}"))
    return table.reset_index().sort_values("mdl_kbits").reset_index(drop=True)


def figure(runs, correlation, path, dpi=120):
    """Entropy per example (y) against MDL (x): each seed's run as a dot, each task's mean over
    seeds with its spread, labelled; the runs below MIN_ACCURACY hollow."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 5.6))
    families = list(dict.fromkeys(runs["family"]))
    colours = plt.get_cmap("tab10")
    for k, family in enumerate(families):
        rows = runs[runs["family"] == family]
        learned = rows["val_accuracy"] >= MIN_ACCURACY
        ax.scatter(rows["mdl_bits"][learned] / 1000, rows["entropy"][learned], s=16, color=colours(k), alpha=0.45)
        ax.scatter(rows["mdl_bits"][~learned] / 1000, rows["entropy"][~learned], s=16, facecolors="none",
                   edgecolors=colours(k), alpha=0.6)
        for task, group in rows.groupby("task", sort=False):
            x, y = group["mdl_bits"].mean() / 1000, group["entropy"].mean()
            ax.errorbar(x, y, xerr=group["mdl_bits"].std(ddof=0) / 1000, yerr=group["entropy"].std(ddof=0),
                        fmt="o", color=colours(k), ms=6, capsize=2, label=family if task == rows["task"].iloc[0] else None)
            ax.annotate(task, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    stats = correlation["all"]["spearman"]
    ax.set_title(f"gradient-graph entropy vs task difficulty: Spearman {stats['seed_mean']:+.2f} "
                 f"(95% CI over seeds {stats['seed_ci95'][0]:+.2f} to {stats['seed_ci95'][1]:+.2f})", fontsize=9)
    ax.set_xlabel("online-code MDL of the training labels (kbits)")
    ax.set_ylabel("entropy per validation example (nats, sum over tokens)")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _stats_table(correlation):
    rows = []
    subsets = [("all", "all runs"), ("learned", f"validation accuracy ≥ {MIN_ACCURACY}")]
    subsets += [(k, k.replace("family ", "") + "-N only") for k in correlation if k.startswith("family ")]
    for subset, label in subsets:
        s = correlation[subset]
        for kind in ("spearman", "pearson"):
            c = s[kind]
            rows.append({"runs": f"{label} ({s['runs']} runs, {s['tasks']} tasks)", "correlation": kind,
                         "pooled": c["pooled"], "task means": c["task_means"], "mean over seeds": c["seed_mean"],
                         "95% CI over seeds": _interval(c["seed_ci95"]),
                         "95% CI, tasks resampled": _interval(c["task_bootstrap_ci95"]),
                         "per seed": ", ".join(f"{v:+.2f}" for v in c["per_seed"].values())})
    return pd.DataFrame(rows)


def _interval(pair):
    return "–" if any(math.isnan(v) for v in pair) else f"{pair[0]:+.2f} to {pair[1]:+.2f}"


def write_report(path, runs, correlation, settings, figure_path, command):
    table = per_task(runs)
    seconds = runs[["mdl_seconds", "train_seconds", "entropy_seconds"]].sum()
    model = settings["model"]
    lines = [
        "# Gradient-graph entropy vs task difficulty (Du et al. 2023, §5.3)", "", f"Command: `{command}`", "",
        f"**Does entropy rise with task difficulty? {correlation['all']['verdict'][0].upper()}"
        f"{correlation['all']['verdict'][1:]}.** Among runs whose model learned its task (validation accuracy ≥ "
        f"{MIN_ACCURACY}): {correlation['learned']['verdict']}.", "",
        *[f"- Within {k.replace('family ', '')}-N: {v['verdict']}." for k, v in correlation.items()
          if k.startswith("family ")], "",
        f"Setting: sequences of {settings['seq_len']} tokens over a vocabulary of {settings['vocab_size']}, "
        f"{settings['train_size']:,}/{settings['val_size']:,}/{settings['test_size']:,} train/validation/test "
        f"examples per task and seed; BF BERT with {model['num_hidden_layers']} layers, hidden {model['hidden_size']}, "
        f"{model['num_attention_heads']} heads, {model['num_labels']} outputs for every task (one graph for all), "
        f"trained with bf.opt.Adam (lr {settings['learning_rate']}, batches of {settings['batch_size']}, "
        f"{settings['epochs']} epochs per model).", "",
        f"Time in the runs: {seconds['mdl_seconds']:.0f} s for the MDL blocks, {seconds['train_seconds']:.0f} s for "
        f"the full-data models, {seconds['entropy_seconds']:.0f} s for the entropy backprops "
        f"({len(runs)} runs; compiles included, the process start and kept runs not).", "",
        "## Per task (mean over seeds; sd: standard deviation over seeds)", "",
        markdown_table(table, {"mdl_kbits": ".2f", "mdl_sd": ".2f", "compression": ".2f", "val_accuracy": ".3f",
                               "test_accuracy": ".3f", "entropy": ".1f", "entropy_sd": ".1f", "token_entropy": ".3f"}),
        "",
        "MDL: online codelength of the training labels in kbits (first block uniform, each next block coded by a "
        "model trained from scratch on everything before it; block boundaries at 0.1, 0.2, 0.4, ..., 50, 100 % "
        "as Voita & Titov 2020). compression: uniform codelength / MDL. entropy: the Shannon entropy (nats) of "
        "the gradient paths from each input token to the example's loss, summed over the tokens, mean over the "
        "validation set; token_entropy: the same per token. learned: seeds whose model reached validation accuracy "
        f"≥ {MIN_ACCURACY}.", "",
        "## Correlation of MDL with entropy", "",
        markdown_table(_stats_table(correlation), {"pooled": "+.2f", "task means": "+.2f", "mean over seeds": "+.2f"}),
        "",
        "## Beside the paper", "",
        f"The paper's claim: {PAPER['claim']}. It shows this as a figure of entropy against MDL for these task "
        "families (models that reached high accuracy); we have no correlation coefficient or table of values from "
        "it, so the comparison is with the direction of the trend, not with numbers. "
        f"Ours: {correlation['all']['verdict']}.", "",
        "Why ours may differ: our MDL codes a task's labels with the model's distribution over that task's own "
        "classes (the paper's code charges the first block log 36 per label whatever the task); each block is "
        "trained for a fixed number of epochs, not to convergence with early stopping; the model's intermediate "
        "width is our choice (4 × hidden); and entropy is measured per example (one backprop each), where the "
        "paper's code backpropagated a batch's summed loss, which mixes the examples that share a token.", "",
        f"![entropy vs MDL]({os.path.relpath(figure_path, os.path.dirname(os.path.abspath(path)))})", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path
