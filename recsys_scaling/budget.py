"""Parameter budgets: closed-form counts (no table allocated) and SE/ME budget matching.

Scale semantics: `scale=s` is SE with d = s*d0 against ME with K = s sets of d0 — equal
embedding parameters, as in the paper. `budget.match=total` instead solves one arm's integer
embedding size so that the two arms' total parameter counts are as close as possible, and
refuses jobs whose residual mismatch exceeds `budget.tolerance`. `budget.targets` trains at
given total-parameter counts (SE solves d, ME solves K at d0).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, Optional, Sequence

from .config import BudgetMatch, BudgetSolve, EmbeddingShape, ModelConfig, choice, embedding_shape
from .models import Shape, get_backbone


class BudgetError(ValueError):
    """A job whose parameter budget cannot be met within tolerance."""


def _model_config(backbone: str, options: dict) -> ModelConfig:
    return replace(ModelConfig(backbone=backbone), **options)


def count_params(
    backbone: str,
    field_dims: Sequence[int],
    embed_dim: int,
    num_embeddings: int,
    multi_embedding: bool | None = None,
    **options,
) -> Dict[str, int]:
    """{"embedding", "dense", "total"} parameter counts of a model.

    `multi_embedding`: the job's arm is ME (default: K > 1); a single set is always the SE base
    (see `uses_me_form`; it matters for IPNN only);
    `options` are ModelConfig fields (hidden, dropout, cross_layers, cin_layers, experts, ...).
    """
    cfg = _model_config(backbone, options)
    shape = _shape(len(field_dims), embed_dim, num_embeddings, multi_embedding)
    embedding = int(sum(int(v) for v in field_dims)) * num_embeddings * embed_dim
    dense = int(get_backbone(backbone).dense_params(shape, cfg))
    return {"embedding": embedding, "dense": dense, "total": embedding + dense}


def count_flops(backbone: str, num_fields: int, embed_dim: int, num_embeddings: int,
                multi_embedding: bool | None = None, **options) -> int:
    """Forward FLOPs per example of the dense part (see Backbone.flops)."""
    shape = _shape(num_fields, embed_dim, num_embeddings, multi_embedding)
    return int(get_backbone(backbone).flops(shape, _model_config(backbone, options)))


def _shape(num_fields: int, embed_dim: int, num_embeddings: int, multi_embedding: bool | None) -> Shape:
    arm = "se" if multi_embedding is False else "me"
    return Shape.of(num_fields, EmbeddingShape(num_embeddings, embed_dim), arm)


def closest_integer(total_of: Callable[[int], int], target: float, low: int = 1) -> int:
    """The integer x >= low whose nondecreasing total_of(x) is closest to target."""
    high = low
    while total_of(high) < target:
        high *= 2
    lo = max(low, high // 2)
    while lo < high:  # smallest x with total_of(x) >= target
        mid = (lo + high) // 2
        if total_of(mid) >= target:
            high = mid
        else:
            lo = mid + 1
    if lo > low and abs(total_of(lo - 1) - target) <= abs(total_of(lo) - target):
        return lo - 1
    return lo


@dataclass(frozen=True)
class JobPlan:
    """A job's embedding shape and counts, with what its budget was matched against."""

    backbone: str
    arm: str
    scale: int
    shape: EmbeddingShape
    counts: Dict[str, int]
    flops: int
    reference_total: Optional[int]
    reference: str

    @property
    def num_embeddings(self) -> int:
        return self.shape.num_embeddings

    @property
    def embed_dim(self) -> int:
        return self.shape.embed_dim

    @property
    def mismatch(self) -> Optional[float]:
        if not self.reference_total:
            return None
        return (self.counts["total"] - self.reference_total) / self.reference_total


def plan_job(model_cfg, arm: str, scale: int, field_dims: Sequence[int], budget_cfg,
             job: str = "job") -> JobPlan:
    """Resolve K and d of a job under its budget settings; raises BudgetError naming `job`."""
    match = choice(BudgetMatch, budget_cfg.match, "budget.match")
    solve = choice(BudgetSolve, budget_cfg.solve, "budget.solve")
    options = model_options(model_cfg)
    backbone = model_cfg.backbone
    get_backbone(backbone)
    me = arm == "me"
    default = embedding_shape(model_cfg, arm, scale)
    d0 = model_cfg.base_dim

    def total(k: int, d: int, multi: bool = me) -> int:
        return count_params(backbone, field_dims, d, k, multi_embedding=multi, **options)["total"]

    k, d = default.num_embeddings, default.embed_dim
    explicit = model_cfg.num_embeddings is not None or model_cfg.embed_dim is not None
    reference, reference_total, enforce = "", None, False
    if model_cfg.experts or explicit:
        pass
    elif budget_cfg.targets:
        if not 1 <= scale <= len(budget_cfg.targets):
            raise BudgetError(f"{job}: scale={scale} indexes budget.targets, which has "
                              f"{len(budget_cfg.targets)} entries")
        reference_total, reference, enforce = int(budget_cfg.targets[scale - 1]), "target", True
        if me:
            k = closest_integer(lambda kk: total(kk, d0), reference_total)
            d = d0
        else:
            d = closest_integer(lambda dd: total(1, dd), reference_total)
    else:
        partner_k, partner_d = (1, scale * d0) if me else (scale, d0)
        partner_total = total(partner_k, partner_d, not me)
        reference, reference_total = ("se partner" if me else "me partner"), partner_total
        if match == BudgetMatch.total:
            enforce = True
            if not me and solve == BudgetSolve.se_dim:
                d = closest_integer(lambda dd: total(1, dd), partner_total)
            elif me and solve == BudgetSolve.me_dim:
                d = closest_integer(lambda dd: total(k, dd), partner_total)
            else:  # this arm keeps its scale shape; its partner is solved against it
                partner_total = _solved_partner_total(total, me, k, d, scale, d0, solve)
                reference_total = partner_total
    if k < 1 or d < 1:
        raise BudgetError(f"{job}: embedding shape K={k}, d={d} is invalid")
    counts = count_params(backbone, field_dims, d, k, multi_embedding=me, **options)
    flops = count_flops(backbone, len(field_dims), d, k, multi_embedding=me, **options)
    plan = JobPlan(backbone, arm, scale, EmbeddingShape(k, d), counts, flops, reference_total, reference)
    if enforce and plan.mismatch is not None and abs(plan.mismatch) > budget_cfg.tolerance:
        raise BudgetError(
            f"{job}: total parameters {counts['total']:,} miss the {reference} "
            f"({reference_total:,}) by {plan.mismatch:+.2%}, beyond budget.tolerance="
            f"{budget_cfg.tolerance:.2%} (K={k}, d={d})")
    return plan


def _solved_partner_total(total, me: bool, k: int, d: int, scale: int, d0: int, solve: str) -> int:
    """Total of the partner whose size is solved against this job's (fixed-shape) total."""
    own = total(k, d)
    if solve == "se_dim":  # this is the ME job; the SE partner's d is solved to our total
        partner_d = closest_integer(lambda dd: total(1, dd, False), own)
        return total(1, partner_d, False)
    partner_d = closest_integer(lambda dd: total(scale, dd, True), own)  # this is the SE job
    return total(scale, partner_d, True)


def model_options(model_cfg) -> dict:
    from omegaconf import OmegaConf

    options = (OmegaConf.to_container(model_cfg, resolve=True)
               if OmegaConf.is_config(model_cfg) else dict(vars(model_cfg)))
    for key in ("backbone", "base_dim", "embed_dim", "num_embeddings"):
        options.pop(key, None)
    return options
