"""`bf-bert`: fill-mask and explanations from the command line.

    bf-bert fill-mask "The keys to the cabinet [MASK] on the table." --targets is,are
    bf-bert explain "The keys to the cabinet [MASK] on the table." --target is --contrast are --out DIR
    bf-bert analyze sva --data lgd_dataset.tsv --out runs/lgd     (see cli_analyze.py)
    bf-bert reproduce synthetic-top-path --out runs/synthetic     (see cli_reproduce.py)

Bad input ends with one line on stderr that names the fix and exit status 2, no traceback; what can
be checked before the model loads (--model, --out) is. Warnings are one `bf-bert: warning:` line each.
"""

import argparse
import contextlib
import os
import sys
import tempfile
import warnings

from . import cli_analyze, cli_reproduce

DEFAULT_MODEL_NOTE = ("default model: all-MiniLM-L6-v2 with top layers and an MLM head this project trained on "
                      "1.35M words of English; a small LM, not BERT-base (use --model for research results)")


class UsageError(Exception):
    """A mistake the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse prints its usage block first; the fix fits on the one error line
        raise UsageError(f"{message} (see {self.prog} --help)")


def _parser():
    parser = _Parser(prog="bf-bert", description="Masked-token prediction and semiring explanations (grad, "
                     "abs-grad, entropy, top gradient path) on BF BERT.")
    commands = parser.add_subparsers(dest="command", required=True, help="what to run")
    for name, help_text in (("fill-mask", "predict the [MASK] token"),
                            ("explain", "explain the logit of --target (minus --contrast) at the [MASK]")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("text", nargs="+" if name == "fill-mask" else None,
                         help="text with a [MASK] token" + (" (several texts: one batch)" if name == "fill-mask"
                                                            else ""))
        sub.add_argument("--model", help="checkpoint folder, or a hub id already in the local Hugging Face cache "
                         "(nothing is downloaded); default: the embedded model")
        sub.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                         help="float dtype of the model (default float32; path sums stay finite in either)")
    fill = commands.choices["fill-mask"]
    fill.add_argument("--top-k", type=int, default=5, help="how many predictions to print per mask (default 5)")
    # one comma-separated value, so that the text may come after it; repeat the option to add more
    fill.add_argument("--targets", action="extend", type=_comma_separated, metavar="WORD[,WORD...]",
                      help="score only these words, e.g. --targets is,are")
    explain = commands.choices["explain"]
    explain.add_argument("--target", required=True, help="the word whose score is explained, e.g. is")
    explain.add_argument("--contrast", help="explain target minus this word, e.g. are")
    explain.add_argument("--quantity", choices=("logit", "log_prob"), default="logit",
                         help="explain the target's logit (default) or its log-probability (log-softmax over the "
                         "vocabulary)")
    explain.add_argument("--out", help="folder to write explanation.json and explanation.png into (made if missing)")
    cli_analyze.add_commands(commands, UsageError)
    cli_reproduce.add_commands(commands)
    return parser


def _comma_separated(value):
    words = [word for word in value.split(",") if word]
    if not words:
        raise argparse.ArgumentTypeError(f"no word in {value!r}: pass e.g. --targets is,are")
    return words


# -- the model ------------------------------------------------------------------------------

def _model_source(model):
    """(what to load, from_pretrained options) for --model; a UsageError at once if there is nothing to load."""
    if model is None:
        from .default_model import default_model_path
        print(DEFAULT_MODEL_NOTE, file=sys.stderr)
        return default_model_path(), {}
    if os.path.isdir(model):
        return model, {}
    if os.path.exists(model):
        raise UsageError(f"--model {model!r} is a file; pass the folder that holds the checkpoint and config.json")
    if not _is_hub_id(model):
        raise UsageError(f"--model {model!r}: no such folder")
    if not _in_hub_cache(model):
        raise UsageError(f"--model {model!r}: no such folder, and not in the local Hugging Face cache (no network "
                         f"is used): pass a checkpoint folder, or download it once where there is network "
                         f"(`hf download {model}`)")
    return model, {"local_files_only": True}  # transformers would otherwise ask the network first


def _is_hub_id(name):
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _in_hub_cache(repo_id):
    from huggingface_hub import try_to_load_from_cache
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _load(source, options, dtype):
    from .fill_mask import load_masked_lm, load_tokenizer
    try:
        return load_masked_lm(source, dtype=dtype, **options), load_tokenizer(source, **options)
    except (OSError, ValueError, TypeError) as err:
        message = str(err).splitlines()[0]
        raise UsageError(message if repr(source) in message else f"cannot load model {source!r}: {message}") from err


# -- progress and warnings on stderr -----------------------------------------------------------

def _progress(stages):
    from tqdm import tqdm
    # off when stderr is a file or a pipe: redrawn bars would pile up there, glued to the next line
    return tqdm(total=stages, desc="bf-bert", leave=False, file=sys.stderr, disable=not sys.stderr.isatty(),
                bar_format="{desc}: {n_fmt}/{total_fmt} {postfix}")


def _step(bar, label):
    bar.set_postfix_str(label)
    return bar


@contextlib.contextmanager
def _warnings_as_lines():
    """Each warning as one `bf-bert: warning:` line: Python's category and source line point into library code."""
    from tqdm import tqdm

    def show(message, category, filename, lineno, file=None, line=None):
        tqdm.write(f"bf-bert: warning: {str(message).splitlines()[0]}", file=sys.stderr)  # above a running bar

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


# -- the commands ---------------------------------------------------------------------------

def run_fill_mask(args):
    from .fill_mask import BFFillMaskPipeline
    if args.top_k < 1:
        raise UsageError("--top-k must be at least 1")
    source, options = _model_source(args.model)
    with contextlib.closing(_progress(2)) as bar:
        _step(bar, "loading the model")
        model, tokenizer = _load(source, options, args.dtype)
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
    if args.out:
        _check_out(args.out)
    source, options = _model_source(args.model)
    with contextlib.closing(_progress(2)) as bar:
        _step(bar, "loading the model")
        model, tokenizer = _load(source, options, args.dtype)
        _check_length(model, tokenizer, args.text)
        bar.update()
        _step(bar, "forward + one all-semiring backprop (the first call compiles kernels)")
        try:
            explanation = explain(model, tokenizer, args.text, target=args.target, contrast=args.contrast,
                                  quantity=args.quantity)
        except ValueError as err:
            raise UsageError(str(err).splitlines()[0]) from err
        bar.update()
    print(explanation.summary())  # first: a failed write below must not lose the result
    if args.out:
        _write(explanation, args.out)


def _check_length(model, tokenizer, text):
    """The model's own error names a Python fix (truncation=True); here the fix is a shorter text."""
    tokens = len(tokenizer(text, verbose=False)["input_ids"])
    limit = model.config.max_position_embeddings
    if tokens > limit:
        raise UsageError(f"the text is {tokens} tokens; the model takes at most {limit} (max_position_embeddings): "
                         "shorten it")


def _check_out(out, contents="explanation.json and explanation.png", file_names=(".png", ".json")):
    """Refuse an --out that cannot take the files (`contents`), before anything is computed."""
    if os.path.isdir(out):
        existing = out
    else:
        if os.path.exists(out):
            raise UsageError(f"--out {out!r} is a file, not a folder: pass a folder for {contents} (it is made if "
                             "missing)")
        if os.path.splitext(out)[1].lower() in file_names:
            raise UsageError(f"--out {out!r}: --out is a folder that gets {contents}, not a file name: pass e.g. "
                             f"--out {os.path.dirname(out) or '.'}")
        existing = os.path.dirname(os.path.abspath(out))
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise UsageError(f"--out {out!r}: {existing!r} is a file, not a folder, so nothing can be made under it")
    try:  # a real write: permission bits say nothing for root, or on a read-only file system
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as err:
        raise UsageError(f"--out {out!r}: cannot write in {existing!r} ({err.strerror}); pass a folder you can "
                         "write to") from err


def _write(explanation, out):
    json_path, png_path = os.path.join(out, "explanation.json"), os.path.join(out, "explanation.png")
    try:
        os.makedirs(out, exist_ok=True)
        explanation.to_json(json_path)
        explanation.plot(png_path)
    except OSError as err:
        raise UsageError(f"could not write into --out {out!r} ({err.strerror or err}); the summary above is the "
                         "result") from err
    print(f"\nwrote {json_path} and {png_path}")


def main(argv=None):
    try:
        args = _parser().parse_args(argv)
        import jax

        from .compile_cache import enable_compilation_cache
        enable_compilation_cache()
        # x64 for this call only: main() may run inside a user's process (a notebook, the tests)
        x64 = jax.enable_x64(True) if getattr(args, "dtype", None) == "float64" else contextlib.nullcontext()
        with x64, _warnings_as_lines():
            if args.command == "analyze":
                cli_analyze.run(args, UsageError)
            elif args.command == "reproduce":
                cli_reproduce.run(args, UsageError)
            else:
                (run_fill_mask if args.command == "fill-mask" else run_explain)(args)
    except UsageError as err:
        print(f"bf-bert: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
