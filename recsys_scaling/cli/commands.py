"""The subcommands: each parses nothing, calls the pipeline, prints what the user reads."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import List, Sequence

from .parser import train_help


def cmd_train(overrides: List[str]) -> int:
    from ..app import JobInputError, launch

    if {"--help", "-h"} & set(overrides):
        print(train_help())
        return 0
    if not any(o.startswith("-") for o in overrides):  # Hydra flags (--cfg, --info) go straight through
        check_train_config(overrides)
    try:
        launch(overrides)
    except JobInputError as exc:
        raise exc.error from None
    except SystemExit as exc:  # Hydra reports a failed job and exits; keep main() returning codes
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def check_train_config(overrides: List[str]) -> None:
    """Compose and check the job before Hydra starts it: a bad value fails here, before a store,
    a run or an output folder exists."""
    from hydra.errors import HydraException
    from omegaconf import open_dict

    from ..config import explain, resolve_tracking_uri
    from ..data import declared_field_dims
    from ..sweep.grid import Composer, check_model
    from ..tracking.opening import check_not_foreign, with_driver
    from ..tracking.store import probe_server
    from ..tuned import resolve_job_config
    from ..validate import check_hydra_dir, check_job, check_required

    try:
        cfg = Composer(None)(overrides, hydra_config=True)
    except HydraException as exc:
        raise ValueError(explain(exc)) from None
    check_hydra_dir(cfg, "hydra.run.dir")
    with open_dict(cfg):
        del cfg["hydra"]
    check_required(cfg)
    check_job(resolve_job_config(cfg))
    check_model(cfg, declared_field_dims(cfg.data))  # a user's tower that cannot train: one line, now
    check_train_memory(cfg)
    probe_server(resolve_tracking_uri(cfg.tracking.uri))  # a server that never answers: one line, now
    check_not_foreign(with_driver(resolve_tracking_uri(cfg.tracking.uri)))  # another program's database: untouched


def check_train_memory(cfg) -> None:
    """A job whose estimated peak memory exceeds what a job may use here: one line, before any run."""
    from ..config import explicit_shape, job_name
    from ..models import model_label
    from ..sweep.estimate import job_peak_bytes
    from ..sweep.plan import oversize_message

    if not cfg.train.memory_check:
        return
    found = job_peak_bytes(cfg, cfg.train.device)
    if found is not None and found[0] > found[1]:
        name = job_name(model_label(cfg.model), cfg.arm, cfg.scale, cfg.seed, explicit_shape(cfg),
                        cfg.data.train_fraction)
        raise ValueError(oversize_message(f"job {name}", *found))


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..sweep import run_sweep

    if args.until_decided:
        return _until_decided(args)
    if args.margin is not None or args.ia_margin is not None:
        raise ValueError("--margin and --ia-margin go with --until-decided (or set report.margin=... as an override)")
    if args.plan:
        return _print_plan(args)
    with calibration_progress() as on_shape:
        summary = run_sweep(args.name, args.overrides, force=args.force, sweeps_dirs=args.sweeps_dir,
                            announce=lambda text: print(text, flush=True), on_shape=on_shape, yes=args.yes,
                            ask=terminal_question(), verbose=args.verbose)
    print(summary.table())
    return 0 if summary.ok else 1


def _print_plan(args: argparse.Namespace) -> int:
    """--plan: what would run, each job's estimate and the total; no store or run is created."""
    from ..sweep.estimate import memory_text
    from ..sweep.plan import plan_sweep, too_big
    from ..sweep.progress import clock
    from ..tracking import existing_store

    with calibration_progress() as on_shape:
        plan = plan_sweep(args.name, args.overrides, args.force, args.sweeps_dir, open_store=existing_store,
                          on_shape=on_shape)
    jobs, oversize = plan.estimate.jobs, plan.estimate.oversize()
    width = max((len(j.job) for j in jobs), default=3)
    shown = jobs if len(jobs) <= PLAN_ROWS else [*jobs[:PLAN_ROWS - 5], None, *jobs[-5:]]
    for job in shown:
        if job is None:
            print(f"  ... {len(jobs) - PLAN_ROWS + 1:,} more jobs ...")
            continue
        seconds = "-" if job.seconds is None else clock(job.seconds)
        flag = "  too big for this machine" if job in oversize else ""
        print(f"  {job.job:<{width}}  {seconds:>7}  {memory_text(job.peak_bytes):>9}{flag}")
    if plan.reused:
        print(f"({len(plan.reused)} jobs finished before: skipped, not estimated)")
    print(f"plan: {plan.estimate.footer()}")
    if oversize:
        print(f"note: {plan.estimate.memory_note()}")
    big = too_big(len(jobs), plan.estimate.wall if plan.estimate.known else None)
    if big:
        print(f"note: {big}: launching it asks first (or add --yes)")
    return 0


PLAN_ROWS = 40  # a --plan lists at most this many jobs (the first and the last)


def terminal_question():
    """ask(question) -> bool on a terminal (a yes needs y or yes), else None: a script never waits."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None

    def ask(question: str) -> bool:
        try:
            return input(question).strip().lower() in ("y", "yes")
        except EOFError:
            return False
    return ask


def _until_decided(args: argparse.Namespace) -> int:
    from ..report import build_report
    from ..sweep.adaptive import RoundFailed, closing_line, run_until_decided

    if args.max_seeds < 3:
        raise ValueError(f"--max-seeds {args.max_seeds}: must be at least 3 (the fewest seeds a claim needs)")
    for flag, value in (("--margin", args.margin), ("--ia-margin", args.ia_margin)):
        if value is not None and not value > 0:
            raise ValueError(f"{flag} {value:g}: must be a positive number")
    try:
        rounds, summary = run_until_decided(args.name, args.overrides, args.max_seeds, args.force, args.sweeps_dir,
                                            args.margin, args.ia_margin, echo=lambda line: print(line, flush=True),
                                            yes=args.yes, ask=terminal_question(), verbose=args.verbose)
        print(summary.table())
    except RoundFailed as failed:
        print(failed.summary.table())
        print(f"recsys-scaling sweep: {failed}", file=sys.stderr)
        return 1
    print(closing_line(rounds, args.max_seeds))
    report = build_report([summary.sweep], summary.store_uri, summary.experiment)
    _print_report(report, [summary.sweep])
    return 0


def cmd_sweeps(sweeps_dirs: List[Path]) -> int:
    from ..paths import list_sweeps

    found = list_sweeps(sweeps_dirs)
    width = max((len(s.name) for s in found), default=4)
    for sweep in found:
        print(f"{sweep.name:<{width}}  {sweep.origin:<9}  {sweep.path}")
    if not any(not s.builtin for s in found):
        print("(no sweeps of your own: put YAML files in ./sweeps/ or pass --sweeps-dir)")
    return 0


def cmd_budget(args: argparse.Namespace) -> int:
    from ..paths import find_sweep
    from ..sweep import grid
    from ..sweep.budget_table import LEGEND, budget_table, format_table, iso_budget_lines
    from ..sweep.estimate import estimate_sweep

    words = args.overrides
    spec = find_sweep(words[0], args.sweeps_dir) if words and "=" not in words[0] else None
    jobs = grid.expand(spec, words[1:] if spec else words)
    trained, plans, base = grid.split_shared_base(jobs, grid.validate(jobs))
    with calibration_progress() as on_shape:
        estimate = estimate_sweep(trained, plans, calibrate=not args.no_calibrate, on_shape=on_shape)
    table = budget_table(trained, plans, estimate, prepare=" ".join(shlex.quote(w) for w in words))
    print(format_table(table))
    lines = iso_budget_lines(table)
    if lines:
        print(lines)
    if base:
        print(f"({len(base)} ME jobs with one set are the SE base: the sweep trains them once, as SE)")
    print(LEGEND)
    print(estimate.footer())
    if estimate.memory_note():
        print(f"note: {estimate.memory_note()}")
    if args.csv is not None:
        table.to_csv(args.csv, index=False)
    return 0


class calibration_progress:
    """A bar on stderr while the calibration times each distinct model shape (on a terminal)."""

    def __enter__(self):
        self.bar = None
        return self.update

    def update(self, done: int, total: int) -> None:
        if self.bar is None and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="calibrating model shapes", unit="shape", leave=False)
        if self.bar is not None:
            self.bar.n = done
            self.bar.refresh()

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def cmd_tune(args: argparse.Namespace) -> int:
    from ..tune import tune_sweep

    path = tune_sweep(args.name, args.overrides, args.trials, args.storage, args.pruner, args.tune_dropout,
                      args.timeout, sweeps_dirs=args.sweeps_dir, seed=args.seed)
    if path is None:
        print("recsys-scaling tune: error: no trial completed in any study (their runs say why); nothing written",
              file=sys.stderr)
        return 1
    print(f"tuned parameters: {path.resolve()}  (use them with train.tuned={path.stem})")
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    """Copy experiments between stores; exit 1 when the counts of the two sides differ."""
    from ..tracking import check_source, check_store
    from ..tracking.copy import copy_store
    from ..tracking.reach import check_distinct

    check_distinct(args.source, args.dest)
    source = check_source(args.source)  # before the destination is opened (opening a sqlite one creates it)
    dest = args.dest if args.dest.startswith(("http://", "https://")) else check_store(args.dest)
    results = copy_store(source, dest, args.experiment, progress=sys.stderr.isatty())
    for result in results:
        print(result.table())
    bad = [r.experiment for r in results if not r.matches]
    if bad:
        print(f"store copy: the copy's counts differ from the source in {', '.join(bad)}; run the same command "
              "again (complete copies are kept, half-copied runs are redone)", file=sys.stderr)
        return 1
    print(f"store copy: {sum(r.copied for r in results)} runs copied into {args.dest}; the counts match")
    return 0


def cmd_data(action: str, words: List[str], sweeps_dir: Sequence[Path] = ()) -> int:
    """`data prepare|info` of one dataset given by overrides, or of every dataset a sweep's grid uses
    (`data prepare clicks`: the sweep file names the data)."""
    from hydra.errors import HydraException

    from ..config import explain
    from ..data import describe, load_dataset, open_prepared
    from ..paths import find_sweep
    from ..sweep import grid
    from ..validate import check_data_source, check_required

    spec = find_sweep(words[0], sweeps_dir) if words and "=" not in words[0] else None
    try:
        if spec is None:
            configs = [grid.Composer(None)(words)]
        else:
            configs = [job.shared for job in grid.distinct_models(grid.expand(spec, words[1:]))]
    except HydraException as exc:
        raise ValueError(explain(exc)) from None
    datasets = {str(cfg.data): cfg for cfg in configs}  # jobs of one sweep mostly share their data
    for cfg in datasets.values():
        check_required(cfg)
        check_data_source(cfg.data)
        data = load_dataset(cfg.data, progress=True) if action == "prepare" else open_prepared(cfg.data)
        print(describe(data))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import ClaimOptions, build_report
    from ..tracking import check_filter

    if not args.sweeps and not args.parent_run_id:
        raise ValueError("name a sweep (or give --parent-run-id)")
    check_filter(args.filter)
    options = ClaimOptions(pairing=args.pairing, family=args.family, correction=args.correction, margin=args.margin,
                           ia_margin=args.ia_margin, sequential=args.sequential, max_seeds=args.max_seeds,
                           compare=tuple(args.compare), metric=args.metric)
    report = build_report(args.sweeps, args.tracking_uri, args.experiment, args.out, args.parent_run_id,
                          x_axis=args.x, resamples=args.resamples, ui_url=args.ui_url, filter_string=args.filter,
                          options=options)
    _print_report(report, args.sweeps)
    return 0


def _print_report(report, sweeps: List[str]) -> None:
    from ..sweep.launch import Launch

    print(f"report of {'+'.join(sweeps) or 'parent runs'} ({report.num_runs} runs): {report.index.resolve()}")
    for line in report.notes:
        print(f"  note: {line}")
    for line in report.headlines or report.verdicts:  # the verdicts in full are on the report's page
        print(f"  {line}")
    for line in report.next_steps:
        print(f"  next: {line}")
    print(f"  plots: {report.plot.resolve().parent}  fits: {report.fits_json.resolve()}")
    ui = Launch(store=report.store_uri, experiment=report.experiment).ui_command()
    print(f"browse the runs: {ui}   then open {report.experiment_url}")


