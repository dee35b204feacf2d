"""The console's verdicts: one line of at most HEADLINE_WIDTH characters per backbone, the lead
claims in a few words each (the report page has the intervals, p-values and methods)."""
from __future__ import annotations

from typing import List

from .claims import INSUFFICIENT, PEAKED, SUBJECT, UNDECIDED, Claim

HEADLINE_WIDTH = 120
SHORT = {"me_ahead": "ME ahead", "me_behind": "ME behind", "equivalent": "equivalent", "improving": "improving",
         "worsening": "worsening", "saturated": "saturated", PEAKED: "peaked", "me_scales_better": "ME better",
         "se_scales_better": "SE better", "same_scaling": "alike", "a_ahead": "{a} ahead", "a_behind": "{a} behind",
         "a_scales_better": "{a} better", "b_scales_better": "{b} better"}


def claim_words(claim: Claim) -> str:
    """'ME vs SE at 4x: ME ahead +0.0051', 'SE at the top: undecided', 'ME trend: too few seeds'."""
    subject = SUBJECT[claim.kind](claim)
    if claim.verdict == INSUFFICIENT:
        return f"{subject}: too few seeds"
    digits = 2 if claim.kind == "ia_gap" else 4
    value = f"{claim.estimate:+.{digits}f}"
    if claim.verdict == UNDECIDED:
        return f"{subject}: undecided {value}"
    words = SHORT.get(claim.verdict, claim.verdict.replace("_", " "))
    if claim.names:
        words = words.format(a=claim.names[0], b=claim.names[1])
    return f"{subject}: {words} {value}"


def headline(label: str, claims: List[Claim], width: int = HEADLINE_WIDTH) -> str:
    """`label: claim; claim; ...` cut to `width`, saying how many claims only the report shows."""
    if not claims:
        return f"{label}: no finished runs"[:width]
    shown: List[str] = []
    for i, claim in enumerate(claims):
        more = len(claims) - i - 1
        tail = f" (+{more} in the report)" if more else ""
        candidate = f"{label}: " + "; ".join([*shown, claim_words(claim)])
        if len(candidate + tail) > width and shown:
            break
        shown.append(claim_words(claim))
    hidden = len(claims) - len(shown)
    line = f"{label}: " + "; ".join(shown) + (f" (+{hidden} in the report)" if hidden else "")
    return line if len(line) <= width else line[: width - 1] + "…"


def clip(text: str, width: int = HEADLINE_WIDTH) -> str:
    """A sentence cut to `width` (the report has it whole)."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"
