"""`recsys-scaling advise SWEEP --budget B`: the best (K sets x d width) for a budget."""
from __future__ import annotations

import argparse
import math
from typing import Tuple

import pandas as pd


def parse_budget(text: str, axis: str, runs: pd.DataFrame) -> Tuple[float, str]:
    """(budget on the axis, how to say it). "40d" is K·d = 40 per field on the embedding axis:
    embedding parameters are the vocabulary size times K·d, read off any finished run."""
    text = text.strip().lower()
    if text.endswith("d"):
        if axis != "embedding":
            raise ValueError(f"--budget {text}: a width per field (…d) is a budget on the embedding axis only")
        try:
            width = float(text[:-1])
        except ValueError:
            raise ValueError(f"--budget {text}: give K·d per field as a number with a d suffix, e.g. 40d") from None
        if not (math.isfinite(width) and width > 0):
            raise ValueError(f"--budget {text}: K·d per field must be a positive, finite number")
        done = runs[(runs["status"] == "FINISHED") & runs["params_embedding"].notna() & runs["embed_dim"].notna()]
        if done.empty:
            raise LookupError("no finished run to read the vocabulary size from")
        vocab = float((done["params_embedding"] / (done["num_embeddings"] * done["embed_dim"])).median())
        return width * vocab, f"K·d = {width:g} per field ({width * vocab:,.0f} embedding parameters)"
    try:
        budget = float(text)
    except ValueError:
        raise ValueError(f"--budget {text}: give a number (parameters or FLOPs) or, for embedding, e.g. 40d") from None
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"--budget {text}: must be a positive, finite number")
    return budget, f"{budget:,.0f} {'FLOPs per example' if axis == 'flops' else axis + ' parameters'}"


def _interval(row: dict) -> str:
    if row.get("low") is None:
        return "–"
    return f"[{row['low']:.4f}, {row['high']:.4f}]"


def candidate_table(candidates) -> str:
    rows = [("K", "d", "seeds", "test AUC", "95% CI", "p_best")]
    rows += [(str(c["K"]), str(c["d"]), str(c["seeds"]), f"{c['auc']:.4f}", _interval(c), f"{c['p_best']:.2f}")
             for c in candidates]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows)


VERDICT_WORDS = {
    "clear_winner": "clear winner: it beats every other shape on this budget (one-sided Welch tests at α/2, Holm)",
    "no_clear_winner": "no clear winner",
    "insufficient_seeds": "insufficient seeds: a shape on this budget has fewer than 3 finished seeds",
}


def cmd_advise(args: argparse.Namespace) -> int:
    from .. import tracking
    from ..config import resolve_tracking_uri
    from ..report.collect import collect_runs, distinct_runs
    from ..report.frontier import advise

    if args.resamples < 1:
        raise ValueError(f"--resamples {args.resamples}: must be at least 1")
    store = tracking.Store(tracking.check_source(resolve_tracking_uri(args.tracking_uri)), args.experiment)
    parent = store.latest_sweep_parent(args.sweep).info.run_id
    runs, _ = collect_runs(store, [parent])
    runs = distinct_runs(runs)
    if args.compute is not None:
        from .advise_compute import advise_compute

        return advise_compute(args, runs)
    budget, said = parse_budget(args.budget, args.axis, runs)
    result = advise(runs, budget, args.axis, args.backbone, args.resamples)
    backbone = args.backbone or ", ".join(sorted(runs["backbone"].dropna().unique()))
    print(f"advise {args.sweep} ({backbone}): budget {said}, axis {args.axis}")
    if result["candidates"]:
        print(candidate_table(result["candidates"]))
        words = VERDICT_WORDS[result["verdict"]]
        if len(result["candidates"]) == 1 and result["verdict"] != "insufficient_seeds":
            words = "one shape measured at this budget: nothing to compare it with"
        elif result["not_separated"]:
            others = ", ".join(result["not_separated"])
            words += f": K={result['K']} x d={result['d']} cannot be separated from {others}"
        print(f"verdict: {words}")
        print(f"recommended: K={result['K']} sets of d={result['d']} (measured test AUC {result['predicted_auc']:.4f} "
              f"{_interval(result)}, best in {result['p_best']:.0%} of seed bootstraps)")
        print(f"method: {result['method']}")
        return 0
    if result["verdict"] == "extrapolated":
        print(result["method"])
        return 1
    where = "extrapolated beyond" if result["extrapolated"] else "interpolated between"
    print(f"no measured shape within ±15% of this budget: the fitted surface's best shape ({where} the measured "
          f"budgets)")
    if result["K"] is None:
        print("the surface has no shape on this budget's line near the measured grid (K at most 2x the largest "
              "measured, d within 2x of the measured widths)")
        return 1
    band = "" if result["low"] is None else f" [{result['low']:.4f}, {result['high']:.4f}]"
    print(f"recommended: K={result['K']} sets of d={result['d']}, predicted test AUC {result['predicted_auc']:.4f}"
          f"{band}; {result['method']}")
    print(f"measure it: {measure_command(args.sweep, runs, result, args.backbone)}")
    return 0


def measure_command(sweep: str, runs: pd.DataFrame, result: dict, backbone) -> str:
    """A sweep of (K, d) cells takes the shape as overrides; any other sweep's grid would give
    every arm and scale that one shape, so then it is a training run per seed."""
    shape = f"model.num_embeddings={result['K']} model.embed_dim={result['d']}"
    model = f" model={backbone}" if backbone else ""
    if "explicit_shape" in runs and (runs["explicit_shape"] == "true").any():
        return f"recsys-scaling sweep {sweep}{model} {shape}"
    model = model or f" model={runs['backbone'].dropna().iloc[0]}"
    return f"recsys-scaling train{model} arm=me {shape} seed=0   (and seed=1, seed=2)"

