"""The report's data-and-compute section, shown when a sweep varies the training data: a joint
law per backbone and arm (joint.py), its iso-error map with the compute-optimal line
(law_plots.py), the compute multipliers between the arms (compute.py), and one sentence per law
that leads with the answer."""
from __future__ import annotations

import html
from pathlib import Path
from typing import List

import pandas as pd

from .compute import compute_multiplier
from .joint import JointLaw, joint_laws
from .law_plots import law_map
from .metrics import METRICS
from .plots import short_count


def varies_data(runs: pd.DataFrame) -> bool:
    if "train_fraction" not in runs:
        return False
    done = runs[runs["status"] == "FINISHED"] if "status" in runs else runs
    return done["train_fraction"].fillna(1.0).nunique() > 1


def data_section(runs: pd.DataFrame, metric: str, margin: float, work: Path) -> dict:
    """{"html", "json", "sentences", "images"} of the section ("" html when the data do not vary)."""
    if not varies_data(runs):
        return {"html": "", "json": None, "sentences": [], "images": []}
    laws, skipped = joint_laws(runs, metric=metric, size_axis="total", margin=margin)
    images = [law_map(law, work / f"law_{_slug(law)}.png") for law in laws]
    optima = {id(law): _largest_optimum(law) for law in laws}
    multipliers = _multipliers(laws)
    sentences = [law_sentence(law, optima[id(law)]) for law in laws] + [multiplier_sentence(m) for m in multipliers]
    payload = {"metric": metric, "margin": margin, "skipped": skipped, "multipliers": multipliers,
               "laws": [{**law.as_dict(), "optimal_at_largest_compute": optima[id(law)]} for law in laws]}
    return {"html": _html(laws, images, multipliers, sentences, skipped, metric), "json": payload,
            "sentences": sentences, "images": images}


def _largest_optimum(law: JointLaw):
    """The optimum at the largest training compute the law's cells measured (None: no answer)."""
    if law.cost is None:
        return None
    compute = float(max(law.cost(n, d) for n, d in zip(law.cells.N, law.cells.D)))
    try:
        return law.optimal(compute)
    except ValueError as exc:
        return {"compute": compute, "error": str(exc)}


def _multipliers(laws: List[JointLaw]) -> List[dict]:
    by_key = {(law.series, law.backbone, law.arm): law for law in laws}
    rows = []
    for (series, backbone, arm), fast in sorted(by_key.items()):
        slow = by_key.get((series, backbone, "se"))
        if arm != "me" or slow is None:
            continue
        if not (slow.fit.converged and fast.fit.converged):
            rows.append({"series": series, "backbone": backbone, "slow": "se", "fast": "me",
                         "error": "a joint law did not converge"})
            continue
        try:
            rows.append({"series": series, **compute_multiplier(slow=slow, fast=fast)})
        except ValueError as exc:
            rows.append({"series": series, "backbone": backbone, "slow": "se", "fast": "me", "error": str(exc)})
    return rows


def _range(entry: dict, fmt=short_count) -> str:
    return f"{fmt(entry['estimate'])} [{fmt(entry['low'])}, {fmt(entry['high'])}]"


DROPPED = {"size": ": size has no measurable effect here (the law without its size term fits as well, F test at 5%), "
                    "so the smallest measured size, and every further FLOP on rows",
           "data": ": rows have no measurable effect here (the law without its data term fits as well, F test at "
                   "5%), so the fewest measured rows, and every further FLOP on size"}


def law_sentence(law: JointLaw, optimum) -> str:
    """One sentence, the answer first: where the largest measured compute is best spent."""
    name = f"{law.series + ' / ' if law.series else ''}{law.backbone} {law.arm.upper()}"
    p = law.params
    form = (f"{METRICS[law.metric].error_label} = E + A/N^α + B/D^β with α = {_range(p['alpha'], _num)}, "
            f"β = {_range(p['beta'], _num)}, E = {_range(p['E'], _num)}")
    trust = "trusted" if law.trusted else law.holdout["trust"]
    if not law.fit.converged:
        return f"{name}: the joint law does not describe these runs ({law.fit.why}); no compute-optimal answer."
    if not optimum or "error" in optimum:
        why = optimum["error"] if optimum else "no measured cost"
        return f"{name}: no compute-optimal answer ({why}); {form}; {trust}."
    where = "extrapolated beyond the measured grid" if optimum["extrapolated"] else "inside the measured grid"
    flat = DROPPED.get(law.fit.dropped, "")
    return (f"{name}: at {optimum['compute']:.3g} training FLOPs (the largest measured) the best split is "
            f"N = {_range(optimum['size'])} parameters on D = {_range(optimum['rows'])} rows ({where}){flat}; "
            f"{form}; {trust}.")


def multiplier_sentence(row: dict) -> str:
    name = f"{row['series'] + ' / ' if row.get('series') else ''}{row['backbone']}"
    if "error" in row:
        return f"{name}: no compute multiplier ({row['error']})."
    at = f"ME's {short_count(row['at_size'])} parameters on {short_count(row['at_rows'])} rows"
    if row["never"]:
        return f"{name}: SE never reaches ME's error at {at}, within the fitted form (SE's floor E is above it)."
    high = "never" if row["high"] == float("inf") else f"{row['high']:.3g}"
    return (f"{name}: SE needs {row['estimate']:.3g}× [{row['low']:.3g}, {high}] the training compute of ME to reach "
            f"ME's error at {at} (both on their compute-optimal lines).")


def _num(value: float) -> str:
    return f"{value:.3g}"


def _html(laws, images, multipliers, sentences, skipped, metric: str) -> str:
    parts = ["<h2>Data and compute</h2>",
             "<p class=note>Each backbone and arm gets a joint law of its "
             f"{html.escape(METRICS[metric].error_label)}, L(N, D) = E + A/N^α + B/D^β over total parameters N "
             "and training rows D, fitted by variable projection on every seed (95% intervals: HC3 sandwich, "
             "t on n − 5 d.o.f.; calibrated in simulation with 3 seeds per cell). <em>Trusted</em>: a law fitted "
             "without the largest size and the most rows predicts those cells within ±margin at 90%. Compute is what "
             "the runs measured: 3 × FLOPs per example × rows × epochs, the FLOPs per example fitted as k·N^γ over "
             "the cells (embedding parameters cost memory, not FLOPs, so γ is well below 1). The red line is the "
             "compute-optimal (N*, D*) per training compute, dotted its 95% interval of N*.</p>",
             "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>"]
    if multipliers:
        table = pd.DataFrame([{k: v for k, v in m.items() if k not in ("slow", "fast")} for m in multipliers])
        parts.append(table.to_html(index=False, classes="t", float_format=lambda v: f"{v:.4g}", border=0))
    if skipped:
        parts.append("<p class=note>No law: " + html.escape("; ".join(skipped)) + "</p>")
    parts += [f'<img src="{image.name}" alt="{image.stem}">' for image in images]
    return "\n".join(parts)


def _slug(law: JointLaw) -> str:
    label = f"{law.series}_{law.backbone}_{law.arm}"
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)
