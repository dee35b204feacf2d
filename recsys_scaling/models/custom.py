"""A user's own tower as a backbone: `model=custom model.tower=PKG.MODULE:CLASS`.

The tower is a plain `torch.nn.Module` class built as CLASS(num_fields=F, embed_dim=d,
**model.tower_args), mapping field embeddings (B, F, d) to features (B, H). The tool adds the
rest: K embedding sets, K independently initialised copies of the tower (fused, see
`stacked.py`), the mean over sets and the shared head block(H) -> Linear(H, 1). Parameters and
FLOPs are measured on the built modules (the meta device: shapes only), not declared.

Every fault of a tower is a `TowerError`, one line naming the class and what is wrong, raised by
`check_tower` before a job records anything.
"""
from __future__ import annotations

import importlib
import inspect
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .base import Backbone, Shape
from .layers import MLPHead, mlp_head_flops
from .stacked import StackedTowers

log = logging.getLogger(__name__)
PROBE_BATCH = 4


class TowerError(ValueError):
    """A user's tower that cannot be used: the class and the fault, on one line."""

    def __init__(self, path: str, what: str):
        super().__init__(f"model.tower={path}: {' '.join(str(what).split())}")


def _args(cfg) -> dict:
    args = cfg.tower_args if cfg.tower_args is not None else {}
    args = OmegaConf.to_container(args, resolve=True) if OmegaConf.is_config(args) else args
    if not isinstance(args, dict):
        raise TowerError(str(cfg.tower), f"model.tower_args={args!r} must be a mapping of constructor arguments, "
                                         "e.g. model.tower_args={hidden:64}")
    return dict(args)


def _path(cfg) -> str:
    if not cfg.tower:
        raise ValueError("model.tower: required for model=custom, and not given; give your tower class as "
                         "model.tower=PKG.MODULE:CLASS, e.g. model.tower=acme_towers:GatedBilinear")
    return str(cfg.tower)


@lru_cache(maxsize=64)
def tower_class(path: str) -> type:
    """The class an import path PKG.MODULE:CLASS names; TowerError if it is not an nn.Module class."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise TowerError(path, "is not an import path; write PKG.MODULE:CLASS")
    try:
        found = importlib.import_module(module_name)
    except Exception as exc:  # any error of the user's module is its fault to report, in one line
        raise TowerError(path, f"cannot be imported: {type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise TowerError(path, f"module {module_name} has no attribute {attribute}")
    if isinstance(found, type) and not issubclass(found, nn.Module):
        raise TowerError(path, f"{found.__name__} is a class, but not a torch.nn.Module subclass")
    if not isinstance(found, type):
        raise TowerError(path, f"is a {type(found).__name__}, not a torch.nn.Module class")
    return found


def make_tower(path: str, args: dict, num_fields: int, embed_dim: int) -> nn.Module:
    """One tower, built on the current default device."""
    cls = tower_class(path)
    try:
        inspect.signature(cls).bind(num_fields=num_fields, embed_dim=embed_dim, **args)
    except TypeError as exc:
        raise TowerError(path, f"{cls.__name__}{inspect.signature(cls)} cannot be built as "
                               f"{cls.__name__}(num_fields=..., embed_dim=..., **model.tower_args={args}): {exc}") from None
    try:
        return cls(num_fields=num_fields, embed_dim=embed_dim, **args)
    except Exception as exc:
        raise TowerError(path, f"{cls.__name__}(num_fields={num_fields}, embed_dim={embed_dim}, **{args}) raised "
                               f"{type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class Measured:
    """One tower's parameters, forward FLOPs per example and output width H."""

    params: int
    flops: int
    out_dim: int


def _forward_counted(tower: nn.Module, x: torch.Tensor) -> tuple:
    tower.eval()
    with FlopCounterMode(display=False) as counter:
        out = tower(x)
    return out, counter.get_total_flops()


@lru_cache(maxsize=512)
def _measure(path: str, args_key: str, num_fields: int, embed_dim: int) -> Measured:
    args = json.loads(args_key)
    try:  # shapes only: free even for a wide tower
        with torch.device("meta"):
            tower = make_tower(path, args, num_fields, embed_dim)
            out, flops = _forward_counted(tower, torch.zeros(2, num_fields, embed_dim))
    except TowerError:
        raise
    except Exception:  # a tower that needs real values (e.g. .item()) is measured on a small CPU batch
        with torch.device("cpu"), torch.random.fork_rng():
            tower = make_tower(path, args, num_fields, embed_dim)
            with torch.no_grad():
                out, flops = _forward_counted(tower, torch.randn(2, num_fields, embed_dim))
    declared = getattr(tower, "out_dim", None)
    width = int(declared) if isinstance(declared, int) else int(out.shape[-1])
    return Measured(sum(p.numel() for p in tower.parameters()), int(flops) // 2, width)


def measure(cfg, num_fields: int, embed_dim: int) -> Measured:
    return _measure(_path(cfg), json.dumps(_args(cfg), sort_keys=True), num_fields, embed_dim)


def check_tower(cfg, num_fields: int, embed_dim: int) -> None:
    """Build the tower at (F, d), run it forward and backward on random embeddings: a TowerError for
    a tower that is not a usable module, has no parameters, returns a wrong shape or non-finite
    values, or passes no gradient to the embeddings. Decides whether the fused form can run it."""
    _check(_path(cfg), json.dumps(_args(cfg), sort_keys=True), num_fields, embed_dim)


@lru_cache(maxsize=256)
def _check(path: str, args_key: str, num_fields: int, embed_dim: int) -> bool:
    args = json.loads(args_key)
    name = tower_class(path).__name__
    with torch.device("cpu"), torch.random.fork_rng():  # real values, even inside a meta-device build
        torch.manual_seed(0)
        tower = make_tower(path, args, num_fields, embed_dim)
        if not any(True for _ in tower.parameters()):
            raise TowerError(path, f"{name} has no parameters: there is nothing to train")
        emb = torch.randn(PROBE_BATCH, num_fields, embed_dim, requires_grad=True)
        out = _probe_forward(path, name, tower, emb)
        declared = getattr(tower, "out_dim", None)
        if isinstance(declared, int) and out.shape[1] != declared:
            raise TowerError(path, f"{name} returns {out.shape[1]} features but its out_dim says {declared}")
        (out * torch.randn_like(out)).sum().backward()
        if emb.grad is None or not bool(emb.grad.abs().sum() > 0):
            raise TowerError(path, f"{name} passes no gradient to the embeddings (is its input detached or unused?)")
        return _fusable(path, args, num_fields, embed_dim)


def _probe_forward(path: str, name: str, tower: nn.Module, emb: torch.Tensor) -> torch.Tensor:
    shape = f"({PROBE_BATCH}, {emb.shape[1]}, {emb.shape[2]})"
    try:
        out = tower.train()(emb)
    except Exception as exc:
        raise TowerError(path, f"{name} fails on embeddings of shape {shape}: {type(exc).__name__}: {exc}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != PROBE_BATCH:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TowerError(path, f"{name} returns {got} for embeddings of shape {shape}; it must return "
                               f"(batch, features) = ({PROBE_BATCH}, H)")
    if not bool(torch.isfinite(out).all()):
        raise TowerError(path, f"{name} returns NaN or inf on random embeddings of shape {shape}")
    return out


def _fusable(path: str, args: dict, num_fields: int, embed_dim: int) -> bool:
    """Whether vmap can run the tower (two copies, one small batch); else the loop form is used."""
    towers = StackedTowers([make_tower(path, args, num_fields, embed_dim) for _ in range(2)])
    try:
        towers(torch.randn(2, PROBE_BATCH, num_fields, embed_dim))
        return True
    except Exception as exc:
        reason = str(exc).split(". ")[0].splitlines()[0] if str(exc) else ""
        log.warning("model.tower=%s: runs as a loop over the embedding sets (vmap cannot map it: %s: %s)", path,
                    type(exc).__name__, reason[:160])
        return False


class Custom(Backbone):
    """A user's tower class (model.tower), or a plugin's (model=NAME, see recsys_scaling/plugins.py)."""

    name = "custom"

    @classmethod
    def label(cls, cfg) -> str:
        return str(cfg.label) if cfg.label else cls.name

    @classmethod
    def check(cls, num_fields: int, embed_dim: int, cfg) -> None:
        check_tower(cfg, num_fields, embed_dim)

    @classmethod
    def tower(cls, shape: Shape, cfg) -> nn.Module:
        path, args = _path(cfg), _args(cfg)
        fusable = _check(path, json.dumps(args, sort_keys=True), shape.num_fields, shape.embed_dim)
        # K constructions: each set's tower draws its own initial weights. One set (SE) is the
        # plain module: nothing to fuse.
        return StackedTowers([make_tower(path, args, shape.num_fields, shape.embed_dim)
                              for _ in range(shape.num_sets)], fused=fusable and shape.num_sets > 1)

    @classmethod
    def tower_width(cls, shape, cfg) -> int:
        return measure(cfg, shape.num_fields, shape.embed_dim).out_dim

    @classmethod
    def tower_params(cls, shape, cfg) -> int:
        return shape.num_sets * measure(cfg, shape.num_fields, shape.embed_dim).params

    @classmethod
    def tower_flops(cls, shape, cfg) -> int:
        return shape.num_sets * measure(cfg, shape.num_fields, shape.embed_dim).flops

    @classmethod
    def head(cls, shape, cfg) -> nn.Module:
        return MLPHead(cls.tower_width(shape, cfg), cfg.hidden, cfg.dropout)

    @classmethod
    def head_params(cls, shape, cfg) -> int:
        return MLPHead.num_params(cls.tower_width(shape, cfg), cfg.hidden)

    @classmethod
    def head_flops(cls, shape, cfg) -> int:
        return mlp_head_flops(cls.tower_width(shape, cfg), cfg.hidden)

