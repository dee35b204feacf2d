"""A user's model code: backbones registered by installed packages: the `recsys_scaling.backbones` entry-point group.

A package declares, in its pyproject.toml,

    [project.entry-points."recsys_scaling.backbones"]
    gated_bilinear = "acme_towers:GatedBilinear"

and `model=gated_bilinear` then selects that tower (the custom backbone, labelled with the entry
point's name). Only the names and import paths are read here: nothing is imported until a job
builds the model.
"""
from __future__ import annotations

import hashlib
import logging
import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Dict

from .paths import CONF_DIR

GROUP = "recsys_scaling.backbones"
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
log = logging.getLogger(__name__)


def backbone_plugins() -> Dict[str, str]:
    """name -> PKG.MODULE:CLASS of every installed plugin tower, sorted by name. A name that a
    built-in model config already has, or that is not an identifier, is skipped with a warning."""
    builtin = {p.stem for p in (CONF_DIR / "model").glob("*.yaml")}
    found: Dict[str, str] = {}
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        if point.name in builtin or not NAME.match(point.name):
            log.warning("entry point %s = %s (%s): skipped: %s", point.name, point.value, GROUP,
                        "a built-in model has that name" if point.name in builtin else "the name is not an identifier")
            continue
        found.setdefault(point.name, point.value)
    return found


def tower_source_hash(path: str) -> str:
    """sha256 of the source file of the module a tower's import path (PKG.MODULE:CLASS) names, or
    "unknown" when it cannot be found (the tower's own checks then say why, in one line)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(str(path).partition(":")[0])
        origin = spec.origin if spec is not None else None
        return hashlib.sha256(Path(origin).read_bytes()).hexdigest() if origin else "unknown"
    except Exception:  # importing its package failed: the tower's own check says so, in one line
        return "unknown"
