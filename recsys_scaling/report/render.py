"""A self-contained HTML page for a report: plots inlined, tables, verdicts, run links."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import List, Optional

import pandas as pd

STYLE = """body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222;line-height:1.4}
table.t{border-collapse:collapse;font-size:12px;margin:.5em 0 1.5em} .t td,.t th{padding:3px 7px;border-bottom:1px solid #ddd;text-align:right}
code{background:#f3f3f3;padding:1px 4px} li{margin:.3em 0} img{max-width:100%}"""


def _table(frame: pd.DataFrame, escape: bool = True) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.5g}", na_rep="–", border=0, classes="t",
                         escape=escape)


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def _run_links(runs: pd.DataFrame, ui_url: str) -> pd.DataFrame:
    shown = runs.drop(columns=["error"]).copy()
    shown["run_name"] = [
        f'<a href="{ui_url}/#/experiments/{html.escape(str(e))}/runs/{html.escape(r)}">{html.escape(str(n))}</a>'
        for e, r, n in zip(runs["experiment_id"], runs["run_id"], runs["run_name"])]
    return shown.drop(columns=["experiment_id"])


def write_index(out_dir: Path, title: str, parents: List[str], tracking_uri: str, ui_url: str,
                verdicts: List[str], plots: List[Path], fits: pd.DataFrame, gaps: pd.DataFrame,
                multipliers: pd.DataFrame, summary: pd.DataFrame, runs: pd.DataFrame,
                missing: List[str], paper: Optional[pd.DataFrame], x_label: str) -> Path:
    not_finished = runs[runs["status"] != "FINISHED"]
    sections = [
        f"<h1>Scaling report: {html.escape(title)}</h1>",
        f"<p>Parent run(s) <code>{html.escape(', '.join(parents))}</code> in <code>{html.escape(tracking_uri)}</code>; "
        f"{len(runs)} runs, {int((runs['status'] == 'FINISHED').sum())} finished. x axis: {html.escape(x_label)}. "
        f"Browse: <code>mlflow ui --backend-store-uri {html.escape(tracking_uri)}</code>.</p>",
        "<h2>Verdicts</h2><ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in verdicts) + "</ul>",
        "<p>Fits: 1 − AUC(N) = E + A·(N/N₀)^(−α), NNLS over an α grid; intervals are 95% bootstrap over "
        "seeds within each size. Flagged curves are drawn dotted and not trusted.</p>",
        *[_image(p) for p in plots],
        "<h2>Fitted parameters</h2>", _table(fits),
        "<h2>ME − SE test AUC gap</h2>", _table(gaps) if len(gaps) else "<p>No scale with both arms.</p>",
        "<h2>Effective-size multiplier</h2><p>SE parameters needed (on SE's fitted curve) to reach ME's AUC, "
        "over ME's parameters.</p>",
        _table(multipliers) if len(multipliers) else "<p>SE curve not identified: no multiplier.</p>",
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
    page = (f'<!doctype html><html><head><meta charset="utf-8"><title>recsys-scaling: {html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")
    path = out_dir / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path
