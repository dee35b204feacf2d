"""Looks at a sweep's claims: every read of its data counts, whoever reads it.

Reading the claims, adding seeds and reading again inflates false claims — whether the adaptive
loop does it, or a person who reads a report, runs `sweep NAME seed=0,...,N-1` and reads again.
So every report and every adaptive round records its look on the sweep's parent runs: a
signature of the finished runs it read (the same data read twice is one look) and its level
("fixed" at 5%, or "sequential@k" for look k of the sweep's adaptive plan). `look_notes` says
what the looks recorded before mean for the one being made.
"""
from __future__ import annotations

import hashlib
from typing import List, Sequence

import pandas as pd

FIXED_REPEATED_RATE = "11%"  # tests/test_claims.py: a null read after each seed from 3 to 10 at a fixed level


def signature(runs: pd.DataFrame) -> str:
    """A short name for the finished runs read: the same data read again is the same look."""
    done = runs.loc[runs["status"] == "FINISHED", "run_id"] if "status" in runs else runs["run_id"]
    return hashlib.sha1("\n".join(sorted(set(map(str, done)))).encode()).hexdigest()[:12]


def kind_of(sequential: bool, look: int) -> str:
    return f"sequential@{look}" if sequential else "fixed"


def record(store, parents: Sequence[str], runs: pd.DataFrame, sequential: bool, look: int) -> None:
    for parent in parents:
        store.record_look(parent, signature(runs), kind_of(sequential, look))


def look_notes(store, sweeps: Sequence[str], runs: pd.DataFrame, sequential: bool, look: int = 1) -> List[str]:
    """What the earlier looks at these sweeps (on other data) mean for this one, in words."""
    this = signature(runs)
    earlier = {sig: kind for sweep in sweeps for sig, kind in store.looks_seen(sweep).items() if sig != this}
    fixed = sum(kind == "fixed" for kind in earlier.values())
    adaptive = len(earlier) - fixed
    if sequential and kind_of(True, look) in earlier.values():
        return [f"look {look} of the adaptive plan was already read on other data (seeds added by hand within the "
                f"plan?): its share of the 5% is spent twice, so the bound is a little above 5%"]
    if sequential and fixed:
        return [f"this sweep was read at a fixed 5% level before, on other data ({fixed} look{'s' * (fixed > 1)}): "
                f"those looks are outside the adaptive plan, so over all of them a false claim is bounded by "
                f"{5 * (fixed + 1)}%, not 5%"]
    if not sequential and adaptive:
        return [f"--no-sequential after {adaptive} adaptive look{'s' * (adaptive > 1)} gives up the plan's guarantee: "
                f"these fixed 95% intervals ignore the earlier looks (reading a null after every seed from 3 to 10 at "
                f"a fixed level made a false claim {FIXED_REPEATED_RATE} of the time)"]
    if not sequential and fixed:
        return [f"this sweep's claims were read before on other data ({fixed} earlier look{'s' * (fixed > 1)}, e.g. "
                f"before seeds were added): each fixed 5% look adds its own chance of a false claim (up to "
                f"{5 * (fixed + 1)}% over the {fixed + 1} looks); `sweep NAME --until-decided` bounds repeated looks"]
    return []
