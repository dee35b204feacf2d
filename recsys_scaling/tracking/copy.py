"""`recsys-scaling store copy SOURCE DEST`: move experiments from one MLflow store to another (a
person's sqlite into the team's server) with parent/child structure, params, every metric point,
tags and artifacts; each side is counted afterwards and a mismatch is an error.

Copies are idempotent: every copied run carries the source run's id, so running the copy again
adds only what is new, and a run half-copied by an interrupted copy is replaced."""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

from mlflow.entities import Metric, Param, Run, ViewType

from .opening import artifact_location
from .store import MAX_METRICS_PER_BATCH, MAX_PARAMS_PER_BATCH, PARENT_TAG, Store, _chunks

log = logging.getLogger(__name__)
COPIED_FROM = "recsys_scaling.copied_from"  # on a copy: the source run's id
COPY_COMPLETE = "recsys_scaling.copy_complete"  # set last: a copy without it was interrupted
OWN_TAGS = (COPIED_FROM, COPY_COMPLETE)
ID_ARTIFACTS = ("reused.json",)  # a sweep parent's job -> run id map, rewritten to the new ids
KINDS = ("runs", "params", "tags", "metric points", "artifacts")


@dataclass
class Tally:
    """What a set of runs holds, by kind."""

    counts: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def add(self, other: Dict[str, int]) -> None:
        for kind, value in other.items():
            self.counts[kind] += value


@dataclass
class ExperimentCopy:
    experiment: str
    copied: int
    already: int
    replaced: int
    source: Tally
    dest: Tally
    live: int = 0  # runs still RUNNING in the source: not copied (a sweep is still going)

    @property
    def matches(self) -> bool:
        return self.source.counts == self.dest.counts

    def table(self) -> str:
        lines = [f"experiment {self.experiment}: {self.copied} runs copied, {self.already} copied before"
                 + (f", {self.replaced} half-copied ones replaced" if self.replaced else ""),
                 f"  {'':<14}{'source':>10}{'in copy':>10}"]
        for kind in KINDS:
            mark = "" if self.source.counts[kind] == self.dest.counts[kind] else "   MISMATCH"
            lines.append(f"  {kind:<14}{self.source.counts[kind]:>10}{self.dest.counts[kind]:>10}{mark}")
        if self.live:
            lines.append(f"  {self.live} run(s) still RUNNING in the source (a sweep going on) are not copied: "
                         "run the same command when they have ended")
        return "\n".join(lines)


def copy_store(source_uri: str, dest_uri: str, experiments: Sequence[str] = (),
               progress: bool = True) -> List[ExperimentCopy]:
    """Copy the named experiments (default: every experiment of the source that has runs)."""
    source = Store(source_uri)
    names = list(experiments) or [e.name for e in source.client.search_experiments()
                                  if source.client.search_runs([e.experiment_id], max_results=1)]
    missing = [n for n in names if source.client.get_experiment_by_name(n) is None]
    if missing:
        raise LookupError(f"{source_uri}: no experiment named {', '.join(map(repr, missing))}")
    return [_copy_experiment(Store(source_uri, name), Store(dest_uri, name), progress) for name in names]


def _copy_experiment(source: Store, dest: Store, progress: bool) -> ExperimentCopy:
    source_experiment = source.client.get_experiment_by_name(source.experiment)
    dest_id = _dest_experiment(dest, source_experiment.tags)
    every = source.client.search_runs([source_experiment.experiment_id], max_results=50_000,
                                      order_by=["attributes.start_time ASC"])
    # A run still going would be copied half-way and never match again: it waits for a later copy.
    runs = _parents_first([run for run in every if run.info.status != "RUNNING"])
    done, replaced = _earlier_copies(dest, dest_id, {run.info.run_id for run in runs})
    todo = [run for run in runs if run.info.run_id not in done]
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=f"copy {source.experiment}", unit="run", leave=False,
               disable=not progress or not todo)
    for run in todo:
        done[run.info.run_id] = _copy_run(source, dest, dest_id, run, done)
        bar.update()
    bar.close()
    _relink_children(dest, runs, done)
    for run in todo:  # once every run has its new id: the id maps, then the completion marks
        _rewrite_id_artifacts(source, dest, run.info.run_id, done)
        dest.client.set_tag(done[run.info.run_id], COPY_COMPLETE, "1")
    result = ExperimentCopy(source.experiment, len(todo), len(runs) - len(todo), replaced, Tally(), Tally(),
                            live=len(every) - len(runs))
    for run in runs:
        held, kept = _count(source, dest, run.info.run_id, done[run.info.run_id], done)
        result.source.add(held)
        result.dest.add(kept)
    return result


def _dest_experiment(dest: Store, tags: Dict[str, str]) -> str:
    found = dest.client.get_experiment_by_name(dest.experiment)
    if found is None:
        return dest.client.create_experiment(dest.experiment, artifact_location(dest.uri, dest.experiment),
                                             tags=dict(tags))
    for key, value in tags.items():
        if key not in found.tags:
            dest.client.set_experiment_tag(found.experiment_id, key, value)
    return found.experiment_id


def _parents_first(runs: List[Run]) -> List[Run]:
    """Runs ordered so that a parent comes before its children (at any depth)."""
    by_id = {run.info.run_id: run for run in runs}

    def depth(run: Run) -> int:
        level, parent = 0, run.data.tags.get(PARENT_TAG)
        while parent in by_id and level < len(by_id):
            level, parent = level + 1, by_id[parent].data.tags.get(PARENT_TAG)
        return level

    return sorted(runs, key=depth)  # stable: start order within a level


def _earlier_copies(dest: Store, dest_id: str, ended: Set[str]):
    """source run id -> its complete copy in dest; half-copied runs (an interrupted copy) and
    copies taken while their run was RUNNING (by an older version) of runs `ended` since are
    deleted so they are copied again. Returns (map, number deleted)."""
    done, replaced = {}, 0
    copies = dest.client.search_runs([dest_id], filter_string=f"tags.`{COPIED_FROM}` LIKE '%'",
                                     run_view_type=ViewType.ACTIVE_ONLY, max_results=50_000)
    for run in copies:
        stale = run.info.status == "RUNNING" and run.data.tags.get(COPIED_FROM) in ended
        if run.data.tags.get(COPY_COMPLETE) == "1" and not stale:
            done[run.data.tags[COPIED_FROM]] = run.info.run_id
        else:
            dest.client.delete_run(run.info.run_id)
            replaced += 1
    return done, replaced


def _relink_children(dest: Store, runs: List[Run], copies: Dict[str, str]) -> None:
    """Point every copy at its parent's copy (a parent copied again after an interrupted copy
    has a new id)."""
    for run in runs:
        parent = run.data.tags.get(PARENT_TAG)
        if parent in copies:
            copy = dest.client.get_run(copies[run.info.run_id])
            if copy.data.tags.get(PARENT_TAG) != copies[parent]:
                dest.client.set_tag(copy.info.run_id, PARENT_TAG, copies[parent])


def _copy_run(source: Store, dest: Store, dest_id: str, run: Run, copied: Dict[str, str]) -> str:
    tags = {key: value for key, value in run.data.tags.items() if key not in OWN_TAGS}
    if PARENT_TAG in tags:
        tags[PARENT_TAG] = copied.get(tags[PARENT_TAG], tags[PARENT_TAG])
    tags[COPIED_FROM] = run.info.run_id
    new = dest.client.create_run(dest_id, start_time=run.info.start_time, tags=tags,
                                 run_name=run.info.run_name).info.run_id
    params = [Param(key, value) for key, value in run.data.params.items()]
    for chunk in _chunks(params, MAX_PARAMS_PER_BATCH):
        dest.client.log_batch(new, params=chunk)
    for key in run.data.metrics:
        history = source.client.get_metric_history(run.info.run_id, key)
        points = [Metric(m.key, m.value, m.timestamp, m.step) for m in history]
        for chunk in _chunks(points, MAX_METRICS_PER_BATCH):
            dest.client.log_batch(new, metrics=chunk)
    _copy_artifacts(source, dest, run.info.run_id, new)
    if run.info.status != "RUNNING":
        dest.client.set_terminated(new, run.info.status, end_time=run.info.end_time)
    return new


def _copy_artifacts(source: Store, dest: Store, run_id: str, new_id: str) -> None:
    if not _artifact_sizes(source, run_id):
        return
    with tempfile.TemporaryDirectory(prefix="recsys-scaling-copy-") as tmp:
        dest.client.log_artifacts(new_id, source.client.download_artifacts(run_id, "", tmp))


def _rewrite_id_artifacts(source: Store, dest: Store, run_id: str, copies: Dict[str, str]) -> None:
    """{name: run id} artifacts (a sweep parent's reused.json) pointing at the copies; ids that
    were not copied stay as they are."""
    present = _artifact_sizes(source, run_id)
    for name in (n for n in ID_ARTIFACTS if n in present):
        with tempfile.TemporaryDirectory(prefix="recsys-scaling-copy-") as tmp:
            path = Path(source.client.download_artifacts(run_id, name, tmp))
            text = path.read_text()
            for old in set(json.loads(text).values()) & set(copies):  # in place: the file's layout is kept
                text = text.replace(f'"{old}"', f'"{copies[old]}"')
            path.write_text(text)
            dest.client.log_artifact(copies[run_id], str(path), name.rpartition("/")[0] or None)


def _count(source: Store, dest: Store, run_id: str, copy_id: str, copies: Dict[str, str]):
    """(what the source run holds, how much of it its copy holds), by kind. Only the source's items
    count on the copy's side (a report run on the copy later adds its own artifacts); metric points
    count all the copy's points of the source's keys, so a point recorded twice shows."""
    run, copy = source.client.get_run(run_id), dest.client.get_run(copy_id)
    tags = {k: v for k, v in run.data.tags.items() if k not in OWN_TAGS}
    if PARENT_TAG in tags:
        tags[PARENT_TAG] = copies.get(tags[PARENT_TAG], tags[PARENT_TAG])
    files, copied_files = _artifact_sizes(source, run_id), _artifact_sizes(dest, copy_id)
    held = {"runs": 1, "params": len(run.data.params), "tags": len(tags), "artifacts": len(files),
            "metric points": sum(len(source.client.get_metric_history(run_id, k)) for k in run.data.metrics)}
    kept = {"runs": 1,
            "params": sum(copy.data.params.get(k) == v for k, v in run.data.params.items()),
            # a tag counts when present (a description may be rewritten on the copy later), the
            # parent link only when it points at the parent's copy
            "tags": sum(k in copy.data.tags and (k != PARENT_TAG or copy.data.tags[k] == v) for k, v in tags.items()),
            "artifacts": sum(copied_files.get(path) == size for path, size in files.items()),
            "metric points": sum(len(dest.client.get_metric_history(copy_id, k)) for k in run.data.metrics)}
    return held, kept


def _artifact_sizes(store: Store, run_id: str, path: Optional[str] = None) -> Dict[str, int]:
    """artifact path -> size in bytes, for every file of a run."""
    sizes = {}
    for entry in store.client.list_artifacts(run_id, path):
        sizes.update(_artifact_sizes(store, run_id, entry.path) if entry.is_dir else {entry.path: entry.file_size})
    return sizes
