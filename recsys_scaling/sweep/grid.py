"""A sweep's jobs, expanded and composed before anything launches, and checked."""
from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import List, Optional, Sequence

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..budget import JobPlan, plan_job
from ..config import EmbeddingShape, embedding_shape, explain, explicit_shape, job_name
from ..data import declared_field_dims
from ..models import get_backbone, model_label
from ..paths import BUILTIN_SWEEPS_DIR, CONF_DIR
from ..tuned import resolve_job_config
from ..validate import check_hydra_dir, check_job, check_value

log = logging.getLogger(__name__)

# Fields of the probe a user's tower is checked with when the data's fields are not known yet
PROBE_FIELDS = 3


class SweepConfigError(ValueError):
    """A sweep that must not launch: the message names the job and the key."""


@dataclass(eq=False)
class Job:
    """One job of a sweep. Jobs that differ only in their seed share one composed config
    (`shared`, read-only): a 10,000-seed grid composes, checks and estimates each distinct
    model once, and a job's own config is built only when something asks for it."""
    number: int
    overrides: List[str]
    shared: DictConfig
    launcher: Optional[DictConfig] = None  # the sweep's hydra.launcher, shared by all its jobs
    own_seed: Optional[int] = None  # set when it differs from `shared`'s

    @property
    def seed(self) -> int:
        return self.shared.seed if self.own_seed is None else self.own_seed

    @cached_property
    def cfg(self) -> DictConfig:
        if self.own_seed is None or self.own_seed == self.shared.seed:
            return self.shared
        cfg = copy.deepcopy(self.shared)
        cfg.seed = self.own_seed
        return cfg

    @cached_property
    def name(self) -> str:
        c = self.shared
        return job_name(model_label(c.model), c.arm, c.scale, self.seed, explicit_shape(c), c.data.train_fraction)

    def describe(self) -> str:
        return f"job #{self.number} {self.name} ({' '.join(self.overrides)})"


def distinct_models(jobs: Sequence[Job]) -> List[Job]:
    """One job per shared config: the jobs whose checks and estimates stand for their seeds'."""
    return list({id(job.shared): job for job in reversed(jobs)}.values())[::-1]


class Composer:
    """Composes configs the way the Hydra app will: a sweep file as the primary config with
    conf/ on the search path, or conf/config.yaml alone."""

    def __init__(self, spec: Optional[Path]):
        self.config_dir = spec.parent if spec else CONF_DIR
        self.config_name = spec.stem if spec else "config"
        self.searchpath = [f"hydra.searchpath=[file://{CONF_DIR}]"] if spec else []

    def __call__(self, overrides: Sequence[str] = (), hydra_config: bool = False) -> DictConfig:
        check_override_syntax(overrides)
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(self.config_dir), version_base="1.3"):
                return compose(config_name=self.config_name, overrides=[*self.searchpath, *overrides],
                               return_hydra_config=hydra_config)
        finally:
            GlobalHydra.instance().clear()


def check_override_syntax(overrides: Sequence[str]) -> None:
    """Each override parses on its own; the one that does not is named, with the fix for the
    usual cause: a value holding =, ?, & or spaces (a URI) must be quoted."""
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_override(override)
        except (OverrideParseException, HydraException) as exc:
            key, _, value = override.partition("=")
            raise HydraException(f"override {override!r} cannot be parsed ({' '.join(str(exc).split())[:120]}); "
                                 f"quote a value with =, ?, & or spaces: {key}=\"'{value}'\"") from None


def _is_group_choice(override: str, spec: Optional[Path]) -> bool:
    key = override.split("=", 1)[0]
    if key.startswith(("+", "~", "hydra")):
        return True
    roots = [CONF_DIR] + ([spec.parent] if spec else [])
    return any((root / key).is_dir() for root in roots)


class JobComposer:
    """Composes each job; a full Hydra composition per distinct set of group choices
    (model=..., data=...), value overrides applied to a copy: a 360-job grid takes seconds."""

    def __init__(self, spec: Optional[Path]):
        self.spec, self.composer = spec, Composer(spec)
        self.parser = OverridesParser.create()
        self.cache: dict = {}

    def __call__(self, combo: Sequence[str]) -> DictConfig:
        groups = tuple(o for o in combo if _is_group_choice(o, self.spec))
        if groups not in self.cache:
            self.cache[groups] = self.composer(groups)
        cfg = copy.deepcopy(self.cache[groups])
        for text in combo:
            if text in groups:
                continue
            override = self.parser.parse_override(text)
            try:
                OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
            except Exception as exc:  # noqa: BLE001 - re-raised with the key named
                raise HydraException(f"override {text!r}: {type(exc).__name__}: {exc}") from exc
        return cfg


def _launcher_hint(reason: str) -> str:
    """A sweep file's launcher settings do not fit another launcher chosen on the command line."""
    if "full_key: hydra.launcher." not in reason:
        return ""
    return ("; the sweep file sets it for its own launcher: keep that launcher and change the setting instead "
            "(one job at a time: hydra.launcher.n_jobs=1)")


def without_duplicate_values(spec: Optional[Path], overrides: Sequence[str]) -> List[str]:
    """The overrides with each swept value listed once (`seed=0,0,1` -> `seed=0,1`), said in one
    line: a value listed twice would launch the same job twice. A sweep file's params with
    duplicates are overridden on the command line (unless the user already overrides them)."""
    params = _sweeper_params(Composer(spec), overrides)
    parser = OverridesParser.create()
    given = parser.parse_overrides(list(overrides))
    user_keys = {o.get_key_element() for o in given}
    out = list(overrides)
    for position, override in enumerate([*given, *parser.parse_overrides(params)]):
        if not override.is_sweep_override() or override.value_type.name not in ("SIMPLE_CHOICE_SWEEP", "CHOICE_SWEEP"):
            continue
        values = list(override.sweep_string_iterator())
        unique = list(dict.fromkeys(values))
        key = override.get_key_element()
        if len(unique) == len(values) or (position >= len(given) and key in user_keys):
            continue
        replacement = f"{key}={','.join(unique)}"
        log.warning("%s lists %d value(s) more than once: each job runs once (%s)", override.input_line or key,
                    len(values) - len(unique), replacement)
        if position < len(given):
            out[position] = replacement
        else:
            out.append(replacement)
    return out


def _sweeper_params(composer: Composer, overrides: Sequence[str]) -> List[str]:
    return [f"{k}={v}" for k, v in (_base(composer, overrides).hydra.sweeper.params or {}).items()]


def _base(composer: Composer, overrides: Sequence[str]) -> DictConfig:
    """The sweep's config with Hydra's, its swept values not expanded."""
    plain = [o for o in overrides if "," not in o.split("=", 1)[-1]]
    try:
        return composer(plain, hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        reason = explain(exc)
        raise SweepConfigError(f"sweep config: {reason}{_launcher_hint(reason)}") from exc


def expand(spec: Optional[Path], overrides: Sequence[str] = ()) -> List[Job]:
    """Every job of the sweep (sweeper params, then command-line overrides), composed into its
    final config (tuned values included)."""
    base = _base(Composer(spec), overrides)
    if spec is not None and not all(key in base for key in ("model", "data", "train")):
        raise SweepConfigError(f"{spec}: does not extend the job config; start it with `defaults: [config, _self_]` "
                               f"(see {BUILTIN_SWEEPS_DIR / 'smoke.yaml'})")
    check_hydra_dir(base, "hydra.sweep.dir")
    params = [f"{k}={v}" for k, v in (base.hydra.sweeper.params or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*params, *overrides])
    combos = BasicSweeper.split_arguments(parsed, None)[0]
    compose_job = JobComposer(spec)
    jobs: List[Job] = []
    shared: dict = {}  # the combo without its seed -> the config its seeds share
    for number, combo in enumerate(combos):
        rest, seed = _split_seed(combo)
        if seed is not None and rest in shared:
            jobs.append(Job(number, combo, shared[rest], base.hydra.launcher, own_seed=seed))
            continue
        try:
            cfg = resolve_job_config(compose_job(combo))
        except (HydraException, LookupError, FileNotFoundError) as exc:
            raise SweepConfigError(f"job #{number} ({' '.join(combo)}): {explain(exc)}") from exc
        if seed is not None and not _SEED_REFERENCE.search(OmegaConf.to_yaml(cfg)):
            shared[rest] = cfg
        jobs.append(Job(number, combo, cfg, base.hydra.launcher))
    return jobs


# A config that interpolates the seed elsewhere (`split_seed: ${seed}`) is composed per seed
_SEED_REFERENCE = re.compile(r"\$\{[^}]*\bseed\b")


def _split_seed(combo: Sequence[str]) -> tuple:
    """(the other overrides, the job's seed as an int) — seed None when not a plain integer."""
    seeds = [o for o in combo if o.split("=", 1)[0] == "seed"]
    rest = tuple(o for o in combo if o not in seeds)
    if len(seeds) != 1:
        return rest, None
    text = seeds[0].split("=", 1)[1]
    return rest, int(text) if re.fullmatch(r"\d+", text) else None


def plan(job: Job, field_dims_cache: Optional[dict] = None) -> Optional[JobPlan]:
    """Check a job's model and budget; its plan when the vocabulary sizes are known.
    `field_dims_cache` (data config YAML -> field_dims) spares re-reading a prepared cache's
    input fingerprint for every job of a grid."""
    cfg = job.cfg
    cache = {} if field_dims_cache is None else field_dims_cache
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        check_job(cfg)
        key = OmegaConf.to_yaml(cfg.data)
        if key not in cache:
            cache[key] = declared_field_dims(cfg.data)
        dims = cache[key]
        check_model(cfg, dims)
        if dims is None:  # no vocabulary sizes yet: the rest is checked when the job starts
            return None
        return plan_job(cfg.model, cfg.arm, cfg.scale, dims, cfg.budget, job=job.name)
    except (ValueError, HydraException, OmegaConfBaseException) as exc:
        raise SweepConfigError(f"{job.describe()}: {exc}") from exc


def check_model(cfg, field_dims: Optional[Sequence[int]]) -> None:
    """The model can be built and trained (a user's tower is run on a probe batch): a one-line
    ValueError otherwise. Without the data's vocabulary sizes, a probe with PROBE_FIELDS fields."""
    shape = embedding_shape(cfg.model, cfg.arm, cfg.scale)
    num_fields = len(field_dims) if field_dims is not None else PROBE_FIELDS
    get_backbone(cfg.model.backbone).check(num_fields, shape.embed_dim, cfg.model)


def _shape(job: Job, job_plan: Optional[JobPlan]) -> EmbeddingShape:
    return job_plan.shape if job_plan is not None else embedding_shape(job.shared.model, job.shared.arm,
                                                                      job.shared.scale)


def shared_base(jobs: Sequence[Job], plans: Sequence[Optional[JobPlan]]) -> List[Job]:
    """ME jobs with one embedding set whose SE twin (the same overrides with arm=se) is in the
    grid with the same shape: the same model as that twin, so the sweep trains it once."""
    index = {tuple(sorted(job.overrides)): (job, job_plan) for job, job_plan in zip(jobs, plans)}
    twins = []
    for job, job_plan in zip(jobs, plans):
        if job.shared.arm != "me" or job.shared.model.experts or "arm=me" not in job.overrides:
            continue
        twin = index.get(tuple(sorted("arm=se" if o == "arm=me" else o for o in job.overrides)))
        if twin is not None and _shape(job, job_plan).num_embeddings == 1 and _shape(job, job_plan) == _shape(*twin):
            twins.append(job)
    return twins


def split_shared_base(jobs: Sequence[Job], plans: Sequence[Optional[JobPlan]]) -> tuple:
    """(the jobs to train, their plans, the ME jobs that are the SE base)."""
    base = shared_base(jobs, plans)
    kept = [(job, p) for job, p in zip(jobs, plans) if all(job is not twin for twin in base)]
    return [job for job, _ in kept], [p for _, p in kept], base


def validate(jobs: Sequence[Job]) -> List[Optional[JobPlan]]:
    if not jobs:
        raise SweepConfigError("the sweep expands to no jobs")
    seen: dict = {}
    for job in jobs:
        if job.own_seed is not None:
            check_seed(job)
        other = seen.get(job.name)
        if other is not None and explicit_shape(job.shared) is not None and (
                (job.shared.arm, job.shared.scale) != (other.shared.arm, other.shared.scale)):
            raise SweepConfigError(f"{job.describe()} and job #{other.number} are both {job.name}: an explicit "
                                   "model.num_embeddings / model.embed_dim gives every arm and scale the same shape; "
                                   "sweep the shape without arm and scale (see sweeps/frontier.yaml)")
        if other is not None and _tower(job.shared) != _tower(other.shared):
            raise SweepConfigError(f"{job.describe()} and job #{other.number} are both {job.name} with different towers "
                                   f"({_tower(job.shared)[0]} and {_tower(other.shared)[0]}): their runs would be read "
                                   "as one model; give each its own model.label")
        seen[job.name] = job
    cache: dict = {}
    plans = {id(job.shared): plan(job, cache) for job in distinct_models(jobs)}
    return [plans[id(job.shared)] for job in jobs]


def check_seed(job: Job) -> None:
    """The seed rule of validate.RANGES for a job whose config is shared with its other seeds."""
    try:
        check_value(seed=job.seed)
    except ValueError as exc:
        raise SweepConfigError(f"{job.describe()}: {exc}") from None


def _tower(cfg) -> tuple:
    """A user's tower and its arguments as a comparable key (None for the built-ins)."""
    args = cfg.model.tower_args
    return (cfg.model.tower, repr(OmegaConf.to_container(args) if OmegaConf.is_config(args) else args))


def check_memory(job: Job, job_plan: JobPlan, device_bytes: int) -> None:
    """Refuse a job whose train.jobs_per_gpu copies exceed a GPU of `device_bytes` (the model's
    memory; the dataset, when a job keeps it on the GPU, is checked at the job's start)."""
    from ..device import check_packing, estimate_memory
    from ..models import Shape, build_model

    cfg = job.cfg
    dims = list(declared_field_dims(cfg.data))
    shape = Shape.of(len(dims), job_plan.shape, cfg.arm)
    estimate = estimate_memory(lambda: build_model(cfg.model.backbone, dims, shape, cfg.model), dims,
                               cfg.train.batch_size)
    check_packing(estimate, cfg.train.jobs_per_gpu, device_bytes, job=job.describe())
