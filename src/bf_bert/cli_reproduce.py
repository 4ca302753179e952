"""`bf-bert reproduce`: the paper's experiments that need no outside data, as one command each.

    bf-bert reproduce synthetic-top-path --out runs/synthetic [--task FirstTokenRepeatedOnce] [--epochs 40]

Runs are resumable: run the same command again after a kill and finished stages are kept.
"""

import shlex


def add_commands(commands):
    reproduce = commands.add_parser("reproduce", help="reproduce an experiment of the paper (no data needed)")
    which = reproduce.add_subparsers(dest="experiment", required=True, help="which experiment")
    from .synthetic import DEFAULTS
    synthetic = which.add_parser("synthetic-top-path", help="§5.1: train a small BERT on a synthetic task whose "
                                 "solution is known, then check where its top gradient paths go")
    synthetic.add_argument("--out", required=True, help="folder for the models, Parquet tables, figure and report.md "
                                                        "(made if missing; an existing run there is resumed)")
    synthetic.add_argument("--task", default=DEFAULTS["task"], help=f"synthetic task (default {DEFAULTS['task']})")
    for name, kind in (("train-size", int), ("heldout-size", int), ("epochs", int), ("seed", int)):
        key = name.replace("-", "_")
        synthetic.add_argument(f"--{name}", type=kind, default=DEFAULTS[key], help=f"default {DEFAULTS[key]}")
    synthetic.add_argument("--no-torch", action="store_true", help="skip the model trained in torch and loaded here")
    synthetic.add_argument("--no-max-path", action="store_true", help="skip the exact neuron-level max_path "
                                                                       "(oplus and bucket_sum only; faster)")
    return reproduce


def run(args, usage_error):
    from .synthetic.reproduce import RunError, VARIANTS, reproduce
    from .synthetic.tasks import TASKS
    if args.task not in TASKS:
        raise usage_error(f"--task {args.task!r}: unknown task; known: {', '.join(sorted(TASKS))}")
    for name in ("train_size", "heldout_size", "epochs"):
        if getattr(args, name) < 1:
            raise usage_error(f"--{name.replace('_', '-')} must be at least 1")
    from .cli import _check_out
    _check_out(args.out, contents="the run's models, tables, figure and report.md", file_names=(".png", ".md"))
    from .analysis.store import StoreError
    try:
        result = reproduce(args.out, task=args.task, train_size=args.train_size, heldout_size=args.heldout_size,
                           epochs=args.epochs, seed=args.seed,
                           variants=tuple(v for v in VARIANTS if not (args.no_torch and v == "torch")),
                           max_path=not args.no_max_path, command=_command(args))
    except (RunError, StoreError) as err:
        raise usage_error(str(err).splitlines()[0]) from err
    for variant, facts in result["facts"].items():
        print(f"{variant}: held-out accuracy {facts['correct']}/{facts['heldout']}, trained in "
              f"{facts['train_seconds']:.1f} s, analysed in {facts['analysis_seconds']:.1f} s")
    print(f"wrote {result['report']} and {result['figure']}")


def _command(args):
    """The command line that reproduces this run (settings that differ from the defaults only)."""
    from .synthetic import DEFAULTS
    words = ["bf-bert", "reproduce", args.experiment, "--out", args.out]
    for name in ("task", "train_size", "heldout_size", "epochs", "seed"):
        if getattr(args, name) != DEFAULTS[name]:
            words += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    words += [flag for flag, on in (("--no-torch", args.no_torch), ("--no-max-path", args.no_max_path)) if on]
    return shlex.join(words)
