"""`recsys-scaling advise SWEEP --compute C`: the compute-optimal size and training rows for a
training-compute budget, from the sweep's joint size x data law, per backbone and arm."""
from __future__ import annotations

import argparse
import math

import pandas as pd


def _range(entry: dict, digits: str = ".3g") -> str:
    return f"{entry['estimate']:{digits}} [{entry['low']:{digits}}, {entry['high']:{digits}}]"


def nearest_shape(runs: pd.DataFrame, law, size: float) -> str:
    """The measured (K, d) of the law's arm nearest the optimal size (on log size)."""
    mine = runs[(runs["backbone"] == law.backbone) & (runs["arm"] == law.arm) & runs["params_total"].notna()
                & runs["embed_dim"].notna()]
    if mine.empty or not math.isfinite(size):
        return ""
    distance = (mine["params_total"].astype(float).map(math.log) - math.log(size)).abs()
    row = mine.loc[distance.idxmin()]
    return (f"; nearest measured shape: K={int(row['num_embeddings'])} sets of d={int(row['embed_dim'])} "
            f"({row['params_total']:,.0f} parameters, {law.arm} {int(row['scale'])}x)")


def advise_compute(args: argparse.Namespace, runs: pd.DataFrame) -> int:
    from ..report.compute import compute_multiplier
    from ..report.joint import joint_laws

    if not (args.compute > 0 and math.isfinite(args.compute)):
        raise ValueError(f"--compute {args.compute:g}: a positive number of training FLOPs, e.g. --compute 3e12")
    laws, skipped = joint_laws(runs, metric=args.metric, size_axis="total")
    laws = [law for law in laws if args.backbone in (None, law.backbone)]
    if not laws:
        raise LookupError(f"advise {args.sweep} --compute: no joint size x data law: "
                          + ("; ".join(skipped) or f"no backbone {args.backbone!r}"))
    print(f"advise {args.sweep}: training compute {args.compute:.3g} FLOPs; law {args.metric} = E + A/N^alpha + "
          "B/D^beta per backbone and arm (N total parameters, D training rows); cost C = c*k*N^gamma*D as the "
          "runs measured it")
    answered = 0
    for law in laws:
        name = f"{law.backbone} {law.arm.upper()}"
        try:
            answer = law.optimal(args.compute)
        except ValueError as exc:
            print(f"  {name}: no answer: {exc}")
            continue
        answered += 1
        where = "EXTRAPOLATED beyond the measured grid" if answer["extrapolated"] else "inside the measured grid"
        trust = "trusted" if law.trusted else law.holdout["trust"]
        print(f"  {name}: size {_range(answer['size'])} parameters, rows {_range(answer['rows'])}, predicted "
              f"{args.metric} {_range(answer['metric'], '.5g')} ({where}; law {trust})"
              f"{nearest_shape(runs, law, answer['size']['estimate'])}")
        if law.fit.dropped:
            print(f"    the {law.fit.dropped} term was dropped: it has no measurable effect over the measured grid "
                  "(the law without it fits as well, F test at 5%)")
        if law.cost is not None:
            print(f"    cost: gamma={law.cost.gamma:.3g} (FLOPs per example ~ N^gamma; embedding parameters cost "
                  f"memory, not FLOPs), {law.cost.epochs_factor / 3:.3g} epochs")
    by_arm = {(law.backbone, law.arm): law for law in laws}
    for (backbone, arm), fast in sorted(by_arm.items()):
        slow = by_arm.get((backbone, "se"))
        if arm == "me" and slow is not None:
            try:
                m = compute_multiplier(slow=slow, fast=fast)
            except ValueError as exc:
                print(f"  {backbone}: no compute multiplier: {exc}")
                continue
            said = "never, within the fitted form" if m["never"] else f"{m['estimate']:.3g}x [{m['low']:.3g}, {m['high']:.3g}]"
            print(f"  {backbone}: SE needs {said} the training compute of ME to reach ME's {args.metric} at its "
                  "largest measured cell")
    print("intervals: 95%, percentiles over draws of the law's constants; 'extrapolated' means outside the sizes "
          "and rows the sweep measured")
    return 0 if answered else 1
