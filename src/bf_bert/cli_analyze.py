"""`bf-bert analyze`: the dataset-scale subject–verb agreement study from the command line.

    bf-bert analyze sva --data lgd_dataset.tsv --out runs/lgd [--model DIR] [--shard i/n] [--resume]
    bf-bert analyze merge runs/lgd [--from runs/lgd-shard-1 ...]
    bf-bert analyze figures runs/lgd

A SLURM job array needs no flag: `bf-bert analyze sva ... --out runs/lgd` in each task picks its
shard from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT; shards may share one --out folder.
"""

import os
import sys


def add_commands(commands, usage_error):
    analyze = commands.add_parser("analyze", help="explain every row of a dataset (the paper's SVA study)")
    which = analyze.add_subparsers(dest="analysis", required=True, help="what to run")
    sva = which.add_parser("sva", help="subject-verb agreement: logit(correct verb) - logit(wrong verb) at the "
                                       "mask, explained for every row")
    sva.add_argument("--data", required=True, help="a TSV/CSV/JSONL/Parquet file or a saved HF dataset folder")
    sva.add_argument("--out", required=True, help="folder for the Parquet tables, figures and report.md")
    sva.add_argument("--model", help="checkpoint folder or cached hub id (default: the embedded model)")
    sva.add_argument("--format", choices=("lgd", "gulordava", "grammar", "columns"),
                     help="the dataset's format (default: detected from its header)")
    sva.add_argument("--limit", type=int, help="read at most this many rows")
    sva.add_argument("--shard", help="i/n (0-based): run the i-th of n disjoint parts; default: from "
                                     "SLURM_ARRAY_TASK_ID/COUNT, else everything")
    sva.add_argument("--resume", action="store_true", help="skip rows that --out already holds")
    sva.add_argument("--batch-size", type=int, default=8, help="sentences per compiled call (default 8)")
    sva.add_argument("--bucket", type=int, default=16, help="pad lengths to a multiple of this (default 16): "
                                                           "one compile per padded length")
    sva.add_argument("--top-path", action="store_true", help="also the exact neuron-level top path value per "
                                                             "token (max_path; about twice the time)")
    sva.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                     help="float dtype of the model (default float32; path sums stay finite in either)")
    for column in ("text", "target", "contrast", "group", "id"):
        sva.add_argument(f"--{column}-column", help=f"the {column} column (generic format)")
    merge = which.add_parser("merge", help="combine the shards of a run into one table per kind, then figures")
    merge.add_argument("out", help="the run's folder (merged tables are written here)")
    merge.add_argument("--from", dest="sources", nargs="+", metavar="DIR",
                       help="shard folders to merge, when they did not share the run's folder")
    figures = which.add_parser("figures", help="redraw the figures and report.md from a run's tables")
    figures.add_argument("out", help="the run's folder")
    return analyze


def run(args, usage_error):
    if args.analysis == "sva":
        return _run_sva(args, usage_error)
    from .analysis.store import StoreError, merge
    if args.analysis == "merge":
        try:
            written = merge(args.out, sources=args.sources)
        except (StoreError, FileNotFoundError) as err:
            raise usage_error(str(err).splitlines()[0]) from err
        print(f"merged {', '.join(sorted(written))} into {args.out}")
    _report(args.out, usage_error)


def _run_sva(args, usage_error):
    from .analysis.store import StoreError
    from .analysis.sva import analyze_sva
    if args.batch_size < 1 or args.bucket < 1:
        raise usage_error("--batch-size and --bucket must be at least 1")
    if not os.path.exists(args.data):
        raise usage_error(f"--data {args.data!r}: no such file or folder")
    columns = {f"{c}_column": getattr(args, f"{c}_column") for c in ("text", "target", "contrast", "group", "id")
               if getattr(args, f"{c}_column")}
    if columns and args.format not in (None, "columns"):
        raise usage_error(f"{', '.join('--' + c.replace('_', '-') for c in columns)}: options of --format columns, "
                          f"not of --format {args.format}")
    if args.model is not None:
        from .cli import _model_source
        _model_source(args.model)  # a missing folder is one line, before the data are read
    from .analysis.readers.load import datasets_module
    datasets = datasets_module()  # first import: it sets HF_DATASETS_OFFLINE
    verbosity = datasets.logging.get_verbosity()
    # a file datasets cannot parse is also logged as an ERROR line: the one line below says it
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        summary = analyze_sva(args.data, args.out, model=args.model, format=args.format, limit=args.limit,
                              shard=args.shard, resume=args.resume, batch_size=args.batch_size, bucket=args.bucket,
                              top_path=args.top_path, dtype=args.dtype, columns=columns or None,
                              progress=sys.stderr.isatty())
    except (StoreError, ValueError, OSError) as err:  # OSError: a model folder that cannot be loaded
        raise usage_error(str(err).splitlines()[0]) from err
    except datasets.exceptions.DatasetGenerationError as err:  # its own message says nothing; its cause does
        raise usage_error(f"--data {args.data!r}: cannot read it ({str(err.__cause__ or err).splitlines()[0]})") \
            from err
    finally:
        datasets.logging.set_verbosity(verbosity)
    print(f"{summary.explained} sentences explained in {summary.seconds:.1f} s "
          f"({summary.sentences_per_second:.2f}/s, {summary.compiles} compiled shapes); "
          f"{len(summary.skipped)} skipped")
    reasons = {}
    for skipped in summary.skipped:
        reasons[skipped.reason] = reasons.get(skipped.reason, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  skipped {count}: {reason}")
    from .analysis.shards import resolve_shard
    if resolve_shard(args.shard)[1] == 1:
        from .analysis.store import tables
        if not summary.explained and "tokens" not in tables(args.out):
            raise usage_error(f"no row of --data {args.data!r} could be explained (see the reasons above), so "
                              "there is no report")
        _report(args.out, usage_error)
    else:
        print(f"shard done; when every shard is: bf-bert analyze merge {args.out}")


def _report(out, usage_error):
    from .analysis.report import write_report
    from .analysis.store import StoreError
    try:
        path = write_report(out)
    except (FileNotFoundError, StoreError) as err:  # StoreError: a folder without tables (not a run)
        raise usage_error(str(err).splitlines()[0]) from err
    print(f"wrote {path} (tables, figures and the paper's numbers beside ours)")
