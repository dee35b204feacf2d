"""Report stage: MLflow runs -> pandas -> seed aggregation -> claims and fits -> plots ->
HTML / CSV / Parquet / JSON, all logged to the sweep's parent run."""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import pandas as pd

from .. import tracking
from ..config import resolve_tracking_uri
from . import looks
from .metrics import METRICS, X_AXES, X_LABELS, metric_named
from .analysis import (DEFAULT_IA_MARGIN, DEFAULT_MARGIN, analyse, arm_curves, claim_records, curve_runs, fit_rows,
                       look_levels)
from .claims import CORRECTIONS, FAMILIES, PAIRINGS
from .headlines import HEADLINE_WIDTH, clip, headline
from .compare import Comparison, parse_comparison
from .intervals import Levels
from .collect import (collect_runs, deleted_reuse_notes, distinct_runs, largest_scale_spectra, oracle_aucs,
                      seed_summary, split_series_by_data)
from .paper import compare_with_paper
from .plots import (auc_vs_params, backbone_fit, comparison_plot, ia_vs_scale, paper_comparison, small_multiples,
                    spectra)
from .frontier import frontier
from .frontier_plots import frontier_map
from ..sweep.launch import LAUNCH_FILE, Launch
from .law_section import data_section
from .render import comparison_section, frontier_section, next_steps, verdict_markdown, write_index



@dataclass
class Report:
    out_dir: Path
    index: Path
    plot: Path
    summary_csv: Path
    runs_csv: Path
    fits_json: Path
    parent_run_ids: List[str]
    store_uri: str
    experiment_url: str
    num_runs: int
    verdicts: List[str]
    next_steps: List[str]
    notes: List[str]
    experiment: str = tracking.DEFAULT_EXPERIMENT
    headlines: List[str] = field(default_factory=list)  # the verdicts, one short line each (the console's)


@dataclass(frozen=True)
class ClaimOptions:
    """How the claims are tested. None: as the sweep recorded it (its `report.*` margins; its
    adaptive seed plan, which makes the intervals sequential), else the defaults."""

    pairing: str = "welch"
    family: str = "backbone"
    correction: str = "holm"
    margin: Optional[float] = None
    ia_margin: Optional[float] = None
    sequential: Optional[bool] = None
    max_seeds: Optional[int] = None
    margin_note: str = ""
    compare: Tuple[str, ...] = ()  # "A:B" pairs of series, [SWEEP/]BACKBONE/ARM each
    metric: str = "auc"  # what the claims and fits read: auc, logloss or ne

    def comparisons(self) -> list:
        return [parse_comparison(text) for text in self.compare]

    def check(self) -> None:
        if self.pairing not in PAIRINGS:
            raise ValueError(f"--pairing {self.pairing!r}: choose from {PAIRINGS}")
        if self.family not in FAMILIES or self.correction not in CORRECTIONS:
            raise ValueError(f"--family {self.family!r} / --correction {self.correction!r}: choose from {FAMILIES} / "
                             f"{CORRECTIONS}")
        for flag, value in (("--margin", self.margin), ("--ia-margin", self.ia_margin)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{flag} {value:g}: must be a positive number, e.g. {flag} 0.0005")
        metric_named(self.metric)
        if self.max_seeds is not None and self.max_seeds < 3:
            raise ValueError(f"--max-seeds {self.max_seeds}: must be at least 3")
        self.comparisons()

    def resolved(self, recorded: Sequence[dict]) -> "ClaimOptions":
        """Fill what was left open from the sweeps' recorded settings (`Store.sweep_settings`)."""
        def agreed(key: str):
            values = {r[key] for r in recorded if r.get(key) is not None}
            if len(values) > 1:
                flag = "--margin" if key == "margin_note" else "--" + key.replace("_", "-")
                raise ValueError(f"the sweeps of this report recorded different {key} values ({sorted(values)}); "
                                 f"pass {flag} to pick one")
            return values.pop() if values else None

        # a sweep's recorded margins are in AUC units: another metric takes its own default
        recorded_margin = agreed("margin") if self.metric == "auc" else METRICS[self.metric].margin
        margin = self.margin if self.margin is not None else recorded_margin
        note = self.margin_note or (agreed("margin_note") if self.margin is None and self.metric == "auc" else "") or ""
        planned = max((r["max_seeds"] for r in recorded if r.get("max_seeds")), default=None)
        if planned is not None and self.max_seeds is not None and self.max_seeds < planned:
            raise ValueError(f"--max-seeds {self.max_seeds}: the sweep's adaptive seeds were planned up to {planned} "
                             "per cell, and intervals split over fewer looks would not hold; leave it out")
        sequential = self.sequential if self.sequential is not None else planned is not None
        max_seeds = self.max_seeds or planned
        if sequential and max_seeds is None:
            raise ValueError("sequential intervals need the planned largest seed count: pass --max-seeds N")
        return replace(self, margin=margin if margin is not None else DEFAULT_MARGIN,
                       ia_margin=self.ia_margin if self.ia_margin is not None else (agreed("ia_margin")
                                                                                     or DEFAULT_IA_MARGIN),
                       sequential=sequential, max_seeds=max_seeds, margin_note=note)

    def levels(self, runs: pd.DataFrame) -> Levels:
        """The level of this look at these runs (sequential: which look of the plan they are)."""
        return look_levels(runs, self.max_seeds) if self.sequential else Levels()

    def method(self, runs: pd.DataFrame) -> dict:
        """What fits.json and the page record about the tests."""
        levels = self.levels(runs)
        return {**asdict(self), "level": levels.confidence, "looks": levels.looks, "look": levels.look}


def build_report(sweeps: Sequence[str], tracking_uri: Optional[str] = None, experiment: str = "recsys-scaling",
                 out_root: Path = Path("reports"), parent_run_ids: Sequence[str] = (), x_axis: str = "total",
                 resamples: int = 1000, ui_url: Optional[str] = None, filter_string: str = "",
                 options: ClaimOptions = ClaimOptions()) -> Report:
    """Report the latest sweep of each name (or the given parent runs) into out_root/<name>/.
    Run links point at `ui_url` (default: the store's UI, see tracking.ui_base_url); each sweep's
    parent run gets the verdict table as its description."""
    if x_axis not in X_AXES:
        raise ValueError(f"--x {x_axis!r}: choose from {sorted(X_AXES)}")
    if resamples < 1:  # the same rule as advise's
        raise ValueError(f"--resamples {resamples}: must be at least 1")
    options.check()
    check_output_folder(Path(out_root))
    # Read only: a missing sqlite store is an error, not a new empty store.
    store = tracking.Store(tracking.check_source(resolve_tracking_uri(tracking_uri)), experiment)
    ui_url = ui_url or store.ui_url
    parents = list(parent_run_ids) or [store.latest_sweep_parent(s).info.run_id for s in sweeps]
    options = options.resolved([{**store.sweep_settings(p), "max_seeds": store.adaptive_plan(store.sweep_name(p))}
                                for p in parents])
    runs, missing = collect_runs(store, parents, filter_string)
    if runs.empty:
        raise LookupError(f"sweep(s) {', '.join(sweeps) or parents} have no job runs")
    runs, notes = split_series_by_data(distinct_runs(runs))
    notes = deleted_reuse_notes(store, parents) + notes
    notes += sweep_state_notes(store, parents, runs) + beyond_plan_notes(runs, options)
    look = options.levels(runs).look
    notes += looks.look_notes(store, sorted({store.sweep_name(p) for p in parents}), runs, options.sequential, look)
    writable = not tracking.read_only_store(store.uri)
    if not writable:
        notes.append(READ_ONLY_NOTE)
    name = "+".join(sweeps) if sweeps else parents[0]
    final_dir = Path(out_root) / name
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    # Built in a scratch folder and moved into place, so a failed report leaves the old one whole.
    work = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=final_dir.parent))
    try:
        report = _write(store, work, name, parents, runs, missing, x_axis, resamples, ui_url, options, notes)
        if writable:
            writable = _attach(store, parents, work, name, report["markdown"], final_dir / "index.html")
        if final_dir.exists():
            shutil.rmtree(final_dir)
        work.rename(final_dir)
        if writable:
            looks.record(store, parents, runs, options.sequential, look)
        else:
            notes = notes if READ_ONLY_NOTE in notes else [*notes, READ_ONLY_NOTE]
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Report(final_dir, final_dir / "index.html", final_dir / report["plot"], final_dir / "summary.csv",
                  final_dir / "runs.csv", final_dir / "fits.json", parents, store.uri, store.experiment_url(), len(runs), report["verdicts"],
                  report["next_steps"], notes, store.experiment, report["headlines"])


READ_ONLY_NOTE = ("the store is read-only: the report is complete here, but its verdicts were not written back to "
                  "the sweep's runs (nor this look recorded)")


def _attach(store: tracking.Store, parents: Sequence[str], work: Path, name: str, markdown: str, index: Path) -> bool:
    """The report as each parent run's artifacts and description; False (nothing raised) when the
    store or its artifact folder turns out to be read-only."""
    try:
        for parent in parents:
            store.log_artifacts_to(parent, work, "report")
            store.describe_run(parent, _parent_note(name, markdown, index))
    except Exception as exc:  # noqa: BLE001 - only a read-only store is forgiven
        if not tracking.is_read_only_error(exc):
            raise
        return False
    return True


def _write(store: tracking.Store, work: Path, name: str, parents: List[str], runs: pd.DataFrame, missing: List[str], x_axis: str,
           resamples: int, ui_url: str, options: ClaimOptions, notes: List[str]) -> dict:
    x_column, x_label = X_AXES[x_axis], X_LABELS[x_axis]
    analyses = analyse(runs, x_axis, resamples, pairing=options.pairing, family=options.family,
                       correction=options.correction, margin=options.margin,
                       ia_margin=options.ia_margin, sequential=options.sequential, max_seeds=options.max_seeds,
                       compare=options.comparisons(), metric=options.metric)
    compared = [a for a in analyses if isinstance(a, Comparison)]
    backbones = [a for a in analyses if not isinstance(a, Comparison)]
    shown = _display_runs(runs)
    summary, oracle = seed_summary(shown), oracle_aucs(runs)
    curves = curve_runs(runs, x_axis, options.metric)
    plots = [small_multiples(curves, backbones, x_column, x_label, work / "scaling_grid.png")]
    plots += [backbone_fit(curves, a, x_column, x_label, work / f"scaling_{_slug(a.label)}.png") for a in backbones]
    data = data_section(runs, options.metric, options.margin, work)
    compare_images = [comparison_plot(c, x_label, work / f"compare_{_slug(c.label)}.png") for c in compared]
    plots.append(auc_vs_params(summary, work / "auc_vs_params.png", f"{name}: test AUC vs model size",
                               oracle))
    plots.append(ia_vs_scale(summary, work / "ia_vs_scale.png", f"{name}: embedding collapse (IA)"))
    plots.append(spectra(largest_scale_spectra(store, shown), work / "spectra.png",
                         f"{name}: embedding spectra at the largest scale (flatter = less collapse)"))
    paper = _paper_comparison(runs, summary)
    if paper is not None and len(paper):
        plots.append(paper_comparison(paper, work / "paper_comparison.png", str(runs["dataset"].iloc[0])))
        paper.to_csv(work / "paper_comparison.csv", index=False)
    fronts = frontier(runs, "embedding", resamples)  # iso-budget lines: equal K·d, exactly
    front_images = [frontier_map(f, work / f"frontier_{_slug(f.series + '_' + f.backbone)}.png") for f in fronts]
    claims = claim_records(analyses)
    multipliers = pd.DataFrame([{"backbone": a.label, **m} for a in backbones for m in a.effective_multiplier])
    verdicts = [a.verdict for a in analyses]
    headlines = [headline(a.label, a.lead_claims()) if a.claims else a.verdict[:HEADLINE_WIDTH] for a in analyses]
    headlines += [clip(sentence) for sentence in data["sentences"]]
    summary.to_csv(work / "summary.csv", index=False)
    pd.DataFrame(claims).to_csv(work / "claims.csv", index=False)
    runs.to_csv(work / "runs.csv", index=False)
    runs.to_parquet(work / "runs.parquet", index=False)
    method = options.method(runs)
    launches = {store.sweep_name(p): Launch.of(store.run_json(p, LAUNCH_FILE) or {"store": store.uri,
                                                                                "experiment": store.experiment})
                for p in parents}
    seed_plan = options.max_seeds if options.sequential else None
    (work / "fits.json").write_text(json.dumps({
        "x_axis": x_axis, "parents": parents, "resamples": resamples, "missing_jobs": missing, "claims_method": method,
        "margin": options.margin, "ia_margin": options.ia_margin, "sequential": options.sequential,
        "max_seeds": options.max_seeds, "notes": notes, "time": {p: store.sweep_times(p) for p in parents},
        "claims": claims, "oracle": oracle,
        "backbones": [a.as_dict() for a in backbones], "comparisons": [c.as_dict() for c in compared],
        "frontier": [f.as_dict() for f in fronts], "metric": options.metric, "data_axis": data["json"]},
        indent=2, default=_json_value))
    write_index(work, name, parents, store.uri, ui_url, analyses, plots, fit_rows(backbones),
                pd.DataFrame(claims), multipliers, summary, runs, missing, paper, x_label, method, oracle, notes,
                [data["html"], comparison_section(compared, compare_images), frontier_section(fronts, front_images)],
                launches)
    return {"plot": plots[0].name, "verdicts": verdicts + data["sentences"], "headlines": headlines, "markdown": verdict_markdown(backbones),
            "next_steps": [step.console() for step in next_steps(analyses, name, seed_plan, launches)]}


def sweep_state_notes(store: tracking.Store, parents: Sequence[str], runs: pd.DataFrame) -> List[str]:
    """Say when a sweep is still running (the report is partial); refuse one with nothing finished."""
    notes = []
    for parent in parents:
        if store.run_status(parent) == "RUNNING":
            notes.append(f"sweep {store.sweep_name(parent)} is still running: this report is partial; report again "
                         "when it ends")
    if not (runs["status"] == "FINISHED").any():
        counts = runs["status"].value_counts()
        errors = [e for e in runs["error"].fillna("") if e]
        raise LookupError(f"nothing to report: none of the {len(runs)} job runs finished "
                          f"({', '.join(f'{n} {s}' for s, n in counts.items())})"
                          + (f"; first error: {errors[0][:200]}" if errors else ""))
    return notes


def beyond_plan_notes(runs: pd.DataFrame, options: ClaimOptions) -> List[str]:
    """Cells with more seeds than the adaptive plan: looks there are outside its 5% (seeds added by
    hand after an adaptive sweep)."""
    if not options.sequential or not options.max_seeds:
        return []
    done = runs[runs["status"] == "FINISHED"]
    most = int(done.groupby(["series", "backbone", "arm", "scale"])["seed"].nunique().max()) if len(done) else 0
    if most <= options.max_seeds:
        return []
    return [f"some cells have {most} seeds, more than the {options.max_seeds} the sequential intervals were planned "
            "for: the looks beyond the plan are not covered by its 5% bound"]


def check_output_folder(out_root: Path) -> None:
    """--out is a folder that exists or can be made, and can be written."""
    existing = next(p for p in (out_root.absolute(), *out_root.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--out {out_root}: {existing} is a file; give a folder for the reports")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out_root}: {existing} cannot be written (read-only or no permission)")


def _parent_note(name: str, table: str, index: Path) -> str:
    return (f"**Report `{name}`**: {index.resolve()} (also in this run's artifacts, `report/index.html`).\n\n"
            f"{table}\n\nIntervals and methods: see the report.")


def _display_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs for the overview tables and plots: the ME curve gets the SE base as its 1x point,
    and with several sweeps each backbone is labelled with its sweep (never pooled)."""
    parts = []
    several = runs["series"].nunique() > 1
    for (series, backbone), part in runs.groupby(["series", "backbone"], sort=True, dropna=False):
        done = part[part["status"] == "FINISHED"]
        curves = arm_curves(done) if len(done) else {}
        merged = pd.concat([*curves.values(), part[part["status"] != "FINISHED"]]) if curves else part
        parts.append(merged.assign(backbone=f"{series} / {backbone}" if several else backbone))
    return pd.concat(parts, ignore_index=True) if parts else runs


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)


def _paper_comparison(runs: pd.DataFrame, summary: pd.DataFrame) -> Optional[pd.DataFrame]:
    datasets = set(runs["dataset"].dropna())
    if len(datasets) != 1 or not datasets & {"criteo", "avazu"}:
        return None
    return compare_with_paper(summary, datasets.pop())


def _json_value(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
