"""Training compute: what the runs measured it to cost, the compute-optimal (N, D) of a joint
law, and compute multipliers between two laws.

Cost. A run's training compute is 3 × FLOPs per example × training rows × epochs run (recorded
as train_flops). Across a backbone's cells the FLOPs per example are fitted as a power of the
size axis, k·N^γ, and the epochs as their median factor c = train_flops / (FLOPs/example ×
rows). So C(N, D) = c·k·N^γ·D — measured, not the 6ND of dense language models: embedding
parameters cost memory, not FLOPs, and γ says how much of the size axis costs compute at all
(γ = 0 would let the size grow for free, and the method says so instead of answering).

Optimum. Minimising L = E + A₀(N/N₀)^−α + B₀(D/D₀)^−β on C(N, D) = C has a closed form: with
K = C / (c·k·N₀^γ·D₀), n* = (α·A₀·K^β / (β·γ·B₀))^(1/(α+βγ)), d* = K·n*^−γ, and along the
optimum L*(C) = E + H·K^−ρ, ρ = αβ/(α+βγ). Intervals are percentiles over draws of the law's
constants (its multivariate t); the cost fit is exact up to rounding (FLOPs are counted).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

LEVEL = 0.95
MIN_GAMMA = 0.02  # FLOPs per example growing slower than N^0.02: size costs (almost) no compute


@dataclass(frozen=True)
class CostModel:
    k: float
    gamma: float
    epochs_factor: float  # c = 3 × median epochs

    @classmethod
    def measured(cls, sizes, flops_per_example, rows, train_flops) -> Optional["CostModel"]:
        sizes, fpe = np.asarray(sizes, float), np.asarray(flops_per_example, float)
        rows, flops = np.asarray(rows, float), np.asarray(train_flops, float)
        keep = np.isfinite(sizes) & np.isfinite(fpe) & (fpe > 0) & np.isfinite(rows) & np.isfinite(flops)
        if keep.sum() < 2 or len(np.unique(sizes[keep])) < 2:
            return None
        gamma, log_k = np.polyfit(np.log(sizes[keep]), np.log(fpe[keep]), 1)
        factor = float(np.median(flops[keep] / (fpe[keep] * rows[keep])))
        return cls(float(np.exp(log_k)), float(gamma), factor)

    def __call__(self, N, D) -> np.ndarray:
        return self.epochs_factor * self.k * np.asarray(N, float) ** self.gamma * np.asarray(D, float)

    def as_dict(self) -> dict:
        return {"form": "C = c * k * N^gamma * D", "k": self.k, "gamma": self.gamma, "c": self.epochs_factor,
                "epochs": self.epochs_factor / 3.0}


def _terms(theta: np.ndarray):
    E, A, alpha, B, beta = (theta[:, i] for i in range(5))
    size_flat, data_flat = (A == 0) & (alpha == 0), (B == 0) & (beta == 0)  # a term the fit dropped
    both = (A > 0) & (B > 0) & (alpha > 0) & (beta > 0)
    valid = both | (size_flat & (B > 0) & (beta > 0)) | (data_flat & (A > 0) & (alpha > 0))
    return E, A, alpha, B, beta, size_flat, data_flat, valid


def _frontier(theta: np.ndarray, fit, cost: CostModel, compute) -> tuple:
    """(N*, D*, L*) per row of theta (draws × 5) at `compute`; NaN where the law has no optimum.
    A flat size term (dropped by the fit) puts every FLOP on rows at the smallest measured size;
    a flat data term, on size at the fewest measured rows."""
    E, A, alpha, B, beta, size_flat, data_flat, valid = _terms(theta)
    gamma = cost.gamma
    K = np.asarray(compute, float) / (cost.epochs_factor * cost.k * fit.N0 ** gamma * fit.D0)
    with np.errstate(all="ignore"):
        n = (alpha * A * K ** beta / (beta * gamma * B)) ** (1.0 / (alpha + beta * gamma))
        n = np.where(size_flat, 1.0, np.where(data_flat, K ** (1.0 / gamma), n))
        d = K * n ** -gamma
        L = E + np.where(size_flat, 0.0, A * n ** -alpha) + np.where(data_flat, 0.0, B * d ** -beta)
    nan = np.full_like(E, np.nan)
    return (np.where(valid, n * fit.N0, nan), np.where(valid, d * fit.D0, nan), np.where(valid, L, nan))


def _compute_to_reach(theta: np.ndarray, fit, cost: CostModel, target) -> np.ndarray:
    """The least training compute at which the law's optimum reaches `target` (inf: never)."""
    E, A, alpha, B, beta, size_flat, data_flat, valid = _terms(theta)
    gamma, gap = cost.gamma, np.asarray(target, float) - E
    with np.errstate(all="ignore"):
        G = (alpha * A / (beta * gamma * B)) ** (1.0 / (alpha + beta * gamma))
        H = A * G ** -alpha + B * G ** (beta * gamma)
        rho = alpha * beta / (alpha + beta * gamma)
        K = (H / gap) ** (1.0 / rho)
        K = np.where(size_flat, (B / gap) ** (1.0 / beta), np.where(data_flat, (A / gap) ** (gamma / alpha), K))
    K = np.where(gap > 0, K, np.inf)
    return np.where(valid, K * cost.epochs_factor * cost.k * fit.N0 ** gamma * fit.D0, np.nan)


def _band(values: np.ndarray, level: float = LEVEL) -> tuple:
    """Percentile interval over draws (inf counts: an upper bound may be 'never')."""
    finite = values[~np.isnan(values)]
    if not len(finite):
        return float("nan"), float("nan")
    ordered = np.sort(finite)
    tail = (1 - level) / 2
    pick = lambda q: float(ordered[min(len(ordered) - 1, max(0, int(np.floor(q * (len(ordered) - 1) + 0.5))))])
    return pick(tail), pick(1 - tail)


def _entry(point: float, draws: np.ndarray) -> dict:
    low, high = _band(draws)
    return {"estimate": float(point), "low": low, "high": high}


def _check_cost(law) -> CostModel:
    if not law.fit.converged:
        raise ValueError(f"{law.backbone}/{law.arm}: the joint law did not converge ({law.fit.why}), so it has no "
                         "optimum to read")
    if law.cost is None:
        raise ValueError(f"{law.backbone}/{law.arm}: no measured cost (runs without flops_per_example and "
                         "train_flops, recorded before the data axis): rerun them")
    if law.cost.gamma < MIN_GAMMA:
        raise ValueError(f"{law.backbone}/{law.arm}: FLOPs per example do not grow with the size axis "
                         f"(gamma={law.cost.gamma:.3g}): size costs memory, not compute, so no compute budget "
                         "bounds it")
    return law.cost


def optimal_allocation(law, compute: float, draws: int = 4000, seed: int = 0) -> dict:
    """The best size and rows for a training compute, each with a 95% interval."""
    if not compute > 0 or not np.isfinite(compute):
        raise ValueError(f"compute={compute}: a positive number of training FLOPs")
    cost = _check_cost(law)
    rng = np.random.default_rng(seed)
    point = [float(v[0]) for v in _frontier(law.fit.theta[None, :], law.fit, cost, compute)]
    drawn = _frontier(law.fit.draws(draws, rng), law.fit, cost, compute)
    sizes, rows = law.cells.sizes, law.cells.rows
    inside = (sizes.min() <= point[0] <= sizes.max()) and (rows.min() <= point[1] <= rows.max())
    return {"compute": float(compute), "size": _entry(point[0], drawn[0]), "rows": _entry(point[1], drawn[1]),
            "metric": _entry(point[2], drawn[2]), "extrapolated": not inside,
            "valid_draws": float(np.mean(~np.isnan(drawn[0]))),
            "method": "closed-form optimum of the fitted law on the measured cost C = c*k*N^gamma*D; "
                      "95% percentile intervals over draws of the law's constants"}


def compute_multiplier(slow, fast, draws: int = 4000, seed: int = 0) -> dict:
    """How many times the training compute `slow` needs, on its compute-optimal frontier, to
    reach the error `fast` reaches at its largest measured cell, over what `fast` needs
    there on its own frontier. inf: never, within the fitted form (slow's floor E is above)."""
    for law in (slow, fast):
        _check_cost(law)
    rng = np.random.default_rng(seed)
    N, D = float(fast.cells.sizes.max()), float(fast.cells.rows.max())
    theta_fast, theta_slow = fast.fit.theta[None, :], slow.fit.theta[None, :]
    target = fast.fit.predict(N, D)
    point = float(_compute_to_reach(theta_slow, slow.fit, slow.cost, target)[0]
                  / _compute_to_reach(theta_fast, fast.fit, fast.cost, target)[0])
    fast_draws, slow_draws = fast.fit.draws(draws, rng), slow.fit.draws(draws, rng)
    targets = fast.fit.predict(N, D, fast_draws.T)
    ratio = (_compute_to_reach(slow_draws, slow.fit, slow.cost, targets)
             / _compute_to_reach(fast_draws, fast.fit, fast.cost, targets))
    low, high = _band(ratio)
    return {"slow": slow.arm, "fast": fast.arm, "backbone": fast.backbone, "at_size": N, "at_rows": D,
            "target": float(target), "estimate": point, "low": low, "high": high, "never": not np.isfinite(point),
            "never_share": float(np.mean(np.isinf(ratio)))}
