"""A self-contained HTML page for a report: verdict table first, then plots, claims, fits,
tables and run links. Plots are inlined, numbers rounded, wide tables scroll inside the page."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import List, Optional

import pandas as pd

from ..tracking import run_url
from .analysis import fit_note
from .claims import INSUFFICIENT, MIN_SEEDS, claim_text
from .plots import short_count

STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:1.5em auto;padding:0 1em;color:#222;line-height:1.4}
.scroll{overflow-x:auto} table.t{border-collapse:collapse;font-size:12px;margin:.5em 0 1.5em}
.t td,.t th{padding:3px 7px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
table.v{border-collapse:collapse;margin:.5em 0 1em;font-size:14px} .v td,.v th{padding:6px 10px;border-bottom:1px solid #ccc;text-align:left}
.v td.me_ahead,.v td.improving{color:#0a6e2d;font-weight:600} .v td.me_behind,.v td.worsening{color:#a4161a;font-weight:600}
.v td.insufficient_seeds{color:#8a6d00} .note{color:#555;font-size:13px}
code{background:#f3f3f3;padding:1px 4px} li{margin:.3em 0} img{max-width:100%}"""


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
            shown[column] = shown[column].map(_number)
    return ('<div class="scroll">' + shown.to_html(index=False, na_rep="–", border=0, classes="t", escape=escape)
            + "</div>")


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def _run_url(ui_url: str, experiment_id, run_id: str) -> str:
    return html.escape(run_url(ui_url, str(experiment_id), run_id))


def _run_links(runs: pd.DataFrame, ui_url: str) -> pd.DataFrame:
    shown = runs.drop(columns=[c for c in ("error", "start_time", "fingerprint") if c in runs]).copy()
    shown["run_name"] = [f'<a href="{_run_url(ui_url, e, r)}">{html.escape(str(n))}</a>'
                         for e, r, n in zip(runs["experiment_id"], runs["run_id"], runs["run_name"])]
    return shown.drop(columns=["experiment_id", "run_id"])


SHORT = {"me_ahead": "ME ahead", "me_behind": "ME behind", "no_difference": "no difference", "improving": "improving",
         "worsening": "worsening", "flat": "flat", INSUFFICIENT: "insufficient seeds"}
SHORT_IA = {"me_ahead": "ME less collapsed", "me_behind": "ME more collapsed"}


def _cell_text(claim) -> str:
    if claim is None:
        return "–"
    words = (SHORT_IA if claim.kind == "ia_gap" else {}).get(claim.verdict, SHORT[claim.verdict])
    value = "" if claim.low is None else (f" {claim.estimate:+.2f}" if claim.kind == "ia_gap"
                                          else f" {claim.estimate:+.4f}")
    return words + value


def _cell(claim) -> str:
    if claim is None:
        return "<td>–</td>"
    return f'<td class="{claim.verdict}" title="{html.escape(claim_text(claim))}">{_cell_text(claim)}</td>'


def verdict_table(analyses) -> str:
    """backbone | ME vs SE at the largest scale | ME trend | SE trend | large-field IA | fit trusted?"""
    rows = []
    for a in analyses:
        gap = a.gaps[-1] if a.gaps else None
        ia = a.ia_gaps[-1] if a.ia_gaps else None
        rows.append(f"<tr><th>{html.escape(a.label)}</th>{_cell(gap)}{_cell(a.trend('me'))}{_cell(a.trend('se'))}"
                    f"{_cell(ia)}<td>{html.escape(fit_note(a))}</td></tr>")
    header = ("<tr><th>backbone</th><th>ME − SE test AUC<br>at the largest scale</th><th>ME: AUC per doubling</th>"
              "<th>SE: AUC per doubling</th><th>ME − SE IA of the large<br>fields (collapse)</th>"
              "<th>power-law fit</th></tr>")
    return f'<div class="scroll"><table class="v">{header}{"".join(rows)}</table></div>'


VERDICT_COLUMNS = ("backbone", "ME − SE test AUC at the largest scale", "ME: AUC per doubling",
                   "SE: AUC per doubling", "ME − SE IA of the large fields", "power-law fit")


def verdict_markdown(analyses) -> str:
    """The verdict table as markdown (for the sweep's parent run description in MLflow)."""
    lines = ["| " + " | ".join(VERDICT_COLUMNS) + " |", "|" + "---|" * len(VERDICT_COLUMNS)]
    for a in analyses:
        cells = [a.label, _cell_text(a.gaps[-1] if a.gaps else None), _cell_text(a.trend("me")),
                 _cell_text(a.trend("se")), _cell_text(a.ia_gaps[-1] if a.ia_gaps else None), fit_note(a)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def _method_note(method: dict) -> str:
    pairing = ("paired t on the per-seed differences (both arms ran the same seeds)" if method["pairing"] == "seed"
               else "Welch's t (unequal variances)")
    holm = (" Verdicts follow Holm-adjusted p-values across every claim of this report; intervals are per claim."
            if method["holm"] else "")
    return (f"<p class=note>ME − SE gap: {pairing}, 95% interval. Trend: least squares of the per-seed test AUC on "
            f"log2(size), 95% t interval. A claim needs at least {MIN_SEEDS} finished seeds per arm (per size for a "
            f"trend); with fewer it is <em>insufficient seeds</em>, with no interval. The ME curve starts from the SE "
            f"base at 1x (ME with one set is that model).{holm} Hover a cell for its interval.</p>")


def write_index(out_dir: Path, title: str, parents: List[str], tracking_uri: str, ui_url: str, analyses,
                plots: List[Path], fits: pd.DataFrame, claims: pd.DataFrame, multipliers: pd.DataFrame,
                summary: pd.DataFrame, runs: pd.DataFrame, missing: List[str], paper: Optional[pd.DataFrame],
                x_label: str, method: dict, oracle: dict) -> Path:
    not_finished = runs[runs["status"] != "FINISHED"]
    sections = [
        f"<h1>Scaling report: {html.escape(title)}</h1>",
        verdict_table(analyses),
        _method_note(method),
        "<h2>Verdicts</h2><ul>" + "".join(f"<li>{html.escape(a.verdict)}</li>" for a in analyses) + "</ul>",
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
        "<p class=note>Fits: 1 − AUC(N) = E + A·(N/N₀)^(−α), NNLS over an α grid, bands from a seed bootstrap. "
        "α is fitted from 4 sizes on; untrusted fits are dotted, without band or extrapolation.</p>",
        *[_image(p) for p in plots],
        "<h2>Claims</h2>", _table(claims.drop(columns=[c for c in ("df",) if c in claims])) if len(claims)
        else "<p>No claims.</p>",
        "<h2>Fitted parameters</h2>", _table(fits),
        "<h2>Effective-size multiplier</h2><p class=note>SE parameters needed (on SE's trusted fit) to reach ME's "
        "AUC, over ME's parameters, with a seed-bootstrap interval; <em>extrapolated</em> when that size lies beyond "
        "the largest SE model measured; <em>reached = False</em>: SE's fitted floor is above ME's AUC.</p>",
        _table(multipliers) if len(multipliers) else "<p>No trusted SE fit: no multiplier.</p>",
    ]
    if paper is not None and len(paper):
        sections += ["<h2>Against the paper (Guo et al., ICML 2024, Table 1)</h2>", _table(paper)]
    if len(not_finished) or missing:
        sections.append(f"<h2>Jobs not finished ({len(not_finished) + len(missing)})</h2>")
        if len(not_finished):
            sections.append(_table(not_finished[["run_name", "status", "error"]]))
        if missing:
            sections.append("<p>Never recorded: " + ", ".join(html.escape(m) for m in missing) + "</p>")
    sections += ["<h2>Mean and std over seeds</h2>", _table(summary),
                 "<h2>All runs</h2>", _table(_run_links(runs, ui_url), escape=False)]
    page = (f'<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>recsys-scaling: {html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")
    path = out_dir / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path
