"""Scaling plots (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ARM_STYLE = {"se": {"linestyle": "--", "marker": "o"}, "me": {"linestyle": "-", "marker": "s"}}


def _arm_curves(ax, summary: pd.DataFrame, x: str, y: str, yerr: str):
    """One error-bar line per (backbone, arm): a colour per backbone, a line style per arm.
    Returns the drawn curves (each sorted by x) for callers that annotate points."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    curves = []
    for i, (backbone, by_backbone) in enumerate(summary.groupby("backbone", sort=True)):
        for arm, curve in by_backbone.groupby("arm", sort=True):
            curve = curve.sort_values(x)
            ax.errorbar(curve[x], curve[y], yerr=curve[yerr], color=colors[i % len(colors)], capsize=3,
                        label=f"{backbone} {arm.upper()}", **ARM_STYLE.get(arm, {}))
            curves.append(curve)
    return curves


def auc_vs_params(summary: pd.DataFrame, path: Path, title: str) -> Path:
    """Test AUC against total parameters (log x): a line per (backbone, arm), seed std as error bars."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for curve in _arm_curves(ax, summary, "params_total", "test_auc_mean", "test_auc_std"):
        for _, point in curve.iterrows():
            ax.annotate(f"{point['scale']}x", (point["params_total"], point["test_auc_mean"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7, alpha=0.7)
    if summary.empty:
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    return _finish(fig, ax, "total parameters", "test AUC (mean ± std over seeds)", title, path)


def ia_vs_scale(summary: pd.DataFrame, path: Path, title: str) -> Path:
    """Mean information abundance (all sets concatenated) against scale, per backbone and arm."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    measured = summary.dropna(subset=["ia_mean"]).astype({"scale": float})
    _arm_curves(ax, measured, "scale", "ia_mean", "ia_mean_std")
    if not measured.empty:
        reference = measured.groupby("scale")["ia_random_mean"].max().sort_index()
        ax.plot(reference.index.astype(float), reference.values, color="grey", lw=1, linestyle=":",
                label="random matrix (largest shape)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(measured["scale"].astype(float).unique()))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no IA measured", ha="center", va="center", transform=ax.transAxes)
    return _finish(fig, ax, "scale (SE: d = s·d0; ME: K = s sets of d0)", "mean IA per field", title, path)


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
    """Measured AUC (mean ± seed std) per arm, the fitted curve with its band, dashed beyond."""
    from .fit import bootstrap_band

    done = runs[runs["status"] == "FINISHED"]
    for arm, curve in done.groupby("arm", sort=True):
        stats = curve.groupby(x_column)["test_auc"].agg(["mean", "std"]).reset_index().fillna(0.0)
        color = color_of(arm)
        ax.errorbar(stats[x_column], stats["mean"], yerr=stats["std"], fmt=ARM_STYLE.get(arm, {}).get("marker", "o"),
                    color=color, capsize=3, label=f"{arm.upper()} measured")
        fit = analysis.fits.get("auc", {}).get(arm)
        if fit is None or fit.law is None:
            continue
        law = fit.power_law()
        inside = np.geomspace(min(fit.sizes), max(fit.sizes), 60)
        beyond = np.geomspace(max(fit.sizes), 4 * max(fit.sizes), 20)
        style = "-" if fit.identified else ":"
        ax.plot(inside, 1 - law.predict(inside), style, color=color, lw=1.2,
                label=f"{arm.upper()} fit α={law.alpha:.2f}" + ("" if fit.identified else " (flagged)"))
        ax.plot(beyond, 1 - law.predict(beyond), "--", color=color, lw=1, alpha=0.7)
        groups = [curve[curve[x_column] == s]["test_auc"].to_numpy() for s in sorted(curve[x_column].unique())]
        band = bootstrap_band(fit, [1 - g for g in groups], np.concatenate([inside, beyond]))
        grid = np.concatenate([inside, beyond])
        ax.fill_between(grid, 1 - band[1], 1 - band[0], color=color, alpha=0.15, lw=0)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(True, which="both", alpha=0.3)


ARM_COLORS = {"se": "#1f77b4", "me": "#d62728"}


def backbone_fit(runs: pd.DataFrame, analysis, x_column: str, x_label: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    _draw_backbone(ax, runs, analysis, x_column, lambda arm: ARM_COLORS.get(arm, "k"))
    ax.set_xlabel(x_label)
    ax.set_ylabel("test AUC")
    ax.set_title(f"{analysis.backbone}: AUC vs size (bands: 95% seed bootstrap; dashed: extrapolation)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def small_multiples(runs: pd.DataFrame, analyses, x_column: str, x_label: str, path: Path) -> Path:
    n = max(1, len(analyses))
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, analysis in zip(axes.flat, analyses):
        _draw_backbone(ax, runs[runs["backbone"] == analysis.backbone], analysis, x_column,
                       lambda arm: ARM_COLORS.get(arm, "k"))
        ax.set_title(analysis.backbone, fontsize=10)
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
