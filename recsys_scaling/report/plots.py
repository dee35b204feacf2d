"""Scaling plots (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ARM_STYLE = {"se": {"linestyle": "--", "marker": "o"}, "me": {"linestyle": "-", "marker": "s"}}


def _arm_curves(ax, summary: pd.DataFrame, x: str, y: str, yerr: Optional[str]):
    """One error-bar line per (backbone, arm): a colour per backbone, a line style per arm.
    Returns the drawn curves (each sorted by x) for callers that annotate points."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    curves = []
    for i, (backbone, by_backbone) in enumerate(summary.groupby("backbone", sort=True)):
        for arm, curve in by_backbone.groupby("arm", sort=True):
            curve = curve.sort_values(x)
            ax.errorbar(curve[x], curve[y], yerr=curve[yerr] if yerr else None, color=colors[i % len(colors)], capsize=3,
                        label=f"{backbone} {arm.upper()}", **ARM_STYLE.get(arm, {}))
            curves.append(curve)
    return curves


ORACLE_LABELS = {"oracle_bayes_auc": "Bayes (true teacher)", "oracle_auc_width_10": "teacher, width 10",
                 "oracle_auc_width_20": "teacher, width 20", "oracle_auc_width_40": "teacher, width 40"}


def auc_vs_params(summary: pd.DataFrame, path: Path, title: str, oracle: Optional[dict] = None) -> Path:
    """Test AUC against total parameters (log x): a line per (backbone, arm), seed std as error
    bars; the synthetic teacher's oracle AUCs as horizontal reference lines (the headroom)."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for i, (column, value) in enumerate(sorted((oracle or {}).items(), key=lambda kv: kv[1])):
        ax.axhline(value, color="grey", lw=0.8, linestyle=(0, (1, 1 + i)))
        ax.annotate(ORACLE_LABELS.get(column, column), (0.01, value), xycoords=("axes fraction", "data"),
                    fontsize=7, color="dimgrey", va="bottom")
    for curve in _arm_curves(ax, summary, "params_total", "test_auc_mean", "test_auc_std"):
        for _, point in curve.iterrows():
            ax.annotate(f"{point['scale']}x", (point["params_total"], point["test_auc_mean"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7, alpha=0.7)
    if summary.empty:
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.set_xscale("log")
        log_size_ticks(ax.xaxis)
        ax.legend(fontsize=8)
    return _finish(fig, ax, "total parameters", "test AUC (mean ± std over seeds)", title, path)


def ia_vs_scale(summary: pd.DataFrame, path: Path, title: str) -> Path:
    """Information abundance against scale per backbone and arm: the large fields (>= 200 values,
    where collapse shows) and all fields (a small field's IA is capped by its cardinality)."""
    panels = [(c, t) for c, t in (("ia_mean_large", "large fields (≥ 200 values)"), ("ia_mean", "all fields"))
              if c in summary and summary[c].notna().any()]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6.2 * max(1, len(panels)), 4.5), squeeze=False)
    for ax, (column, panel_title) in zip(axes.flat, panels):
        measured = summary.dropna(subset=[column]).astype({"scale": float})
        std = f"{column}_std"
        _arm_curves(ax, measured, "scale", column, std if std in measured else None)
        if column == "ia_mean":
            reference = measured.groupby("scale")["ia_random_mean"].max().sort_index()
            ax.plot(reference.index.astype(float), reference.values, color="grey", lw=1, linestyle=":",
                    label="random matrix (largest shape)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(measured["scale"].unique()))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
        ax.legend(fontsize=7)
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("scale (SE: d = s·d0; ME: K = s sets of d0)")
        ax.set_ylabel("mean IA per field (sets concatenated)")
        ax.grid(True, which="both", alpha=0.3)
    if not panels:
        axes.flat[0].text(0.5, 0.5, "no IA measured", ha="center", va="center", transform=axes.flat[0].transAxes)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def _finish(fig, ax, xlabel: str, ylabel: str, title: str, path: Path, title_size=None) -> Path:
    """Labels, title and grid of a single-axes plot, then saved."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=title_size)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=130)
    fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    return path


def _draw_backbone(ax, runs: pd.DataFrame, analysis, x_column: str, color_of) -> None:
    """Measured AUC (mean ± seed std) per arm — the ME curve starting from the SE base — and the
    chosen fitted form: trusted fits with their bootstrap band and dashed extrapolation, labelled
    with their form; untrusted fits dotted, inside the measured range only."""
    from .analysis import arm_curves
    from .fit import bootstrap_band

    from .metrics import METRICS

    metric = METRICS[getattr(analysis, "metric", "auc")]
    shown = metric.error  # 1 − AUC ↔ AUC, and logloss / NE as they are: the map is its own inverse
    done = runs[(runs["status"] == "FINISHED") & runs[metric.column].notna()]
    for arm, curve in arm_curves(done, shared_base=getattr(analysis, "shared_base", True)).items():
        # one point per cell (its mean size): training FLOPs differ by seed within a cell
        stats = curve.groupby("scale").agg(x=(x_column, "mean"), mean=(metric.column, "mean"),
                                           std=(metric.column, "std")).sort_values("x")
        color = color_of(arm)
        ax.errorbar(stats["x"], stats["mean"], yerr=stats["std"], color=color, capsize=3, lw=0.8,
                    alpha=0.8, label=f"{arm.upper()} measured", **ARM_STYLE.get(arm, {}))
        fit = analysis.fits.get(metric.name, {}).get(arm)
        if fit is None or fit.form is None:
            continue
        inside = np.geomspace(min(fit.sizes), max(fit.sizes), 60)
        if not fit.trusted:
            ax.plot(inside, shown(fit.predict(inside)), ":", color=color, lw=1.2,
                    label=f"{arm.upper()} {fit.form} ({fit.trust.split(':')[0]})")
            continue
        beyond = np.geomspace(max(fit.sizes), max(fit.sizes) * _last_step(fit.sizes), 20)
        _shade_extrapolation(ax, beyond[0], beyond[-1])
        ax.plot(inside, shown(fit.predict(inside)), "-", color=color, lw=1.6, label=f"{arm.upper()} fit: {fit.form}")
        ax.plot(beyond, shown(fit.predict(beyond)), "--", color=color, lw=1, alpha=0.7)
        groups = [metric.error(curve[curve["scale"] == s][metric.column].to_numpy()) for s in stats.index]
        grid = np.concatenate([inside, beyond])
        band = shown(bootstrap_band(fit, groups, grid))
        ax.fill_between(grid, np.minimum(band[0], band[1]), np.maximum(band[0], band[1]), color=color, alpha=0.15,
                        lw=0)
    ax.set_xscale("log")
    log_size_ticks(ax.xaxis)
    ax.grid(True, which="both", alpha=0.3)


def _last_step(sizes) -> float:
    """The ratio of the two largest measured sizes: a fit is drawn at most one such step beyond."""
    distinct = sorted(set(float(x) for x in sizes))
    return distinct[-1] / distinct[-2] if len(distinct) > 1 else 2.0


def _shade_extrapolation(ax, start: float, end: float) -> None:
    """A grey band where a trusted fit is extrapolated (labelled once per plot)."""
    labelled = any(p.get_label() == EXTRAPOLATION for p in ax.patches)
    ax.axvspan(start, end, color="0.88", alpha=0.6, lw=0, zorder=0, label=None if labelled else EXTRAPOLATION)


EXTRAPOLATION = "extrapolated (one step beyond the data)"


def short_count(value: float, _position=None) -> str:
    """1.39M, 250k: parameter counts and sizes at a glance."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def log_size_ticks(axis) -> None:
    """Labelled ticks at 1, 2 and 5 of every decade (a sweep often spans less than a decade)."""
    axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(short_count))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


ARM_COLORS = {"se": "#1f77b4", "me": "#d62728"}


def _runs_of(runs: pd.DataFrame, analysis) -> pd.DataFrame:
    mine = (runs["backbone"] == analysis.backbone) & (runs["series"].fillna("") == analysis.series)
    if "slice" in runs:
        mine &= runs["slice"] == getattr(analysis, "slice", "")
    return runs[mine]


def backbone_fit(runs: pd.DataFrame, analysis, x_column: str, x_label: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    _draw_backbone(ax, _runs_of(runs, analysis), analysis, x_column, lambda arm: ARM_COLORS.get(arm, "k"))
    ax.set_xlabel(x_label)
    from .metrics import METRICS

    label = METRICS[getattr(analysis, "metric", "auc")].label
    ax.set_ylabel(f"test {label}")
    ax.set_title(f"{analysis.label}: {label} vs {x_label} (error bars: seed std; trusted fits with 95% band)",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def small_multiples(runs: pd.DataFrame, analyses, x_column: str, x_label: str, path: Path) -> Path:
    n = max(1, len(analyses))
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, analysis in zip(axes.flat, analyses):
        _draw_backbone(ax, _runs_of(runs, analysis), analysis, x_column,
                       lambda arm: ARM_COLORS.get(arm, "k"))
        ax.set_title(analysis.label, fontsize=10)
        ax.set_xlabel(x_label, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(analyses):]:
        ax.axis("off")
    if analyses:
        axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    return _save(fig, path)


def paper_comparison(comparison: pd.DataFrame, path: Path, dataset: str) -> Path:
    """Measured mean test AUC beside the published one, per backbone, against scale."""
    backbones = sorted(comparison["backbone"].unique())
    fig, axes = plt.subplots(1, max(1, len(backbones)), figsize=(3.6 * max(1, len(backbones)), 3.2), squeeze=False)
    for ax, backbone in zip(axes.flat, backbones):
        part = comparison[comparison["backbone"] == backbone]
        for arm, rows in part.groupby("arm"):
            rows = rows.sort_values("scale")
            color = ARM_COLORS.get(arm, "k")
            ax.plot(rows["scale"], rows["test_auc_mean"], "-o", color=color, label=f"{arm.upper()} measured")
            ax.plot(rows["scale"], rows["paper_test_auc"], "--", marker="o", mfc="none", color=color,
                    label=f"{arm.upper()} paper")
        ax.set_xscale("log", base=2)
        ax.set_title(backbone, fontsize=9)
        ax.set_xlabel("scale")
        ax.grid(True, alpha=0.3)
    axes.flat[0].set_ylabel(f"test AUC ({dataset})")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    return _save(fig, path)


def spectra(curves: dict, path: Path, title: str) -> Path:
    """Mean normalised singular-value spectrum per (backbone, arm) at its largest scale."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    backbones = sorted({b for b, _, _ in curves})
    for (backbone, arm, scale), spectrum in sorted(curves.items()):
        ax.plot(np.arange(1, len(spectrum) + 1), spectrum, color=colors[backbones.index(backbone) % len(colors)],
                linestyle="-" if arm == "me" else "--", label=f"{backbone} {arm.upper()} {scale}x")
    if curves:
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no spectra logged", ha="center", va="center", transform=ax.transAxes)
    return _finish(fig, ax, "singular value index", "σ / σ_max (mean over fields)", title, path, title_size=10)


def comparison_plot(comparison, x_label: str, path: Path) -> Path:
    """Test AUC against size for the two series of a comparison (mean ± sd over seeds, log x)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for style, (label, points) in zip(("-", "--"), comparison.points.items()):
        if not points:
            continue
        scale, size, mean, sd, _ = (np.array(v, dtype=float) for v in zip(*points))
        ax.errorbar(size, mean, yerr=sd, linestyle=style, marker="o", capsize=3, label=label)
        for s, xv, yv in zip(scale, size, mean):
            ax.annotate(f"{int(s)}x", (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=7, alpha=0.7)
    if comparison.points:
        ax.set_xscale("log")
        log_size_ticks(ax.xaxis)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, comparison.note or "nothing to compare", ha="center", va="center", transform=ax.transAxes,
                fontsize=8, wrap=True)
    return _finish(fig, ax, x_label, "test AUC (mean ± sd over seeds)", comparison.label, path)
