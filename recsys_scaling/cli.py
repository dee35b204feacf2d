"""`recsys-scaling` command line: train, sweep, budget, data, report, tune, ui."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from .runtime import tune_allocator

USAGE_EXAMPLES = """examples:
  recsys-scaling data prepare data=criteo data.path=/data/criteo/train.txt
  recsys-scaling train model=dcnv2 arm=me scale=4 seed=1
  recsys-scaling sweeps
  recsys-scaling budget demo
  recsys-scaling sweep demo
  recsys-scaling report demo
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys-scaling", epilog=USAGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Does your CTR model scale? SE-vs-ME sweeps tracked in MLflow, with scaling reports.")
    commands = parser.add_subparsers(dest="command", required=True)

    # listed for --help only: main() hands everything after `train` to Hydra itself
    train = commands.add_parser("train", help="one training run (Hydra overrides: key=value ...)",
                                add_help=False)
    train.add_argument("overrides", nargs=argparse.REMAINDER)

    sweep = commands.add_parser("sweep", help="run a sweep from sweeps/<name>.yaml as a Hydra multirun")
    sweep.add_argument("name", help="a sweep name in sweeps/ or a path to a sweep YAML")
    sweep.add_argument("--force", action="store_true", help="rerun jobs that finished before (default: skip them)")
    sweep.add_argument("overrides", nargs="*", help="extra Hydra overrides (key=value, lists sweep)")
    _sweeps_dir_option(sweep)

    sweeps = commands.add_parser("sweeps", help="list the sweeps you can name: yours (./sweeps, --sweeps-dir) "
                                 "and the built-in ones")
    _sweeps_dir_option(sweeps)

    budget = commands.add_parser("budget", help="parameter counts of a sweep's jobs, without training")
    budget.add_argument("overrides", nargs="*",
                        help="[SWEEP] [overrides...]: a sweep name/file, or only overrides (lists sweep)")
    budget.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    _sweeps_dir_option(budget)

    tune = commands.add_parser("tune", help="Optuna studies (lr, weight decay) per cell of a sweep's grid")
    tune.add_argument("name", help="a sweep name or YAML; one study per backbone x arm x scale")
    tune.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    tune.add_argument("--trials", type=int, default=20, help="trials per study in this process (default 20)")
    tune.add_argument("--storage", default=None, help="Optuna RDB URL shared by workers (default: optuna.db "
                      "beside the MLflow store)")
    tune.add_argument("--pruner", default="median", choices=["median", "none"])
    tune.add_argument("--tune-dropout", action="store_true", help="also search model.dropout")
    tune.add_argument("--timeout", type=float, default=None, help="seconds per study")
    _sweeps_dir_option(tune)

    ui = commands.add_parser("ui", help="start an MLflow tracking server and UI on the project's store")
    ui.add_argument("--backend-store-uri", default=None, help="default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--artifacts", type=Path, default=Path("mlartifacts"), help="where the server keeps artifacts")
    ui.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")

    data = commands.add_parser("data", help="prepare a raw dataset into the encoded cache, or describe one")
    data.add_argument("action", choices=["prepare", "info"])
    data.add_argument("overrides", nargs="*", help="data=<criteo|avazu|csv|synthetic...> data.path=FILE ...")

    report = commands.add_parser("report", help="fit and plot a sweep's AUC-vs-size curves")
    report.add_argument("sweeps", nargs="*", help="sweep name(s); the latest parent run of each is used")
    report.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI "
                        "or sqlite:///mlflow.db)")
    report.add_argument("--experiment", default="recsys-scaling")
    report.add_argument("--parent-run-id", action="append", default=[],
                        help="report this sweep parent run (repeatable) instead of the latest by name")
    report.add_argument("--filter", default="", help="MLflow search filter on the runs, e.g. \"tags.backbone='dnn'\"")
    report.add_argument("--x", default="total", choices=["total", "embedding", "dense", "flops"],
                        help="size axis for fits and plots (default: total parameters)")
    report.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the fits (default 1000)")
    report.add_argument("--pairing", default="welch", choices=["welch", "seed"],
                        help="ME - SE gap test: welch (default) or seed (paired t when both arms ran the same seeds)")
    report.add_argument("--holm", action="store_true",
                        help="Holm's correction across every claim of the report (off by default)")
    report.add_argument("--ui-url", default="http://127.0.0.1:5000", help="MLflow UI address for run links")
    report.add_argument("--out", type=Path, default=Path("reports"), help="output root (default: reports/)")
    return parser


def _sweeps_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sweeps-dir", type=Path, action="append", default=[], metavar="DIR",
                        help="also look for sweep files here (repeatable; before ./sweeps and the built-ins)")


def _ui_command(uri: str) -> str:
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


def cmd_train(overrides: List[str]) -> int:
    from .app import launch

    try:
        launch(overrides)
    except SystemExit as exc:  # Hydra reports a failed job and exits; keep main() returning codes
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def cmd_sweep(name: str, overrides: List[str], force: bool, sweeps_dirs: List[Path]) -> int:
    from .sweep import run_sweep

    summary = run_sweep(name, overrides, force=force, sweeps_dirs=sweeps_dirs)
    print(summary.line())
    print(f"browse: {_ui_command(summary.store_uri)}")
    return 0 if summary.ok else 1


def cmd_sweeps(sweeps_dirs: List[Path]) -> int:
    from .paths import list_sweeps

    found = list_sweeps(sweeps_dirs)
    width = max((len(s.name) for s in found), default=4)
    for sweep in found:
        print(f"{sweep.name:<{width}}  {sweep.origin:<9}  {sweep.path}")
    if not any(not s.builtin for s in found):
        print("(no sweeps of your own: put YAML files in ./sweeps/ or pass --sweeps-dir)")
    return 0


def cmd_budget(args: List[str], csv: Optional[Path], sweeps_dirs: List[Path]) -> int:
    from .paths import find_sweep
    from .sweep import grid
    from .sweep.budget_table import budget_table, format_table

    spec = find_sweep(args[0], sweeps_dirs) if args and "=" not in args[0] else None
    overrides = args[1:] if spec else args
    jobs = grid.expand(spec, overrides)
    trained, plans, base = grid.split_shared_base(jobs, grid.validate(jobs))
    table = budget_table(trained, plans)
    print(format_table(table))
    if base:
        print(f"({len(base)} ME jobs with one set are the SE base: the sweep trains them once, as SE)")
    if csv is not None:
        table.to_csv(csv, index=False)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .tune import tune_sweep

    path = tune_sweep(args.name, args.overrides, args.trials, args.storage, args.pruner, args.tune_dropout,
                      args.timeout, sweeps_dirs=args.sweeps_dir)
    print(f"tuned parameters: {path.resolve()}  (use them with train.tuned={path.stem})")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from . import tracking
    from .config import resolve_tracking_uri

    backend = args.backend_store_uri or resolve_tracking_uri(None)
    if backend.startswith("http"):
        raise ValueError(f"--backend-store-uri {backend}: give the store itself (e.g. sqlite:///mlflow.db)")
    server = tracking.start_server(backend, args.host, args.port, args.artifacts, args.allow_remote)
    url = f"http://{args.host}:{args.port}"
    try:
        tracking.wait_for_server(url, process=server)
        print(f"MLflow UI: {url}  (server pid {server.pid}, store {backend}); Ctrl-C stops it")
        print(f"jobs log to it with: tracking=server  (RECSYS_SCALING_UI_PORT={args.port} if not 5000)", flush=True)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        tracking.stop_server(server)
    return 0


def cmd_data(action: str, overrides: List[str]) -> int:
    from .data import describe, load_dataset, open_prepared
    from .sweep.grid import Composer

    cfg = Composer(None)(overrides)
    data = load_dataset(cfg.data, progress=True) if action == "prepare" else open_prepared(cfg.data)
    print(describe(data))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    if not args.sweeps and not args.parent_run_id:
        raise ValueError("name a sweep (or give --parent-run-id)")
    report = build_report(args.sweeps, args.tracking_uri, args.experiment, args.out, args.parent_run_id,
                          x_axis=args.x, resamples=args.resamples, ui_url=args.ui_url, filter_string=args.filter,
                          pairing=args.pairing, holm=args.holm)
    print(f"report of {'+'.join(args.sweeps) or 'parent runs'} ({report.num_runs} runs): {report.index.resolve()}")
    for line in report.verdicts:
        print(f"  {line}")
    print(f"  plots: {report.plot.resolve().parent}  fits: {report.fits_json.resolve()}")
    print(f"browse the runs: {_ui_command(report.store_uri)}  then open http://127.0.0.1:5000")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # everything after `train` is Hydra's: overrides, --help, --cfg job, ...
        tune_allocator()
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return cmd_train(argv[1:])
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # Hydra overrides may follow options (`sweep demo --force seed=0,1`): argparse leaves them over.
    unknown = [a for a in extra if a.startswith("-")]
    if unknown or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    tune_allocator()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "sweep":
            return cmd_sweep(args.name, args.overrides, args.force, args.sweeps_dir)
        if args.command == "sweeps":
            return cmd_sweeps(args.sweeps_dir)
        if args.command == "budget":
            return cmd_budget(args.overrides, args.csv, args.sweeps_dir)
        if args.command == "tune":
            return cmd_tune(args)
        if args.command == "ui":
            return cmd_ui(args)
        if args.command == "data":
            return cmd_data(args.action, args.overrides)
        return cmd_report(args)
    except (FileNotFoundError, LookupError, ValueError) as exc:
        print(f"recsys-scaling {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
