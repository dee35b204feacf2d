"""The frontier's picture: mean test AUC over (K sets, d width) with its iso-budget lines, and
the fitted best shape per budget."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .plots import _save, log_size_ticks  # noqa: E402


def frontier_map(front, path: Path) -> Path:
    """Left: a heat map of mean AUC over K (rows) x d (columns) — the measured cells; each
    iso-budget line (equal K·d) joins its cells, its best cell framed (bold when it is a clear
    winner). Right: the fitted best K per budget with the bootstrap range of K, and each line's
    measured best."""
    Ks = sorted({c.K for c in front.cells})
    ds = sorted({c.d for c in front.cells})
    grid = np.full((len(Ks), len(ds)), np.nan)
    for c in front.cells:
        grid[Ks.index(c.K), ds.index(c.d)] = c.mean
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    image = left.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=left, label="mean test AUC")
    for c in front.cells:
        left.annotate(f"{c.mean:.4f}\n{int(c.seeds)} seeds", (ds.index(c.d), Ks.index(c.K)), ha="center",
                      va="center", fontsize=7, color=readable_on(image.cmap(image.norm(c.mean))))
    for line in front.lines:
        members = sorted((Ks.index(r["K"]), ds.index(r["d"])) for r in line["candidates"])
        left.plot([m[1] for m in members], [m[0] for m in members], "-", color="white", alpha=0.6, lw=1)
        best = line["best"]
        left.add_patch(plt.Rectangle((ds.index(best["d"]) - 0.45, Ks.index(best["K"]) - 0.45), 0.9, 0.9, fill=False,
                                     edgecolor="red", lw=2.5 if line["verdict"] == "clear_winner" else 1))
    left.set_xticks(range(len(ds)), [str(d) for d in ds])
    left.set_yticks(range(len(Ks)), [str(k) for k in Ks])
    left.set_xlabel("d (width of each set)")
    left.set_ylabel("K (embedding sets)")
    left.set_title(f"{front.backbone}: AUC over shapes (lines: equal K·d; red: best per line)", fontsize=9)
    _optimum_panel(right, front)
    fig.tight_layout()
    return _save(fig, path)


def readable_on(rgba) -> str:
    """Black or white, whichever reads on a cell of this colour (WCAG relative luminance)."""
    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.03928 else ((channel + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(float(x)) for x in rgba[:3])
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    # contrast with white (1.05 / (L + 0.05)) against contrast with black ((L + 0.05) / 0.05)
    return "white" if 1.05 / (luminance + 0.05) >= (luminance + 0.05) / 0.05 else "black"


def _optimum_panel(ax, front) -> None:
    fitted = [o for o in front.optimum if o.get("K") is not None]
    if fitted:
        budgets = [o["budget"] for o in fitted]
        ax.plot(budgets, [o["K"] for o in fitted], "-o", color="#1f77b4", ms=3,
                label=f"fitted best K ({front.surface.form} surface)")
        lows = [o["K_interval"][0] for o in fitted]
        highs = [o["K_interval"][1] for o in fitted]
        if None not in lows:
            ax.fill_between(budgets, lows, highs, color="#1f77b4", alpha=0.1, lw=0, label="bootstrap range of K")
    for line in front.lines:
        ax.plot(line["budget"], line["best"]["K"], "s", color="red", ms=6,
                mfc="red" if line["verdict"] == "clear_winner" else "none")
    ax.plot([], [], "s", color="red", mfc="none", label="measured best per line (filled: clear winner)")
    ax.set_xscale("log")
    ax.set_yscale("log", base=2)
    log_size_ticks(ax.xaxis)
    ax.set_xlabel(f"budget ({front.axis} {'FLOPs' if front.axis == 'flops' else 'parameters'})")
    ax.set_ylabel("best K (sets)")
    ax.set_title("best shape vs budget", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
