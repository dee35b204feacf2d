"""The joint law's picture: iso-error contours over (N, D), the measured cells, and the
compute-optimal line with its band."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .compute import optimal_allocation  # noqa: E402
from .metrics import METRICS  # noqa: E402
from .plots import _save, short_count  # noqa: E402



def law_map(law, path: Path, draws: int = 1500) -> Path:
    sizes, rows = law.cells.sizes, law.cells.rows
    N = np.geomspace(sizes.min() / 1.5, sizes.max() * 4, 80)
    D = np.geomspace(rows.min() / 1.5, rows.max() * 4, 80)
    grid_n, grid_d = np.meshgrid(N, D, indexing="xy")
    fig, ax = plt.subplots(figsize=(6.6, 4.8))
    levels = ax.contour(grid_n, grid_d, law.predict(grid_n, grid_d), levels=12, cmap="viridis", linewidths=0.9)
    ax.clabel(levels, fontsize=6, fmt="%.4g")
    means = law.cells.means()
    ax.scatter(means["N"], means["D"], c="k", s=14, zorder=3, label="measured cells (mean over seeds)")
    _optimal_line(ax, law, N, D, draws)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(short_count))
    ax.set_xlim(N.min(), N.max())
    ax.set_ylim(D.min(), D.max())
    ax.set_xlabel(f"{law.size_axis} parameters N")
    ax.set_ylabel("training rows D")
    trust = "trusted" if law.trusted else law.holdout["trust"].split(":")[0]
    ax.set_title(f"{law.series + ' / ' if law.series else ''}{law.backbone} {law.arm.upper()}: "
                 f"{METRICS[law.metric].error_label} = E + A/N^α + B/D^β ({trust})", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    return _save(fig, path)


def _optimal_line(ax, law, N, D, draws: int) -> None:
    """The compute-optimal (N*, D*) over the plotted compute range, with the 95% band of N*."""
    if law.cost is None or law.cost.gamma < 0.02:
        return
    low_c = law.cost(N.min(), D.min())
    high_c = law.cost(N.max(), D.max())
    points = []
    for compute in np.geomspace(low_c, high_c, 14):
        try:
            answer = optimal_allocation(law, compute, draws=draws)
        except ValueError:
            return
        size = answer["size"]
        points.append((size["estimate"], answer["rows"]["estimate"], size["low"], size["high"], compute))
    est = np.array(points)
    if not np.isfinite(est[:, :2]).all():
        return
    ax.plot(est[:, 0], est[:, 1], "-", color="#d62728", lw=1.6, label="compute-optimal (N*, D*)")
    for column, style in ((2, ":"), (3, ":")):
        n = est[:, column]
        ok = np.isfinite(n) & (n > 0)
        ax.plot(n[ok], est[ok, 4] / law.cost(n[ok], 1.0), style, color="#d62728", lw=0.9)
    ax.plot([], [], ":", color="#d62728", lw=0.9, label="95% interval of N* (same compute)")
