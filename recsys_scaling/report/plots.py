"""Scaling plots (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

ARM_STYLE = {"se": {"linestyle": "--", "marker": "o"}, "me": {"linestyle": "-", "marker": "s"}}


def auc_vs_params(summary: pd.DataFrame, path: Path, title: str) -> Path:
    """Test AUC against total parameters (log x): a line per (backbone, arm), seed std as error bars."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (backbone, by_backbone) in enumerate(summary.groupby("backbone", sort=True)):
        for arm, curve in by_backbone.groupby("arm", sort=True):
            curve = curve.sort_values("params_total")
            ax.errorbar(curve["params_total"], curve["test_auc_mean"], yerr=curve["test_auc_std"],
                        color=colors[i % len(colors)], capsize=3, label=f"{backbone} {arm.upper()}",
                        **ARM_STYLE.get(arm, {}))
            for _, point in curve.iterrows():
                ax.annotate(f"{point['scale']}x", (point["params_total"], point["test_auc_mean"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7, alpha=0.7)
    if summary.empty:
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("total parameters")
    ax.set_ylabel("test AUC (mean ± std over seeds)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def ia_vs_scale(summary: pd.DataFrame, path: Path, title: str) -> Path:
    """Mean information abundance (all sets concatenated) against scale, per backbone and arm."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    measured = summary.dropna(subset=["ia_mean"])
    for i, (backbone, by_backbone) in enumerate(measured.groupby("backbone", sort=True)):
        for arm, curve in by_backbone.groupby("arm", sort=True):
            curve = curve.sort_values("scale")
            ax.errorbar(curve["scale"].astype(float), curve["ia_mean"], yerr=curve["ia_mean_std"], capsize=3,
                        color=colors[i % len(colors)], label=f"{backbone} {arm.upper()}", **ARM_STYLE.get(arm, {}))
    if not measured.empty:
        reference = measured.groupby("scale")["ia_random_mean"].max().sort_index()
        ax.plot(reference.index.astype(float), reference.values, color="grey", lw=1, linestyle=":",
                label="random matrix (largest shape)")
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no IA measured", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("scale (SE: d = s·d0; ME: K = s sets of d0)")
    ax.set_ylabel("mean IA per field")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
