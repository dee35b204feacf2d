"""`recsys-scaling sweep NAME --until-decided`: add seeds, in rounds, only where claims are undecided.

Round 0 is the sweep as written. After each round the claims are re-read with sequential
intervals (α split over the looks a loop planned up to --max-seeds can take, one per round; the
sweep's first plan is kept by its later runs and reports) and with the report's family-wise
control (Holm per backbone), so stopping as soon as everything is decided does not inflate
false claims. Each next round adds the next seed to the cells
(backbone × arm × scale) behind the claims still undecided; cells whose claims are all decided
wait. Every round is an ordinary relaunch of the sweep with a longer seed list (finished jobs are
skipped), so Ctrl-C and the same command again continue it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Set, Tuple

from .. import tracking
from ..paths import find_sweep
from ..report import looks
from ..report.analysis import analyse, look_levels
from ..report.collect import collect_runs
from . import grid
from .progress import clock
from .plan import confirm_size, plan_sweep
from .runner import Cell, SweepSummary, run_sweep

log = logging.getLogger(__name__)


@dataclass
class Round:
    number: int
    seeds: List[int]  # the seed list this round ran
    jobs_run: int
    seconds: float
    decided: int = 0
    undecided: int = 0
    cells_next: int = 0  # cells that get another seed in the next round

    def row(self) -> str:
        span = f"{self.seeds[0]}..{self.seeds[-1]}" if len(self.seeds) > 1 else str(self.seeds[0])
        return (f"{self.number:>5}  {len(self.seeds):>10}  {span:>9}  {self.jobs_run:>8}  {self.decided:>7}  "
                f"{self.undecided:>9}  {clock(self.seconds):>7}")


class RoundFailed(RuntimeError):
    """A round whose jobs did not all finish: the loop stops (its summary says which)."""

    def __init__(self, message: str, summary: SweepSummary):
        super().__init__(message)
        self.summary = summary


HEADER = "round  seeds/cell      seeds  jobs run  decided  undecided     time"


def grid_seeds(name: str, overrides: Sequence[str], sweeps_dirs: Sequence[Path]) -> List[int]:
    """The seeds the sweep as written runs (its grid, with the command line's overrides)."""
    return sorted({int(job.seed) for job in grid.expand(find_sweep(name, sweeps_dirs), overrides)})


def undecided_cells(claims_by_backbone) -> Set[Cell]:
    """(backbone, arm, scale) of every cell behind a claim that is not decided."""
    return {(backbone, arm, scale) for backbone, claims in claims_by_backbone for claim in claims
            if not claim.decided for arm, scale in claim.cells}


def read_claims(summary: SweepSummary, max_seeds: int, margin: Optional[float], ia_margin: Optional[float],
                notes: Optional[list] = None):
    """The latest launch's claims with sequential intervals: [(backbone, claims)]. The look is
    recorded on the sweep (see report/looks.py); `notes`, when given, gets what earlier looks at
    it mean for this one."""
    store = tracking.Store(summary.store_uri, summary.experiment)
    settings = store.sweep_settings(summary.parent_run_id)
    runs, _ = collect_runs(store, [summary.parent_run_id])
    if runs.empty:
        return []
    results = analyse(runs, resamples=1, fit=False, sequential=True, max_seeds=max_seeds,
                      margin=margin or settings.get("margin", 0.0005),
                      ia_margin=ia_margin or settings.get("ia_margin", 1.0))
    look = look_levels(runs, max_seeds).look
    if notes is not None:
        notes += looks.look_notes(store, [store.sweep_name(summary.parent_run_id)], runs, True, look)
    looks.record(store, [summary.parent_run_id], runs, True, look)
    return [(r.backbone, r.claims) for r in results]


def run_until_decided(name: str, overrides: Sequence[str] = (), max_seeds: int = 10, force: bool = False,
                      sweeps_dirs: Sequence[Path] = (), margin: Optional[float] = None,
                      ia_margin: Optional[float] = None, echo=print, yes: bool = False,
                      ask=None, verbose: bool = False) -> Tuple[List[Round], SweepSummary]:
    """Run the sweep, then add seeds round by round until every claim is decided or a cell would
    need more than `max_seeds` seeds. `echo` prints each round's row as it ends, after the worst
    case (every cell at `max_seeds`; above plan.BIG_SWEEP_* it needs `yes` or `ask`). Returns the
    rounds and the last launch's summary."""
    overrides = [*overrides, *([f"report.margin={margin}"] if margin else []),
                 *([f"report.ia_margin={ia_margin}"] if ia_margin else [])]
    seeds = grid_seeds(name, overrides, sweeps_dirs)
    if len(seeds) > max_seeds:
        raise ValueError(f"--max-seeds {max_seeds}: the sweep already runs {len(seeds)} seeds per cell "
                         f"({','.join(map(str, seeds))}); give a larger --max-seeds")
    worst_case(name, overrides, seeds, max_seeds, sweeps_dirs, force, echo, yes, ask)
    rounds: List[Round] = []
    cells: Optional[Set[Cell]] = None  # round 0 runs the whole grid
    looks = max_seeds - 2
    echo(f"adaptive seeds: sequential intervals planned up to {max_seeds} seeds per cell "
         f"({looks} look{'s' if looks > 1 else ''}; any false claim about a backbone, over all of them, ≤ 5%)"
         f"\n{HEADER}")
    while True:
        started = time.monotonic()
        number = len(rounds)
        summary = run_sweep(name, [*overrides, "seed=" + ",".join(map(str, seeds))], force=force and not rounds,
                            sweeps_dirs=sweeps_dirs, max_seeds=max_seeds, only_cells=cells,
                            announce=lambda text: echo(f"  round {number} {text}"), yes=True, verbose=verbose)
        this = Round(len(rounds), list(seeds), summary.finished + summary.failed, time.monotonic() - started)
        plan = summary.seed_plan or max_seeds
        if not rounds and plan != max_seeds:
            echo(f"  (this sweep's intervals stay planned for {plan} seeds per cell, as its first --until-decided "
                 f"planned them; this run stops at {max_seeds})")
        notes: Optional[list] = [] if not rounds else None
        claims = read_claims(summary, plan, margin, ia_margin, notes)
        for note in notes or []:
            echo(f"  note: {note}")
        flat = [c for _, cs in claims for c in cs]
        this.decided, this.undecided = sum(c.decided for c in flat), sum(not c.decided for c in flat)
        cells = undecided_cells(claims)
        this.cells_next = len(cells) if this.undecided and len(seeds) < max_seeds else 0
        rounds.append(this)
        echo(this.row())
        if not summary.ok:
            raise RoundFailed(f"round {this.number} did not complete; fix what failed and run the same command again "
                              "(finished jobs are skipped)", summary)
        if not this.undecided or len(seeds) >= max_seeds:
            return rounds, summary
        seeds.append(max(seeds) + 1)
        log.info("round %d: seed %d for %d cells behind %d undecided claims", this.number + 1, seeds[-1],
                 len(cells), this.undecided)


def worst_case(name: str, overrides: Sequence[str], seeds: Sequence[int], max_seeds: int,
               sweeps_dirs: Sequence[Path], force: bool, echo, yes: bool, ask) -> None:
    """Print what the loop costs if no claim is ever decided (every cell run to `max_seeds`
    seeds), and ask before starting when that is far too much. Nothing is recorded before."""
    every = [*seeds, *range(max(seeds) + 1, max(seeds) + 1 + max_seeds - len(seeds))]
    plan = plan_sweep(name, [*overrides, "seed=" + ",".join(map(str, every))], force, sweeps_dirs,
                      open_store=tracking.existing_store)
    wall = plan.estimate.wall if plan.estimate.known else None
    jobs = len(plan.estimate.jobs)
    echo(f"worst case (every cell to {max_seeds} seeds): {jobs} more job(s), "
         f"{'time unknown until the data is prepared' if wall is None else clock(wall)}")
    confirm_size(f"sweep {name} --until-decided --max-seeds {max_seeds} (worst case)", jobs, wall, yes, ask)


def closing_line(rounds: Sequence[Round], max_seeds: int) -> str:
    last = rounds[-1]
    total = clock(sum(r.seconds for r in rounds))
    if not last.undecided:
        return f"every claim decided after {len(rounds)} round(s), {len(last.seeds)} seeds per cell at most ({total})"
    return (f"stopped at --max-seeds {max_seeds}: {last.undecided} claim(s) still undecided after {len(rounds)} "
            f"round(s) ({total}); the report says how many seeds per cell would decide them")
