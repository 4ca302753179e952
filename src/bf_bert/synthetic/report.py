"""The §5.1 report: our per token type × branch means beside the paper's, the bar figure,
report.md. Everything here reads the summary tables a run wrote, never the models."""

import os

import numpy as np
import pandas as pd

from ..analysis.figures import BRANCH_STYLE, _pyplot
from ..analysis.report import markdown_table
from ..explanation import ATTENTION_BRANCHES
from .top_path import MEASURES

# Du et al. (ACL 2023) §5.1: mean oplus top-path value per branch, layer 0, over every token of
# the 1,000 held-out FirstTokenRepeatedOnce sequences (their analysis notebook's table, which
# the paper's bar figure draws); the model got 1000/1000 right.
PAPER = {"task": "FirstTokenRepeatedOnce", "layer": 0, "measure": "oplus", "accuracy": "1000/1000",
         "all_tokens": {"key": 0.0301, "query": 0.0174, "value": 0.00095, "skip": 0.0094},
         "finding": {"FirstToken": "query", "RepeatToken": "key"}}
MEASURE_TITLES = {"oplus": "oplus (max_grad, op-granular)", "bucket_sum": "bucket_sum (max_grad, op-granular)",
                  "max_path": "max_path (exact, neuron-granular)"}


def winners(summary, measure, layer=0):
    """{token type: the branch with the largest mean credited value} at `layer`."""
    rows = summary[summary["layer"] == layer]
    best = rows.loc[rows.groupby("token_type", sort=False)[measure].idxmax()]
    return dict(zip(best["token_type"], best["branch"]))


def wide(summary, measure, layer=0):
    """token type × branch table of one measure at one layer."""
    rows = summary[summary["layer"] == layer]
    table = rows.pivot(index="token_type", columns="branch", values=measure)
    order = list(dict.fromkeys(rows["token_type"]))
    return table.reindex(index=order, columns=list(ATTENTION_BRANCHES))


def paper_comparison(summaries, layer=0):
    """Rows per branch: the paper's all-token oplus mean, and each variant's."""
    frame = pd.DataFrame({"branch": list(ATTENTION_BRANCHES),
                          "paper": [PAPER["all_tokens"][b] for b in ATTENTION_BRANCHES]})
    for name, summary in summaries.items():
        frame[name] = wide(summary, "oplus", layer).loc["all"].to_numpy()
    return frame


def figure(summaries, path, type_names, layer=0, dpi=120):
    """Bars: per variant (rows) and measure (columns), the mean credited value per token type
    and branch; the paper's all-token oplus means as black marks."""
    plt = _pyplot()
    groups = [*type_names, "all"]
    fig, axes = plt.subplots(len(summaries), len(MEASURES), figsize=(4.6 * len(MEASURES), 3.4 * len(summaries)),
                             squeeze=False)
    width = 0.8 / len(ATTENTION_BRANCHES)
    x = np.arange(len(groups))
    for row, (name, summary) in enumerate(summaries.items()):
        for col, measure in enumerate(MEASURES):
            ax, table = axes[row][col], wide(summary, measure, layer).reindex(groups)
            for k, branch in enumerate(ATTENTION_BRANCHES):
                ax.bar(x + (k - 1.5) * width, table[branch].fillna(0).to_numpy(), width, label=branch,
                       color=BRANCH_STYLE[branch][0])
            if measure == PAPER["measure"]:
                ax.scatter(x[-1] + (np.arange(len(ATTENTION_BRANCHES)) - 1.5) * width,
                           [PAPER["all_tokens"][b] for b in ATTENTION_BRANCHES], marker="_", s=160, color="black",
                           zorder=3, label="paper (all tokens)")
            ax.set_xticks(x, [g.replace("Token", "") for g in groups])
            ax.set_title(f"{name}: {MEASURE_TITLES[measure]}", fontsize=9)
            ax.spines[["top", "right"]].set_visible(False)
            if col == 0:
                ax.set_ylabel(f"mean top-path value, layer {layer}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def write_report(path, summaries, facts, figure_path, type_names, command, layer=0):
    """report.md: facts (per variant: accuracy, training time, ...), the paper's numbers beside
    ours, the token type × branch tables, and where ours differ and why."""
    lines = [f"# {PAPER['task']}: where the top gradient paths go (Du et al. 2023, §5.1)", "",
             f"Command: `{command}`", ""]
    lines += ["| variant | held-out accuracy | training | analysis |", "|:---|---:|---:|---:|"]
    for name, f in facts.items():
        accuracy = f"{f['correct']}/{f['heldout']}"
        if "torch_correct" in f:
            accuracy += f" (torch's own forward: {f['torch_correct']}/{f['heldout']})"
        lines.append(f"| {name} | {accuracy} | {f['train_seconds']:.1f} s ({f['trainer']}, {f['epochs']} epochs) "
                     f"| {f['analysis_seconds']:.1f} s |")
    lines += ["", f"Paper: {PAPER['accuracy']}. Both variants are analysed here, loaded with "
              "BFBertForSequenceClassification.from_pretrained from what their trainer saved. Quantity: the correct "
              "class's logit; one backprop from it per held-out sequence; credit at each layer input (the paper's "
              "\"input to BertAttention\").", "",
              f"## Layer {layer}, all tokens, oplus: the paper beside ours", "",
              markdown_table(paper_comparison(summaries, layer), {c: ".5f" for c in ["paper", *summaries]}), ""]
    for name, summary in summaries.items():
        lines += [f"## {name}: token type × branch, layer {layer}", ""]
        for measure in MEASURES:
            table = wide(summary, measure, layer).reset_index()
            lines += [f"**{MEASURE_TITLES[measure]}**", "", markdown_table(table, {b: ".5f" for b in ATTENTION_BRANCHES}),
                      ""]
    lines += ["## Where ours differ from the paper, and why", ""] + _differences(summaries, type_names, layer)
    rel = os.path.relpath(figure_path, os.path.dirname(os.path.abspath(path)))
    lines += ["", f"![mean top-path value per token type and branch]({rel})", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def _differences(summaries, type_names, layer):
    lines = []
    expected = PAPER["finding"]
    for name, summary in summaries.items():
        for measure in MEASURES:
            if summary[measure].isna().all():
                continue
            won = winners(summary, measure, layer)
            # the paper's finding is op-granular (oplus): max_path is compared with it, not matched to it
            paper = "the paper" if measure != "max_path" else "the paper's op-granular finding"
            said = "; ".join(f"{t}: **{won[t]}**" + ("" if t not in expected else
                                                     f" (as {paper})" if won[t] == expected[t] else
                                                     f" ({paper}: {expected[t]})") for t in type_names if t in won)
            lines.append(f"- {name}, {measure}: the largest mean credit per token type goes to {said}.")
    lines += [
        "",
        "- **Magnitudes.** A credited value is a product of this model's own partials, so it depends on the "
        "trained weights (initialisation, the intermediate width the paper does not state, training length), "
        "not only on the circuit; compare which branch wins per token type, and the ratios, rather than digits.",
        "- **Granularity.** oplus and bucket_sum read the operation-granular max_grad (as the paper's brunoflow): "
        "inside one op the partials are summed (the op's VJP of the upstream max), so a \"path\" through a "
        "matmul already adds up every unit it mixes. max_path is the exact neuron-granular maximum over single "
        "paths, a product of single partials: smaller, and the branch that carries the single best path need not "
        "be the one whose summed VJP is largest.",
        "- **Which circuit.** The task forces the first position to find its repeat, but not how the answer reaches "
        "the pooler; training settings (e.g. dropout on the attention probabilities, which the paper's code keeps "
        "at 0) can select another circuit at the same accuracy, and the credited branch follows the circuit.",
        "- **Averaging.** The paper's numbers average over every token of the held-out set (80-90% of them "
        "OtherToken), so an all-token mean mostly says how often a type occurs; the per-type rows say where each "
        "type's path goes.",
    ]
    return lines
