"""`bf-bert reproduce`: the paper's experiments that need no outside data, as one command each.

    bf-bert reproduce synthetic-top-path --out runs/synthetic [--task FirstTokenRepeatedOnce] [--epochs 40]
    bf-bert reproduce entropy-vs-mdl --out runs/entropy [--tasks Contains1,BinCountOnes-4] [--seeds 0,1,2]

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
    _add_entropy_vs_mdl(which)
    return reproduce


def _add_entropy_vs_mdl(which):
    from .synthetic import ENTROPY_MDL_DEFAULTS as D
    sub = which.add_parser("entropy-vs-mdl", help="§5.3: train a small BERT on synthetic tasks of graded difficulty "
                           "(online-code MDL) and correlate difficulty with the entropy of the gradient graph")
    sub.add_argument("--out", required=True, help="folder for the runs, Parquet tables, figure and report.md "
                                                  "(made if missing; finished runs there are kept)")
    sub.add_argument("--tasks", type=_words, default=",".join(D["tasks"]),
                     help=f"comma-separated tasks (default: {','.join(D['tasks'])})")
    sub.add_argument("--seeds", type=_words, default=",".join(map(str, D["seeds"])),
                     help=f"comma-separated seeds (default {','.join(map(str, D['seeds']))})")
    for name in ("train-size", "val-size", "test-size", "epochs"):
        key = name.replace("-", "_")
        sub.add_argument(f"--{name}", type=int, default=D[key], help=f"default {D[key]}")


def _words(value):
    return [word for word in value.split(",") if word]


def run(args, usage_error):
    if args.experiment == "entropy-vs-mdl":
        return _run_entropy_vs_mdl(args, usage_error)
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


def _run_entropy_vs_mdl(args, usage_error):
    import sys

    from .synthetic import ENTROPY_MDL_DEFAULTS as D
    from .synthetic.tasks import difficulty_task
    if not args.tasks:
        raise usage_error("--tasks: name at least one task")
    for spec in args.tasks:
        try:
            difficulty_task(spec, vocab_size=D["vocab_size"], seq_len=D["seq_len"])
        except ValueError as err:
            raise usage_error(f"--tasks: {err}") from err
    if not args.seeds or not all(s.isdigit() for s in args.seeds):
        raise usage_error(f"--seeds {','.join(args.seeds)!r}: pass whole numbers, e.g. --seeds 0,1,2")
    if len(set(args.tasks)) < len(args.tasks) or len(set(args.seeds)) < len(args.seeds):
        raise usage_error("--tasks and --seeds: name each one once")
    for name, least in (("train_size", 2), ("val_size", 1), ("test_size", 1), ("epochs", 1)):
        if getattr(args, name) < least:
            raise usage_error(f"--{name.replace('_', '-')} must be at least {least}")
    from .cli import _check_out
    _check_out(args.out, contents="the runs, tables, figure and report.md", file_names=(".png", ".md"))
    from .synthetic.entropy_mdl import run_all
    from .synthetic.reproduce import RunError
    try:
        result = run_all(args.out, tasks=tuple(args.tasks), seeds=tuple(int(s) for s in args.seeds),
                         train_size=args.train_size, val_size=args.val_size, test_size=args.test_size,
                         epochs=args.epochs, command=_entropy_command(args), progress_bar=sys.stderr.isatty())
    except RunError as err:
        raise usage_error(str(err).splitlines()[0]) from err
    print(result["correlation"]["all"]["verdict"])
    print(f"wrote {result['report']} and {result['figure']}")


def _entropy_command(args):
    from .synthetic import ENTROPY_MDL_DEFAULTS as D
    words = ["bf-bert", "reproduce", args.experiment, "--out", args.out]
    if tuple(args.tasks) != tuple(D["tasks"]):
        words += ["--tasks", ",".join(args.tasks)]
    if tuple(args.seeds) != tuple(map(str, D["seeds"])):
        words += ["--seeds", ",".join(args.seeds)]
    for name in ("train_size", "val_size", "test_size", "epochs"):
        if getattr(args, name) != D[name]:
            words += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return shlex.join(words)
