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
