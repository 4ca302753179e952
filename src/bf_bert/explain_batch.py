"""explain_batch(): many sentences, one jitted program per padded length, one table out.

Each sentence is padded (attention-masked) to a multiple of `bucket` tokens, so sentences of
similar length share one compiled XLA program of the whole forward + backprop + analysis
(docs/architecture.md §2): the program `explain` runs, reused across calls. The exact top path
is opt-in (`top_path=True`).
"""

from .analysis.program import compiled_program
from .explain import VALUES, check_model, encode, explain_one, word_id
from .explanation import rows_to_dataframe


class ExplanationTable:
    """The explanations of a batch; `rows()` / `to_dataframe()` give sentence × token × layer × branch."""

    def __init__(self, explanations):
        self.explanations = explanations

    def __len__(self):
        return len(self.explanations)

    def rows(self):
        rows = []
        for sentence, explanation in enumerate(self.explanations):
            rows.extend({"sentence": sentence, **row} for row in explanation.rows())
        return rows

    def to_dataframe(self):
        return rows_to_dataframe(self.rows())


def explain_batch(model, tokenizer, texts, target, contrast=None, quantity="logit", bucket=16, progress=True,
                  top_path=False):
    """Explain `target` (vs `contrast`) at the one mask of every text; returns an ExplanationTable.

    The exact top path (max_path) is off by default: its max-times transposes cost more than
    the other semirings together and most of the compile time; without it the tokens'
    `top_path` column is NaN (not computed). Branch credit (oplus, bucket_sum) needs only
    the operation-granular max_grad and is always there.
    """
    check_model(model, quantity)
    if isinstance(texts, str) or not len(texts):
        raise ValueError("explain_batch needs a non-empty list of texts (use explain() for one)")
    target_id = word_id(tokenizer, target)
    contrast_id = word_id(tokenizer, contrast, "contrast") if contrast is not None else None
    values = VALUES if top_path else tuple(v for v in VALUES if v != "max_path")
    program = compiled_program(model, quantity, contrast_id is not None, values)
    explanations = [None] * len(texts)
    encoded = [_numbered(k, encode, tokenizer, text) for k, text in enumerate(texts)]  # all checked first
    for k in _progress(sorted(range(len(texts)), key=lambda k: len(encoded[k])), progress):  # bucket by bucket
        explanations[k] = _numbered(k, explain_one, program, model, tokenizer, texts[k], encoded[k],
                                    (target, target_id), (contrast, contrast_id), bucket)
    return ExplanationTable(explanations)


def _numbered(k, fn, *args):
    """fn(*args), its ValueError naming text k."""
    try:
        return fn(*args)
    except ValueError as err:
        raise ValueError(f"text {k}: {err}") from err


def _progress(items, enabled):
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, desc="explain_batch", unit="sentence")
