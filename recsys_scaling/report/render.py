"""A self-contained HTML page for a report: verdict table first, then plots, claims, fits,
tables and run links. Plots are inlined, numbers rounded, wide tables scroll inside the page."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import List, NamedTuple, Optional

import pandas as pd

from ..tracking import run_url
from .analysis import fit_note
from .compare import Comparison
from .claims import INSUFFICIENT, PEAKED, PRACTICAL_SEEDS, SUBJECT, UNDECIDED, claim_text, seeds_text
from .intervals import MIN_SEEDS
from ..sweep.launch import Launch
from .metrics import METRICS
from .plots import short_count

STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:1.5em auto;padding:0 1em;color:#222;line-height:1.4}
.scroll{overflow-x:auto} table.t{border-collapse:collapse;font-size:12px;margin:.5em 0 1.5em}
.t td,.t th{padding:3px 7px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
table.v{border-collapse:collapse;margin:.5em 0 1em;font-size:14px} .v td,.v th{padding:6px 10px;border-bottom:1px solid #ccc;text-align:left}
.v td.me_ahead,.v td.improving,.v td.me_scales_better{color:#0a6e2d;font-weight:600}
.v td.me_behind,.v td.worsening,.v td.se_scales_better{color:#a4161a;font-weight:600}
.v td.equivalent,.v td.saturated,.v td.same_scaling,.v td.peaked{color:#1d4e89;font-weight:600}
.v td.insufficient_seeds,.v td.undecided{color:#8a6d00} .note{color:#555;font-size:13px}
code{background:#f3f3f3;padding:1px 4px} .warn{background:#fff4d6;border-left:4px solid #c98a00;padding:6px 10px} li{margin:.3em 0} img{max-width:100%}"""


def _number(value) -> str:
    if isinstance(value, float):
        if value != value:
            return "–"
        if abs(value) >= 1e4:
            return short_count(value)
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _table(frame: pd.DataFrame, escape: bool = True) -> str:
    shown = frame.copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            values = shown[column].dropna()
            whole = len(values) and bool((values == values.round()).all()) and bool((values.abs() < 1e4).all())
            shown[column] = shown[column].map(lambda v: "–" if v != v else str(int(v))) if whole \
                else shown[column].map(_number)
    return ('<div class="scroll">' + shown.to_html(index=False, na_rep="–", border=0, classes="t", escape=escape)
            + "</div>")


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def _run_url(ui_url: str, experiment_id, run_id: str) -> str:
    return html.escape(run_url(ui_url, str(experiment_id), run_id))


# The page's runs table: who the run is, what it scored, what it cost; runs.csv has every column.
RUN_COLUMNS = ("run_name", "status", "series", "backbone", "arm", "scale", "num_embeddings", "embed_dim", "seed",
               "data_fingerprint", "train_fraction", "test_auc", "test_logloss", "test_ne", "best_epoch", "epochs_run",
               "params_total", "flops_per_example", "ia_mean_large", "train_seconds")
RUN_HEADERS = {"num_embeddings": "K", "embed_dim": "d", "data_fingerprint": "data", "params_total": "params",
               "flops_per_example": "FLOPs/ex", "ia_mean_large": "IA large", "train_fraction": "data fraction",
               "train_seconds": "seconds"}


def _run_links(runs: pd.DataFrame, ui_url: str) -> pd.DataFrame:
    """The runs as HTML cells: the name links to its MLflow run, a fingerprint shows its first 8
    characters (all of it on hover), every other text is escaped."""
    shown = runs[[c for c in RUN_COLUMNS if c in runs]].copy()
    if "train_fraction" in shown and shown["train_fraction"].nunique(dropna=False) <= 1:
        shown = shown.drop(columns="train_fraction")
    for column in shown.columns:
        if shown[column].dtype.kind == "O":
            shown[column] = shown[column].map(lambda v: "–" if v is None or v != v else html.escape(str(v)))
    if "data_fingerprint" in shown:
        shown["data_fingerprint"] = [f'<span title="{f}">{f[:8]}</span>' if len(f) > 8 else f
                                     for f in shown["data_fingerprint"]]
    shown["run_name"] = [f'<a href="{_run_url(ui_url, e, r)}">{html.escape(str(n))}</a>'
                         for e, r, n in zip(runs["experiment_id"], runs["run_id"], runs["run_name"])]
    return shown.rename(columns=RUN_HEADERS)


SHORT = {"me_ahead": "ME ahead", "me_behind": "ME behind", "equivalent": "equivalent", "improving": "improving",
         "worsening": "worsening", "saturated": "saturated", "me_scales_better": "ME scales better",
         "se_scales_better": "SE scales better", "same_scaling": "same scaling", UNDECIDED: "undecided",
         INSUFFICIENT: "insufficient seeds", PEAKED: "peaked", "a_ahead": "first ahead", "a_behind": "first behind",
         "a_scales_better": "first scales better", "b_scales_better": "second scales better"}
SHORT_IA = {"me_ahead": "ME less collapsed", "me_behind": "ME more collapsed"}


def _cell_text(claim) -> str:
    if claim is None:
        return "–"
    words = (SHORT_IA if claim.kind == "ia_gap" else {}).get(claim.verdict, SHORT[claim.verdict])
    if claim.directional and claim.within_margin:
        words += " (< margin)"
    if claim.verdict == PEAKED:
        words += f" near {claim.peak:.3g}"
    value = "" if claim.low is None else (f" {claim.estimate:+.2f}" if claim.kind == "ia_gap"
                                          else f" {claim.estimate:+.4f}")
    if not claim.decided and claim.seeds_needed is not None:
        value += f" · {seeds_text(claim.seeds_needed).replace(' per cell', '')} needed"
    return words + value


def _cell(claim) -> str:
    if claim is None:
        return "<td>–</td>"
    return f'<td class="{claim.verdict}" title="{html.escape(claim_text(claim))}">{_cell_text(claim)}</td>'


def _row_claims(a) -> list:
    return [a.gaps[-1] if a.gaps else None, a.scaling_gap, a.trend("se", top=True), a.trend("me", top=True),
            a.ia_gaps[-1] if a.ia_gaps else None]


def verdict_table(analyses) -> str:
    """backbone | ME − SE at the largest scale | ME vs SE scaling rate | SE at the top | ME at the top |
    large-field IA | fit"""
    rows = [f"<tr><th>{html.escape(a.label)}</th>{''.join(_cell(c) for c in _row_claims(a))}"
            f"<td>{html.escape(fit_note(a))}</td></tr>" for a in analyses if not isinstance(a, Comparison)]
    unit = next((a.claims[0].metric for a in analyses if a.claims), "AUC")
    header = (f"<tr><th>backbone</th><th>ME − SE test {unit}<br>at the largest scale</th><th>ME vs SE scaling rate<br>"
              f"({unit} per doubling)</th><th>SE at the top<br>(two largest sizes)</th><th>ME at the top<br>(two largest "
              f"sizes)</th><th>ME − SE IA of the large<br>fields (collapse)</th><th>fit (form, trusted?)</th></tr>")
    return f'<div class="scroll"><table class="v">{header}{"".join(rows)}</table></div>'


VERDICT_COLUMNS = ("backbone", "ME − SE at the largest scale", "ME vs SE scaling rate", "SE at the top",
                   "ME at the top", "large-field IA", "fit")


def verdict_markdown(analyses) -> str:
    """The verdict table as markdown (for the sweep's parent run description in MLflow)."""
    lines = ["| " + " | ".join(VERDICT_COLUMNS) + " |", "|" + "---|" * len(VERDICT_COLUMNS)]
    for a in analyses:
        cells = [a.label, *(_cell_text(c) for c in _row_claims(a)), fit_note(a)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


DEFAULT_MARGIN_NOTE = "the default: differences smaller than this do not matter in practice"


FAMILY_WORDS = {
    ("backbone", "holm"): "Verdicts are decided together per backbone (Holm's step-down over that backbone's claims), "
                          "so the chance that a backbone's row shows <em>any</em> false claim — a false direction or "
                          "a false equivalence — stays ≤ 5%.",
    ("report", "holm"): "Verdicts are decided together over every claim of this report (Holm's step-down), so the "
                        "chance that the report shows <em>any</em> false claim stays ≤ 5%.",
    ("report", "bh"): "Verdicts follow Benjamini–Hochberg over every claim of this report: on average at most 5% of "
                      "the claims made are false (a weaker promise than \"no false claim\").",
    ("backbone", "bh"): "Verdicts follow Benjamini–Hochberg per backbone: on average at most 5% of a backbone's "
                        "claims made are false.",
}


def family_sentence(method: dict) -> str:
    """What the verdicts' error rate is controlled over, in one exact sentence."""
    if method.get("family", "backbone") == "claim":
        return ("Each claim is read alone at 5%: with about nine claims per backbone, some false claim somewhere is "
                "far likelier than 5%.")
    return FAMILY_WORDS[(method.get("family", "backbone"), method.get("correction", "holm"))]


def _method_note(method: dict) -> str:
    pairing = ("paired t on the per-seed differences (both arms ran the same seeds)" if method["pairing"] == "seed"
               else "Welch's t (unequal variances)")
    level = f"{100 * method['level']:.4g}%"
    sequential = (f" <strong>Sequential intervals</strong>: seeds were added in rounds until claims were decided, "
                  f"so α = 5% is spread over the {method['looks']} planned looks (up to {method['max_seeds']} seeds per "
                  f"cell) by the spending function α·(k/K)²; these data are look {method.get('look', 1)}, tested at "
                  f"{100 * (1 - method['level']):.3g}%, so the family's guarantee holds over all the looks."
                  if method.get("sequential") else "")
    unit = METRICS[method.get("metric", "auc")].label
    return (f"<p class=note><strong>Margin</strong>: {method['margin']:g} {unit} ({method['ia_margin']:g} IA) — "
            f"{html.escape(method.get('margin_note') or DEFAULT_MARGIN_NOTE)}. "
            f"Verdicts: a direction (ME ahead / improving / ME scales better) when the test excludes 0; "
            "<em>equivalent</em> / <em>same scaling</em> when the difference is shown to be inside ±margin (two "
            "one-sided tests); <em>saturated</em> when the <em>total</em> change over the measured range (for "
            "<em>at the top</em>: the step between the two largest sizes) is shown to be inside ±margin; "
            "<em>peaked</em> when it is, but the fitted curve is best strictly inside the range; <em>undecided</em> "
            "when the data allow both a difference and none — the cell says how many seeds per cell would decide it "
            "(planned on each cell's 80% upper bound of its seed spread, at the family's level); "
            f"<em>insufficient seeds</em> with fewer than {MIN_SEEDS}. <strong>Family</strong>: "
            f"{family_sentence(method)} The intervals shown are each claim's own {level} intervals; the family p "
            f"beside them decides the verdict. ME − SE gap: {pairing}. Slopes: least squares through the per-size "
            "means on log2(size). Every contrast gives each cell its own seed variance, with Satterthwaite degrees "
            "of freedom shrunk for small cells (never below the fewest seeds − 1), which keeps 3-seed cells "
            "calibrated. <em>At the top</em>: the gain per doubling between the two largest sizes. The ME curve "
            f"starts from the SE base at 1x (ME with one set is that model).{sequential} Hover a cell for its "
            "interval.</p>")


def frontier_section(fronts, images: List[Path]) -> str:
    """Which (K sets x d width) for a budget: per backbone, its heat map and a table of its
    iso-budget lines with the measured decision."""
    if not fronts:
        return ""
    parts = ["<h2>Frontier: which shape (K sets × d width) for a budget</h2><p class=note>Each cell is a (K, d) shape; "
             "cells on one iso-budget line compete at equal budget: equal K·d on the embedding axis; on the total and "
             "FLOPs axes each cell's AUC is first moved to the line's budget along the backbone's fitted size slope "
             "(a bigger cell does not win for being bigger; the size spread is listed). The best-looking cell is a "
             "<em>clear winner</em> only when one-sided Welch tests at α/2 (it was picked by the same data), "
             "Holm-corrected, show it beats every other cell of its line; p_best is how often seed bootstraps rank it "
             "first (a description, not the rule). Right: the fitted surface's best K per budget, with its bootstrap "
             "range; <code>recsys-scaling advise SWEEP --budget 40d</code> answers for any budget.</p>"]
    for front, image in zip(fronts, images):
        rows = [{"budget": line["budget"], "verdict": line["verdict"].replace("_", " "),
                 "best": f"K={line['best']['K']} x d={line['best']['d']}", "best AUC": line["best"]["auc"],
                 "p_best": line["best"]["p_best"], "size spread": f"{line.get('size_spread', 0.0):.0%}",
                 "cannot be separated from": ", ".join(line["not_separated"]) or "–",
                 "cells": ", ".join(f"{c['K']}x{c['d']} ({c['auc']:.4f})" for c in line["candidates"])}
                for line in front.lines]
        surface = front.surface
        fitted = (f"fitted surface: {surface.form} ({html.escape(surface.equation)}), held-out error "
                  f"{surface.holdout_error:.4f} AUC on the largest budget's cells" if surface else
                  "too few cells for a fitted surface")
        parts += [f"<h3>{html.escape(front.series + ' / ' if front.series else '')}{html.escape(front.backbone)}</h3>",
                  _image(image), _table(pd.DataFrame(rows)), f"<p class=note>{fitted}</p>"]
    return "\n".join(parts)


def comparison_section(comparisons, images: List[Path]) -> str:
    """report --compare A:B: a row per comparison (the first series minus the second), its plot."""
    if not comparisons:
        return ""
    rows = [f"<tr><th>{html.escape(c.label)}</th>{_cell(c.scaling_gap)}{_cell(c.gaps[-1] if c.gaps else None)}"
            f"<td>{html.escape(c.note)}</td></tr>" for c in comparisons]
    header = ("<tr><th>first vs second</th><th>scaling rate, first − second<br>(AUC per doubling)</th>"
              "<th>test AUC, first − second<br>at the largest common scale</th><th>note</th></tr>")
    return ("<h2>Comparisons</h2><p class=note>Each series is one backbone and arm of one sweep; at each scale both "
            "ran, the embedding budgets match (SE d = s·d0, ME K = s sets of d0). The claims are tested as ME vs SE "
            "is, in a family of their own per comparison.</p>"
            f'<div class="scroll"><table class="v">{header}{"".join(rows)}</table></div>'
            + "".join(_image(p) for p in images))


def next_steps(analyses, sweep: str, seed_plan: Optional[int] = None, launches: Optional[dict] = None) -> List[tuple]:
    """(backbone label, what each undecided lead claim needs, command) per backbone with any:
    the seeds per cell that would decide each at the observed seed spread, and how to run
    enough for all of them (within the sweep's adaptive `seed_plan`, if it has one); past
    PRACTICAL_SEEDS, what else would decide the hardest of them, in numbers."""
    steps = []
    for a in analyses:
        needed = a.seeds_to_decide()
        if needed is None:
            continue
        open_claims = [c for c in a.lead_claims() if not c.decided and c.seeds_needed is not None]
        each = ", ".join(f"{SUBJECT[c.kind](c)} {seeds_text(c.seeds_needed).replace(' per cell', '')}"
                         for c in open_claims)
        hardest = max(open_claims, key=lambda c: c.seeds_needed)
        command = "   and   ".join(seed_command(s, needed, seed_plan, (launches or {}).get(s), hardest.alternatives)
                                   for s in (getattr(a, "sweeps", ()) or (a.series or sweep,)))
        steps.append(NextStep(a.label, f"seeds per cell that would decide — {each}", command, needed,
                              impractical_seeds(needed, seed_plan)))
    return steps


class NextStep(NamedTuple):
    label: str  # the backbone (or comparison)
    each: str  # the seeds each undecided lead claim needs
    command: str  # how to run enough for all of them, or what else would decide them
    seeds: int
    impractical: bool  # the command says what else would decide them

    def console(self) -> str:
        if self.impractical:
            return f"{self.label}: {self.command}"
        return f"{self.label}: {seeds_text(self.seeds)} would decide every open claim: {self.command}"


def _next_steps_html(analyses, sweep: str, seed_plan: Optional[int], launches: Optional[dict]) -> str:
    items = [f"<li>{html.escape(label)}: {html.escape(seeds)} — <code>{html.escape(command)}</code></li>"
             for label, seeds, command, *_ in next_steps(analyses, sweep, seed_plan, launches)]
    if not items:
        return ""
    return ("<h2>To decide what is undecided</h2><p class=note>At the observed seed spread, this many seeds per cell "
            "would make each interval narrow enough to decide (half-width ≤ margin/2):</p><ul>" + "".join(items)
            + "</ul>")


def seed_command(sweep: str, seeds: int, seed_plan: Optional[int] = None, launch=None,
                 alternatives: Optional[dict] = None) -> str:
    """The command that runs `seeds` seeds per cell of a sweep (or adds them adaptively), with the
    launch's overrides and store (`sweep/launch.py`), so it trains on the same data. A sweep with
    an adaptive plan continues within it; beyond it, only new seeds (a new series) keep the
    false-claim bound: the plan's 5% is spent on the seeds it has looked at. Past PRACTICAL_SEEDS
    the hardest claim's `alternatives` (claims.alternatives) are said instead."""
    launch = launch or Launch()
    if impractical_seeds(seeds, seed_plan):
        return impractical(sweep, seeds, launch, alternatives or {})
    if seed_plan is not None and seeds <= seed_plan:
        return launch.sweep_command(sweep, flags=["--until-decided", f"--max-seeds {seed_plan}"])
    if seed_plan is not None:
        return ("beyond this sweep's plan of " f"{seed_plan} seeds, a new series with new seeds: "
                + launch.sweep_command(sweep, extra=[f"tracking.experiment={sweep}-more", "seed=100,101,102"],
                                       flags=["--until-decided", f"--max-seeds {seeds}"]))
    return (launch.sweep_command(sweep, extra=[f"'seed=range(0,{seeds})'"]) + "   or   "
            + launch.sweep_command(sweep, flags=["--until-decided", f"--max-seeds {seeds}"]))


def impractical_seeds(seeds: int, seed_plan: Optional[int]) -> bool:
    """More seeds than PRACTICAL_SEEDS, and more than an adaptive plan would run anyway."""
    return seeds > PRACTICAL_SEEDS and (seed_plan is None or seeds > seed_plan)


def impractical(sweep: str, seeds: int, launch, alternatives: dict) -> str:
    """What would decide a claim that needs more than PRACTICAL_SEEDS seeds per cell, in numbers."""
    text = f"{seeds_text(seeds)} is no practical way to decide it"
    margin, factor, n = alternatives.get("margin"), alternatives.get("spread_factor"), alternatives.get("seeds")
    if margin is None:
        return (f"{text}: accept a larger margin ({launch.report_command(sweep)} --margin M), pair the arms by "
                "seed (--pairing seed), or train on more data or for more epochs")
    run = launch.sweep_command(sweep, extra=[f"'seed=range(0,{n})'"])
    ways = [f"choose a margin of {margin:.2g} or more before looking, then run {n} seeds per cell "
            f"({run}) and read them with "
            f"{launch.report_command(sweep)} --margin {margin:.2g}",
            f"at this margin, {n} seeds decide it only with a seed spread {factor:.1f}x smaller (more data or epochs)"]
    paired = alternatives.get("paired_seeds")
    if paired is not None:
        ways.append(f"read paired by seed ({launch.report_command(sweep)} --pairing seed), it needs "
                    f"{seeds_text(paired)}")
    return f"{text}. Instead: " + "; or ".join(ways)


def write_index(out_dir: Path, title: str, parents: List[str], tracking_uri: str, ui_url: str, analyses,
                plots: List[Path], fits: pd.DataFrame, claims: pd.DataFrame, multipliers: pd.DataFrame,
                summary: pd.DataFrame, runs: pd.DataFrame, missing: List[str], paper: Optional[pd.DataFrame],
                x_label: str, method: dict, oracle: dict, notes: List[str] = (), extra: List[str] = (),
                launches: Optional[dict] = None) -> Path:
    not_finished = runs[runs["status"] != "FINISHED"]
    sections = [
        f"<h1>Scaling report: {html.escape(title)}</h1>",
        "".join(f'<p class="warn">{html.escape(note)}</p>' for note in notes),
        verdict_table(analyses),
        _method_note(method),
        "<h2>Verdicts</h2><ul>" + "".join(f"<li>{html.escape(a.verdict)}</li>" for a in analyses) + "</ul>",
        _next_steps_html(analyses, title, method["max_seeds"] if method.get("sequential") else None, launches),
        f"<p class=note>{len(runs)} runs, {int((runs['status'] == 'FINISHED').sum())} finished; x axis: "
        f"{html.escape(x_label)}. Parent run(s) "
        + ", ".join(f'<a href="{_run_url(ui_url, runs["experiment_id"].iloc[0], p)}"><code>{html.escape(p)}</code></a>'
                    for p in parents)
        + f" in <code>{html.escape(tracking_uri)}</code>; browse with <code>recsys-scaling ui</code>.</p>",
    ]
    if oracle:
        sections.append("<p class=note>Synthetic teacher (test AUC): " + ", ".join(
            f"{html.escape(k.replace('oracle_', '').replace('_', ' '))} {v:.4f}" for k, v in oracle.items())
            + ". A width-w truncation of the teacher is the most a student of embedding width w could hold.</p>")
    sections += [
        "<p class=note>Fits: four forms of 1 − AUC against L = log2(N/N₀) — constant, log-linear, power law "
        "E + A·2^(−αL), peaked a + bL + cL² (improves, then declines) — each held out (the largest size; from 5 sizes "
        "each size in turn); the simplest form within noise of the best held-out error is chosen. Trusted: with 4 "
        "or more sizes the form is chosen and fitted again without the largest size, which it then predicts; the fit "
        "is trusted when the 90% interval of that miss lies inside ±margin (an equivalence test: noisy data are "
        "never trusted). With 3 sizes, or fewer than 3 seeds at a size, it is <em>not checkable</em>. "
        "Trusted fits are drawn with a parametric (t-based) band and extrapolated (dashed); others dotted, inside "
        "the measured range only.</p>",
        *[_image(p) for p in plots],
        "<h2>Claims</h2>", _table(claims.drop(columns=[c for c in ("df",) if c in claims])) if len(claims)
        else "<p>No claims.</p>",
        "<h2>Fitted parameters</h2>", _table(fits),
        "<h2>Effective-size multiplier</h2><p class=note>SE parameters needed (on SE's trusted fit, in its chosen "
        "form) to reach ME's AUC, over ME's parameters, with a parametric interval that chooses SE's form again in "
        "every draw (the choice of form is uncertain too); <em>extrapolated</em> when "
        "that size lies beyond the largest SE model measured; <em>reached = False</em>: SE's fitted curve never gets "
        "there (the note says why: a floor, or a curve that declines).</p>",
        _table(multipliers) if len(multipliers) else "<p>No trusted SE fit: no multiplier.</p>",
    ]
    if paper is not None and len(paper):
        sections += ["<h2>Against the paper (Guo et al., ICML 2024, Table 1)</h2>", _table(paper)]
    sections += list(extra)
    if len(not_finished) or missing:
        sections.append(f"<h2>Jobs not finished ({len(not_finished) + len(missing)})</h2>")
        if len(not_finished):
            sections.append(_table(not_finished[["run_name", "status", "error"]]))
        if missing:
            sections.append("<p>Never recorded: " + ", ".join(html.escape(m) for m in missing) + "</p>")
    sections += ["<h2>Mean and std over seeds</h2>", _table(summary),
                 "<h2>All runs</h2><p class=note>Every column of every run is in <code>runs.csv</code> "
                 "and <code>runs.parquet</code>.</p>", _table(_run_links(runs, ui_url), escape=False)]
    page = (f'<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>recsys-scaling: {html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")
    path = out_dir / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path
