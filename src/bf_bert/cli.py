"""`bf-bert`: fill-mask and explanations from the command line.

    bf-bert fill-mask "The keys to the cabinet [MASK] on the table."
    bf-bert explain "The keys to the cabinet [MASK] on the table." --target is --contrast are --out DIR

Bad input ends with one line on stderr that names the fix and exit status 2, no traceback.
"""

import argparse
import contextlib
import os
import sys

DEFAULT_MODEL_NOTE = ("default model: all-MiniLM-L6-v2 (a real pretrained encoder) with an MLM head this project "
                      "fitted on its own agreement sentences; not BERT-base")


class UsageError(Exception):
    """A mistake the user can fix; printed as one line."""


def _parser():
    parser = argparse.ArgumentParser(prog="bf-bert", description="Masked-token prediction and semiring "
                                     "explanations (grad, abs-grad, entropy, top gradient path) on BF BERT.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("fill-mask", "predict the [MASK] token"),
                            ("explain", "explain the logit of --target (minus --contrast) at the [MASK]")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("text", nargs="+" if name == "fill-mask" else None, help="text with a [MASK] token")
        sub.add_argument("--model", help="checkpoint folder or cached hub id (default: the embedded model)")
        sub.add_argument("--dtype", choices=("float32", "float64"),
                         default="float32" if name == "fill-mask" else "float64",
                         help="float64 (the explain default) keeps |grad| and entropy path sums finite")
    fill = commands.choices["fill-mask"]
    fill.add_argument("--top-k", type=int, default=5)
    fill.add_argument("--targets", nargs="+", help="score only these words")
    explain = commands.choices["explain"]
    explain.add_argument("--target", required=True, help="the word whose score is explained, e.g. is")
    explain.add_argument("--contrast", help="explain target minus this word, e.g. are")
    explain.add_argument("--quantity", choices=("logit", "log_prob"), default="logit")
    explain.add_argument("--out", help="write explanation.json and explanation.png here")
    return parser


def _load(model_path, dtype):
    from transformers import AutoTokenizer, BFBertForMaskedLM

    if model_path is None:
        from .default_model import default_model_path
        model_path = default_model_path()
        print(DEFAULT_MODEL_NOTE, file=sys.stderr)
    elif not os.path.exists(model_path) and "/" not in model_path:
        raise UsageError(f"--model {model_path!r}: no such folder (pass a checkpoint folder, or a hub id already "
                         "in the Hugging Face cache)")
    try:
        return BFBertForMaskedLM.from_pretrained(model_path, dtype=dtype), AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError, TypeError) as err:
        raise UsageError(f"cannot load model {model_path!r}: {str(err).splitlines()[0]}") from err


def _progress(stages):
    from tqdm import tqdm
    return tqdm(total=stages, desc="bf-bert", leave=False, file=sys.stderr,
                bar_format="{desc}: {n_fmt}/{total_fmt} {postfix}")


def _step(bar, label):
    bar.set_postfix_str(label)
    return bar


def run_fill_mask(args):
    from .fill_mask import BFFillMaskPipeline
    with contextlib.closing(_progress(2)) as bar:
        _step(bar, "loading the model")
        model, tokenizer = _load(args.model, args.dtype)
        bar.update()
        _step(bar, "predicting (the first call compiles kernels)")
        try:
            texts = args.text if len(args.text) > 1 else args.text[0]
            results = BFFillMaskPipeline(model, tokenizer)(texts, top_k=args.top_k, targets=args.targets)
        except ValueError as err:
            raise UsageError(str(err).splitlines()[0]) from err
        bar.update()
    per_text = results if len(args.text) > 1 else [results]
    for text, result in zip(args.text, per_text):
        print(text)
        masks = result if result and isinstance(result[0], list) else [result]
        for k, predictions in enumerate(masks):
            if len(masks) > 1:
                print(f"  mask {k + 1}")
            for p in predictions:
                print(f"  {p['score']:8.4f}  {p['token_str']:<14} {p['sequence']}")


def run_explain(args):
    from .explain import explain
    with contextlib.closing(_progress(3)) as bar:
        _step(bar, "loading the model")
        model, tokenizer = _load(args.model, args.dtype)
        bar.update()
        _step(bar, "forward + one all-semiring backprop (the first call compiles kernels)")
        try:
            explanation = explain(model, tokenizer, args.text, target=args.target, contrast=args.contrast,
                                  quantity=args.quantity)
        except ValueError as err:
            raise UsageError(str(err).splitlines()[0]) from err
        bar.update()
        if args.out:
            _step(bar, f"writing {args.out}")
            os.makedirs(args.out, exist_ok=True)
            explanation.to_json(os.path.join(args.out, "explanation.json"))
            explanation.plot(os.path.join(args.out, "explanation.png"))
        bar.update()
    print(explanation.summary())
    if args.out:
        print(f"\nwrote {os.path.join(args.out, 'explanation.json')} and explanation.png")


def main(argv=None):
    args = _parser().parse_args(argv)
    if getattr(args, "top_k", 1) < 1:
        print("bf-bert: error: --top-k must be at least 1", file=sys.stderr)
        return 2
    import jax

    from .compile_cache import enable_compilation_cache
    enable_compilation_cache()
    # x64 for this call only: main() may run inside a user's process (a notebook, the tests)
    x64 = jax.enable_x64(True) if args.dtype == "float64" else contextlib.nullcontext()
    try:
        with x64:
            (run_fill_mask if args.command == "fill-mask" else run_explain)(args)
    except UsageError as err:
        print(f"bf-bert: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
