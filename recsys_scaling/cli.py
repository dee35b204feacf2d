"""`recsys-scaling` command line: train, sweep, budget, data, report, tune, ui."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from omegaconf import OmegaConf

from .runtime import install_interrupt_handler, tune_allocator

USAGE_EXAMPLES = """examples:
  recsys-scaling data prepare data=criteo data.path=/data/criteo/train.txt
  recsys-scaling train model=dcnv2 arm=me scale=4 seed=1
  recsys-scaling sweeps
  recsys-scaling budget demo
  recsys-scaling sweep demo
  recsys-scaling report demo
"""


SWEEP_EXAMPLES = """examples:
  recsys-scaling sweep demo                                   # the built-in demo (42 jobs)
  recsys-scaling sweep smoke seed=0,1,2 train.max_epochs=3    # overrides; commas sweep a key
  recsys-scaling sweep demo hydra/launcher=joblib hydra.launcher.n_jobs=2
keys: the same as `recsys-scaling train --help`; every key with its value: recsys-scaling train --cfg job
before launching: recsys-scaling budget <name> (the jobs and their parameter counts)
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

    sweep = commands.add_parser(
        "sweep", help="run a sweep from sweeps/<name>.yaml as a Hydra multirun",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SWEEP_EXAMPLES)
    sweep.add_argument("name", help="a sweep name (`recsys-scaling sweeps` lists them) or a path to a sweep YAML")
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
    tune.add_argument("--seed", type=int, default=None,
                      help="sampler seed, for a reproducible single worker (default: each worker draws its own)")
    _sweeps_dir_option(tune)

    ui = commands.add_parser("ui", help="start an MLflow tracking server and UI on the project's store")
    ui.add_argument("--backend-store-uri", default=None, help="default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--artifacts", type=Path, default=Path("mlartifacts"), help="where the server keeps artifacts")
    ui.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    ui.add_argument("--experiment", default="recsys-scaling", help="the experiment whose runs it opens on")

    server = commands.add_parser("server", help="a shared MLflow tracking server for a team: a database store "
                                 "(PostgreSQL) and an artifact folder; jobs on any machine log to it")
    server.add_argument("--backend-store-uri", default=None,
                        help="postgresql://USER:PASSWORD@HOST:PORT/DB (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    server.add_argument("--local-postgres", type=Path, default=None, metavar="DIR",
                        help="start a PostgreSQL server in DIR (created on first use) and use it as the store")
    server.add_argument("--artifacts", type=Path, default=Path("mlartifacts"),
                        help="where the server keeps artifacts (shared storage for a team)")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--workers", type=int, default=4, help="server worker processes (default 4)")
    server.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    server.add_argument("--experiment", default="recsys-scaling", help="the experiment whose runs it links to")

    store = commands.add_parser("store", help="move runs between MLflow stores (your sqlite into the team's server)")
    store.add_argument("action", choices=["copy"])
    store.add_argument("source", help="the store to copy from, e.g. sqlite:///mlflow.db")
    store.add_argument("dest", help="the store to copy into: the team server's http://HOST:PORT (its artifact "
                       "store gets the artifacts) or a database URI")
    store.add_argument("--experiment", action="append", default=[],
                       help="copy only this experiment (repeatable; default: every experiment with runs)")

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
    report.add_argument("--ui-url", default=None, help="MLflow UI address for run links (default: the tracking "
                        "server itself, else $RECSYS_SCALING_UI_URL, else `recsys-scaling ui`'s http://127.0.0.1:5000)")
    report.add_argument("--out", type=Path, default=Path("reports"), help="output root (default: reports/)")
    return parser


def _sweeps_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sweeps-dir", type=Path, action="append", default=[], metavar="DIR",
                        help="also look for sweep files here (repeatable; before ./sweeps and the built-ins)")


TRAIN_KEYS = ("arm", "scale", "seed", "train.max_epochs", "train.batch_size", "train.lr", "train.device",
              "train.precision", "data.path", "tracking.uri")


def train_help() -> str:
    """Short help for `train`: the groups and their options, the keys people set most."""
    import yaml

    from .paths import CONF_DIR
    from .sweep.grid import Composer

    cfg = Composer(None)([])
    defaults = {k: v for entry in yaml.safe_load((CONF_DIR / "config.yaml").read_text())["defaults"]
                if isinstance(entry, dict) for k, v in entry.items()}

    def options(group: Path) -> str:
        return ", ".join(f"{p.stem}*" if p.stem == defaults.get(group.name) else p.stem
                         for p in sorted(group.glob("*.yaml")))

    groups = "\n".join(f"  {g.name}: {options(g)}" for g in sorted(CONF_DIR.iterdir()) if g.is_dir())
    keys = "\n".join(f"  {key}={OmegaConf.select(cfg, key)}" for key in TRAIN_KEYS)
    return (f"usage: recsys-scaling train [GROUP=OPTION ...] [KEY=VALUE ...]\n\n"
            f"One training job, recorded as one MLflow run.\n\nconfig groups (* the default):\n"
            f"{groups}\n\ncommon keys (current defaults):\n{keys}\n\n"
            "every key with its value: recsys-scaling train --cfg job\n"
            "example: recsys-scaling train model=dcnv2 arm=me scale=4 seed=1 train.max_epochs=5\n")


def cmd_train(overrides: List[str]) -> int:
    from .app import JobInputError, launch

    if {"--help", "-h"} & set(overrides):
        print(train_help())
        return 0
    if not any(o.startswith("-") for o in overrides):  # Hydra flags (--cfg, --info) go straight through
        check_train_config(overrides)
    try:
        launch(overrides)
    except JobInputError as exc:
        raise ValueError(str(exc.code)) from None
    except SystemExit as exc:  # Hydra reports a failed job and exits; keep main() returning codes
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def check_train_config(overrides: List[str]) -> None:
    """Compose and check the job before Hydra starts it: a bad value fails here, before a store,
    a run or an output folder exists."""
    from hydra.errors import HydraException

    from .config import explain
    from .tuned import resolve_job_config
    from .sweep.grid import Composer
    from .validate import check_job

    try:
        cfg = Composer(None)(overrides)
    except HydraException as exc:
        raise ValueError(explain(exc)) from None
    check_job(resolve_job_config(cfg))


def cmd_sweep(name: str, overrides: List[str], force: bool, sweeps_dirs: List[Path]) -> int:
    from .sweep import run_sweep

    summary = run_sweep(name, overrides, force=force, sweeps_dirs=sweeps_dirs)
    print(summary.table())
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
    from .sweep.budget_table import LEGEND, budget_table, format_table

    spec = find_sweep(args[0], sweeps_dirs) if args and "=" not in args[0] else None
    overrides = args[1:] if spec else args
    jobs = grid.expand(spec, overrides)
    trained, plans, base = grid.split_shared_base(jobs, grid.validate(jobs))
    table = budget_table(trained, plans)
    print(format_table(table))
    if base:
        print(f"({len(base)} ME jobs with one set are the SE base: the sweep trains them once, as SE)")
    print(LEGEND)
    if csv is not None:
        table.to_csv(csv, index=False)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .tune import tune_sweep

    path = tune_sweep(args.name, args.overrides, args.trials, args.storage, args.pruner, args.tune_dropout,
                      args.timeout, sweeps_dirs=args.sweeps_dir, seed=args.seed)
    print(f"tuned parameters: {path.resolve()}  (use them with train.tuned={path.stem})")
    return 0


def _serve(args: argparse.Namespace, backend: str, announce, workers: int = 1) -> int:
    """Start an MLflow server on `backend` (refusing a port in use), call `announce(url, process)`
    once it answers, and keep it until Ctrl-C or SIGTERM."""
    from . import tracking

    if tracking.port_in_use(args.host, args.port):
        raise ValueError(f"--port {args.port}: {args.host}:{args.port} is already in use (another MLflow server?); "
                         f"pick a free one with --port, or open http://{args.host}:{args.port} if that server is yours")
    process = tracking.start_server(backend, args.host, args.port, args.artifacts, args.allow_remote, workers)
    url = f"http://{args.host}:{args.port}"
    try:
        tracking.wait_for_server(url, process=process)
        announce(url, process)
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        tracking.stop_server(process)
    return 0


def _store_backend(args: argparse.Namespace) -> str:
    from .config import resolve_tracking_uri

    backend = args.backend_store_uri or resolve_tracking_uri(None)
    if backend.startswith("http"):
        raise ValueError(f"--backend-store-uri {backend}: give the store itself (sqlite:///mlflow.db, postgresql://...)")
    return backend


def cmd_ui(args: argparse.Namespace) -> int:
    from . import tracking

    backend = _store_backend(args)

    def announce(url: str, process) -> None:
        runs = tracking.experiment_url(url, tracking.Store(backend, args.experiment).experiment_id)
        print(f"MLflow UI: {runs}\n  (the runs of experiment {args.experiment!r}; server pid {process.pid}, store "
              f"{backend}); Ctrl-C stops it")
        print(f"jobs log to it with: tracking=server  (RECSYS_SCALING_UI_PORT={args.port} if not 5000)", flush=True)

    return _serve(args, backend, announce)


def cmd_server(args: argparse.Namespace) -> int:
    """Start the team's tracking server after checking its database; run until Ctrl-C."""
    import signal
    import socket

    from . import tracking

    # `kill` (SIGTERM) stops it as cleanly as Ctrl-C: the MLflow server and PostgreSQL go down too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    postgres = None  # a local PostgreSQL runs while this handle lives, and stops when the process exits
    if args.local_postgres is not None:
        postgres, backend = tracking.local_postgres(args.local_postgres)
    else:
        backend = _store_backend(args)
    backend = tracking.check_store(backend)
    shown = socket.getfqdn() if args.host in ("0.0.0.0", "::") else args.host

    def announce(url: str, process) -> None:
        runs = tracking.experiment_url(f"http://{shown}:{args.port}", tracking.Store(url, args.experiment).experiment_id)
        print(f"MLflow tracking server: {url} (pid {process.pid}); store {backend}; artifacts {args.artifacts.resolve()}")
        print(f"jobs log to it with:  tracking.uri=http://{shown}:{args.port}  (or MLFLOW_TRACKING_URI=http://{shown}:"
              f"{args.port})")
        print(f"runs: {runs}\nCtrl-C stops it", flush=True)

    return _serve(args, backend, announce, args.workers)


def cmd_store(args: argparse.Namespace) -> int:
    """Copy experiments between stores; exit 1 when the counts of the two sides differ."""
    from .tracking import check_source, check_store
    from .tracking.copy import copy_store

    if args.source == args.dest:
        raise ValueError("store copy: the source and the destination are the same store")
    dest = args.dest if args.dest.startswith(("http://", "https://")) else check_store(args.dest)
    results = copy_store(check_source(args.source), dest, args.experiment, progress=sys.stderr.isatty())
    for result in results:
        print(result.table())
    bad = [r.experiment for r in results if not r.matches]
    if bad:
        print(f"store copy: the copy's counts differ from the source in {', '.join(bad)}; run the same command "
              "again (complete copies are kept, half-copied runs are redone)", file=sys.stderr)
        return 1
    print(f"store copy: {sum(r.copied for r in results)} runs copied into {args.dest}; the counts match")
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
    print(f"browse the runs: recsys-scaling ui   then open {report.experiment_url}")
    return 0


MAX_ERROR_LENGTH = 400
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # also conf/config.yaml's, for the jobs


def _error_line(command: str, exc: BaseException) -> str:
    """`recsys-scaling <command>: error: <message>` on one bounded line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)  # escapes, e.g. \x00
    if len(text) > MAX_ERROR_LENGTH:
        text = text[: MAX_ERROR_LENGTH - 20] + f" ... ({len(text)} characters)"
    return f"recsys-scaling {command}: error: {text}"


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    install_interrupt_handler()
    try:
        return _dispatch(argv)
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"recsys-scaling {command}: interrupted; a running job's run is marked KILLED and its checkpoint "
              "kept: run the same command again to resume", file=sys.stderr)
        return 130
    except (FileNotFoundError, LookupError, ValueError) as exc:
        print(_error_line(command, exc), file=sys.stderr)
        return 2
    except ConnectionError as exc:  # the tracking store stopped answering (tracking.StoreUnreachable)
        print(_error_line(command, exc), file=sys.stderr)
        return 3


def _dispatch(argv: List[str]) -> int:
    if argv[:1] == ["train"]:  # everything after `train` is Hydra's: overrides, --cfg job, ...
        tune_allocator()
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
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
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    commands = {"sweep": lambda: cmd_sweep(args.name, args.overrides, args.force, args.sweeps_dir),
                "sweeps": lambda: cmd_sweeps(args.sweeps_dir),
                "budget": lambda: cmd_budget(args.overrides, args.csv, args.sweeps_dir),
                "tune": lambda: cmd_tune(args),
                "ui": lambda: cmd_ui(args),
                "server": lambda: cmd_server(args),
                "store": lambda: cmd_store(args),
                "data": lambda: cmd_data(args.action, args.overrides),
                "report": lambda: cmd_report(args)}
    return commands[args.command]()


if __name__ == "__main__":
    sys.exit(main())
