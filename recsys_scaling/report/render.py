"""A self-contained HTML page for a sweep's report."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import List

import pandas as pd


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.5g}", na_rep="–", border=0, classes="t")


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}" style="max-width:100%">'


def write_index(out_dir: Path, sweep: str, parent_run_id: str, plots: List[Path],
                summary: pd.DataFrame, runs: pd.DataFrame, tracking_uri: str) -> Path:
    images = "\n".join(_image(p) for p in plots)
    failed = runs[runs["status"] != "FINISHED"]
    failed_html = (f"<h2>Jobs not finished ({len(failed)})</h2>"
                   + _table(failed[["run_name", "status", "error"]]) if len(failed) else "")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>recsys-scaling report: {html.escape(sweep)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table.t{{border-collapse:collapse;font-size:13px}} .t td,.t th{{padding:3px 8px;border-bottom:1px solid #ddd}}
code{{background:#f3f3f3;padding:1px 4px}}</style></head><body>
<h1>Scaling report: {html.escape(sweep)}</h1>
<p>Parent MLflow run <code>{html.escape(parent_run_id)}</code> in <code>{html.escape(tracking_uri)}</code>.
{len(runs)} jobs, {int((runs['status'] == 'FINISHED').sum())} finished.</p>
{images}
<p>IA = information abundance (sum of singular values / largest) of each field's embedding table,
all K sets concatenated, averaged over fields; higher means less collapse.</p>
<h2>Mean and std over seeds</h2>{_table(summary)}
{failed_html}
<h2>All runs</h2>{_table(runs.drop(columns=["error"]))}
</body></html>
"""
    path = out_dir / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path
