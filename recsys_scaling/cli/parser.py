"""The command line's argument parser, its help texts, and `train --help`."""
from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

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
  recsys-scaling sweep demo --until-decided --max-seeds 6     # add seeds where claims are undecided
keys: the same as `recsys-scaling train --help`; every key with its value: recsys-scaling train --cfg job
before launching: recsys-scaling budget <name> (the jobs and their parameter counts)
"""


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (the usage itself is one --help away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    sweep.add_argument("--plan", action="store_true",
                       help="print each job's estimated time and memory and the sweep's total, then stop")
    sweep.add_argument("--yes", "-y", action="store_true",
                       help="launch a sweep above 1,000 jobs or 24 estimated hours without asking")
    sweep.add_argument("--until-decided", action="store_true",
                       help="after the grid, add seeds in rounds to the cells behind undecided claims until every "
                            "claim is decided or --max-seeds is reached (sequential intervals), then report")
    sweep.add_argument("--max-seeds", type=int, default=10, metavar="N",
                       help="with --until-decided: the most seeds per cell (default 10)")
    sweep.add_argument("--margin", type=float, default=None, metavar="M",
                       help="the practical margin in AUC (default: the sweep file's report.margin, else 0.0005)")
    sweep.add_argument("--ia-margin", type=float, default=None, metavar="M",
                       help="the practical margin of the IA claims (default: the sweep file's, else 1.0)")
    sweep.add_argument("overrides", nargs="*", help="extra Hydra overrides (key=value, lists sweep)")
    _sweeps_dir_option(sweep)

    sweeps = commands.add_parser("sweeps", help="list the sweeps you can name: yours (./sweeps, --sweeps-dir) "
                                 "and the built-in ones")
    _sweeps_dir_option(sweeps)

    budget = commands.add_parser("budget", help="a sweep's jobs: parameter counts, and time and memory on this machine "
                                 "(calibrated), without training")
    budget.add_argument("overrides", nargs="*",
                        help="[SWEEP] [overrides...]: a sweep name/file, or only overrides (lists sweep)")
    budget.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    budget.add_argument("--no-calibrate", action="store_true",
                        help="estimate times from FLOPs over a measured matmul rate instead of timing each model's "
                             "training steps (faster the first time; less accurate)")
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
    ui.add_argument("--port", type=port_number, default=5000)
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
    server.add_argument("--port", type=port_number, default=5000)
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
    data.add_argument("overrides", nargs="*", help="a sweep (every dataset of its grid) and/or overrides: "
                      "data=<criteo|avazu|csv|synthetic...> data.path=FILE ...")
    _sweeps_dir_option(data)

    report = commands.add_parser("report", help="fit and plot a sweep's AUC-vs-size curves")
    report.add_argument("sweeps", nargs="*", help="sweep name(s); the latest parent run of each is used")
    report.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI "
                        "or sqlite:///mlflow.db)")
    report.add_argument("--experiment", default="recsys-scaling")
    report.add_argument("--parent-run-id", action="append", default=[],
                        help="report this sweep parent run (repeatable) instead of the latest by name")
    report.add_argument("--filter", default="", help="MLflow search filter on the runs, e.g. \"tags.backbone='dnn'\"")
    report.add_argument("--x", default="total", choices=["total", "embedding", "dense", "flops", "data", "compute"],
                        help="the axis of the curves, claims and fits: a size axis (default: total parameters), "
                             "data (training rows, over data.train_fraction) or compute (training FLOPs)")
    report.add_argument("--metric", default="auc", choices=["auc", "logloss", "ne"],
                        help="what the claims and fits read: test AUC (default), logloss or normalized entropy "
                             "(logloss over the entropy of the training positive rate; lower is better)")
    report.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the fits (default 1000)")
    report.add_argument("--pairing", default="welch", choices=["welch", "seed"],
                        help="ME - SE gap test: welch (default) or seed (paired t when both arms ran the same seeds)")
    report.add_argument("--family", default="backbone", choices=["backbone", "report", "claim"],
                        help="whose error rate the verdicts control: backbone (default: the chance of any false "
                             "claim about a backbone stays <= 5%%), report (every claim of the report together) or "
                             "claim (each read alone)")
    report.add_argument("--correction", default="holm", choices=["holm", "bh"],
                        help="holm (default: family-wise) or bh (Benjamini-Hochberg: the expected share of false "
                             "claims, a weaker promise; with --family report)")
    report.add_argument("--compare", action="append", default=[], metavar="A:B",
                        help="also compare two series, each [SWEEP/]BACKBONE/ARM (repeatable): the A − B test AUC gap "
                             "per scale and the difference of their scaling rates, tested as ME vs SE is; e.g. "
                             "report mine demo --compare mine/custom/me:demo/dcnv2/me")
    report.add_argument("--margin", type=float, default=None, metavar="M",
                        help="practical margin in the metric's units: smaller differences do not matter (default: "
                             "the sweep's report.margin for AUC, else 0.0005 AUC, 0.0005 logloss, 0.001 NE)")
    report.add_argument("--ia-margin", type=float, default=None, metavar="M",
                        help="practical margin of the IA claims (default: the sweep's, else 1.0)")
    report.add_argument("--sequential", action=argparse.BooleanOptionalAction, default=None,
                        help="intervals valid under repeated looks (default: on for sweeps run with "
                             "--until-decided, off otherwise)")
    report.add_argument("--max-seeds", type=int, default=None, metavar="N",
                        help="with --sequential: the planned largest seeds per cell (default: the sweep's plan)")
    report.add_argument("--ui-url", default=None, help="MLflow UI address for run links (default: the tracking "
                        "server itself, else $RECSYS_SCALING_UI_URL, else `recsys-scaling ui`'s http://127.0.0.1:5000)")
    report.add_argument("--out", type=Path, default=Path("reports"), help="output root (default: reports/)")

    advise = commands.add_parser("advise", help="the best (K sets x d width) for a budget, from a sweep's cells; "
                                 "or the best size and rows for a training compute (--compute)")
    advise.add_argument("sweep", help="a sweep name (its latest parent run); e.g. frontier, data_scaling")
    wanted = advise.add_mutually_exclusive_group(required=True)
    wanted.add_argument("--budget",
                        help="on --axis: a parameter count (e.g. 112200, 1.1e5), or on the embedding axis KxD "
                             "per field with a d suffix (40d: K·d = 40)")
    wanted.add_argument("--compute", type=float, metavar="FLOPS",
                        help="a training-compute budget in FLOPs (e.g. 3e12): the compute-optimal size and rows "
                             "from the sweep's joint size x data law (a sweep that varies data.train_fraction)")
    advise.add_argument("--metric", default="logloss", choices=["auc", "logloss", "ne"],
                        help="with --compute: the metric the law is fitted to (default logloss)")
    advise.add_argument("--axis", default="embedding", choices=["embedding", "total", "flops"],
                        help="what the budget counts (default: embedding parameters)")
    advise.add_argument("--backbone", default=None, help="the backbone, when the sweep has several")
    advise.add_argument("--tracking-uri", default=None, help="MLflow store (default: $MLFLOW_TRACKING_URI "
                        "or sqlite:///mlflow.db)")
    advise.add_argument("--experiment", default="recsys-scaling")
    advise.add_argument("--resamples", type=int, default=1000, help="seed bootstrap resamples (default 1000)")
    for name, command in commands.choices.items():
        if name != "train":  # everything after `train` is Hydra's
            command.add_argument("-v", "--verbose", action="store_true",
                                 help="every INFO line on the console (the launcher's per-job lines, the jobs' epochs)")
    return parser


def _sweeps_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sweeps-dir", type=Path, action="append", default=[], metavar="DIR",
                        help="also look for sweep files here (repeatable; before ./sweeps and the built-ins)")


TRAIN_KEYS = ("arm", "scale", "seed", "train.max_epochs", "train.batch_size", "train.lr", "train.device",
              "train.precision", "data.path", "tracking.uri")


def train_help() -> str:
    """Short help for `train`: the groups and their options, the keys people set most."""
    import yaml

    from ..paths import CONF_DIR
    from ..plugins import backbone_plugins
    from ..sweep.grid import Composer

    cfg = Composer(None)([])
    defaults = {k: v for entry in yaml.safe_load((CONF_DIR / "config.yaml").read_text())["defaults"]
                if isinstance(entry, dict) for k, v in entry.items()}

    def options(group: Path) -> str:
        return ", ".join(f"{p.stem}*" if p.stem == defaults.get(group.name) else p.stem
                         for p in sorted(group.glob("*.yaml")))

    groups = "\n".join(f"  {g.name}: {options(g)}" for g in sorted(CONF_DIR.iterdir()) if g.is_dir())
    plugins = backbone_plugins()
    if plugins:
        groups += "\n  model plugins (installed packages): " + ", ".join(f"{n} ({p})" for n, p in plugins.items())
    keys = "\n".join(f"  {key}={OmegaConf.select(cfg, key)}" for key in TRAIN_KEYS)
    return (f"usage: recsys-scaling train [GROUP=OPTION ...] [KEY=VALUE ...]\n\n"
            f"One training job, recorded as one MLflow run.\n\nconfig groups (* the default):\n"
            f"{groups}\n\ncommon keys (current defaults):\n{keys}\n\n"
            "every key with its value: recsys-scaling train --cfg job\n"
            "example: recsys-scaling train model=dcnv2 arm=me scale=4 seed=1 train.max_epochs=5\n"
            "your own tower: recsys-scaling train model=custom model.tower=PKG.MODULE:CLASS arm=me scale=2\n")


